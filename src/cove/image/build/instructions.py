"""Typed records for the instructions of a Dockerfile, as parsed (before expansion).

Every instruction keeps `line` (where it starts), `end_line` (its last line, heredoc
bodies included) and `original` (its text with the continuations joined: what error
messages and image history show). Words that Docker expands keep their quotes and
escapes here; `cove.image.build.expand.StageScope.expand` returns the same records with
the words expanded. Shell-form commands (RUN, CMD, ENTRYPOINT, HEALTHCHECK CMD) are kept
exactly as written: the shell expands them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

from cove.image.build.heredoc import parse_marker

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from cove.image.build.lexer import Directives


@dataclass(frozen=True)
class Heredoc:
    """An inline document: a RUN script or stdin, or a file COPY/ADD create."""

    name: str  # the terminator word; for COPY/ADD the name of the file created
    content: str  # the body, line endings kept, tabs stripped for `<<-`
    expand: bool = True  # False when the terminator was quoted (`<<"EOF"`)
    chomp: bool = False  # `<<-`
    fd: int | None = None  # `3<<EOF`


@dataclass(frozen=True)
class CommandLine:
    """The command of RUN, CMD, ENTRYPOINT or HEALTHCHECK CMD, in the form it was written.

    Exec form: `args` is the argv. Shell form: `args` is one string, run by the shell
    (`SHELL`, by default `/bin/sh -c`).
    """

    args: tuple[str, ...]
    exec_form: bool

    def argv(self, shell: Sequence[str] = ("/bin/sh", "-c")) -> list[str]:
        """The argv to run: the exec form as is, the shell form after `shell`."""
        if self.exec_form:
            return list(self.args)
        return [*shell, " ".join(self.args)]

    def __str__(self) -> str:
        if self.exec_form:
            return json.dumps(list(self.args))
        return " ".join(self.args)


@dataclass(frozen=True)
class KeyValue:
    """One `key=value` of ENV or LABEL (`legacy`: written `ENV key value`)."""

    key: str
    value: str
    legacy: bool = False


@dataclass(frozen=True)
class ArgDecl:
    """One name of an ARG instruction and its default (None: declared without one)."""

    name: str
    default: str | None = None


@dataclass(frozen=True)
class Mount:
    """One `RUN --mount=...`. Values are as written until expanded; `target` is made
    absolute against the working directory by the executor."""

    type: str  # bind (the default), cache, tmpfs, secret, ssh
    target: str = ""
    source: str = ""
    from_: str | None = None  # a stage name or index, or an image (bind and cache)
    readonly: bool = False  # bind: read-only unless `rw`
    id: str = ""  # cache: the cache's id (default: the target); secret/ssh: the id
    sharing: str = "shared"  # cache: shared, private or locked
    mode: int | None = None  # cache, secret, ssh: the mode of the directory or file
    uid: int | None = None
    gid: int | None = None
    size: int | None = None  # tmpfs: bytes
    required: bool = False  # secret, ssh
    env: str = ""  # secret: an environment variable to expose it as


# --- instructions --------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    """Common part of every instruction."""

    keyword: ClassVar[str] = ""
    #: instructions that change the filesystem (one layer each)
    changes_filesystem: ClassVar[bool] = False

    line: int
    end_line: int
    original: str


@dataclass(frozen=True)
class From(Instruction):
    keyword: ClassVar[str] = "FROM"

    image: str  # as written (`${BASE}:1.2`); `scratch` for the empty image
    name: str | None = None  # the stage name (`AS name`), lower-cased
    platform: str | None = None  # `--platform=` as written


@dataclass(frozen=True)
class Arg(Instruction):
    keyword: ClassVar[str] = "ARG"

    args: tuple[ArgDecl, ...]


@dataclass(frozen=True)
class Env(Instruction):
    keyword: ClassVar[str] = "ENV"

    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True)
class Label(Instruction):
    keyword: ClassVar[str] = "LABEL"

    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True)
class Run(Instruction):
    keyword: ClassVar[str] = "RUN"
    changes_filesystem: ClassVar[bool] = True

    command: CommandLine
    mounts: tuple[Mount, ...] = ()
    #: the `--mount` values as written (`mounts` holds them parsed; numbers given by a
    #: variable are unset there until the instruction is expanded)
    mount_specs: tuple[str, ...] = ()
    network: str | None = None  # default, none or host
    security: str | None = None  # sandbox or insecure
    heredocs: tuple[Heredoc, ...] = ()

    @property
    def heredoc_script(self) -> Heredoc | None:
        """The heredoc when the whole shell-form command is one marker (`RUN <<EOF`):
        its body is the script (run by the shell, or executed when it starts with
        `#!`). None otherwise."""
        if self.command.exec_form or len(self.heredocs) != 1:
            return None
        text = self.command.args[0].strip()
        return self.heredocs[0] if parse_marker(text) is not None else None

    def shell_text(self) -> str:
        """The shell-form command with its heredoc bodies and terminators appended, as
        the shell must read it (`python3 <<EOF` ... `EOF`)."""
        parts = [" ".join(self.command.args)]
        for doc in self.heredocs:
            parts.append("\n" + doc.content + doc.name)
        return "".join(parts)


@dataclass(frozen=True)
class _CopyBase(Instruction):
    sources: tuple[str, ...]  # paths or patterns (globs are resolved by the executor)
    dest: str
    chown: str | None = None
    chmod: str | None = None
    link: bool = False  # accepted; cove always builds the layer the same way
    excludes: tuple[str, ...] = ()
    heredocs: tuple[Heredoc, ...] = ()  # files created from inline documents
    exec_form: bool = False


@dataclass(frozen=True)
class Copy(_CopyBase):
    keyword: ClassVar[str] = "COPY"
    changes_filesystem: ClassVar[bool] = True

    from_: str | None = None  # a stage name, a stage index or an image, as written
    parents: bool = False


@dataclass(frozen=True)
class Add(_CopyBase):
    keyword: ClassVar[str] = "ADD"
    changes_filesystem: ClassVar[bool] = True

    checksum: str | None = None
    keep_git_dir: bool = False
    unpack: bool | None = None


@dataclass(frozen=True)
class Workdir(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    changes_filesystem: ClassVar[bool] = True

    path: str


@dataclass(frozen=True)
class User(Instruction):
    keyword: ClassVar[str] = "USER"

    user: str


@dataclass(frozen=True)
class Expose(Instruction):
    keyword: ClassVar[str] = "EXPOSE"

    #: as written (`80`, `8000-8010/udp`, `$PORT`); expanded: `80/tcp` ... one per port
    ports: tuple[str, ...]


@dataclass(frozen=True)
class Volume(Instruction):
    keyword: ClassVar[str] = "VOLUME"

    paths: tuple[str, ...]
    exec_form: bool = False


@dataclass(frozen=True)
class Cmd(Instruction):
    keyword: ClassVar[str] = "CMD"

    command: CommandLine


@dataclass(frozen=True)
class Entrypoint(Instruction):
    keyword: ClassVar[str] = "ENTRYPOINT"

    command: CommandLine


@dataclass(frozen=True)
class Shell(Instruction):
    keyword: ClassVar[str] = "SHELL"

    args: tuple[str, ...]


@dataclass(frozen=True)
class StopSignal(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"

    signal: str


@dataclass(frozen=True)
class Healthcheck(Instruction):
    """HEALTHCHECK NONE (`test == ("NONE",)`) or HEALTHCHECK [options] CMD ...
    (`test` is `("CMD", *argv)` for the exec form, `("CMD-SHELL", command)` for the shell
    form, as the image config stores it). Durations are nanoseconds; 0 and a retries of 0
    mean "inherit from the base image"."""

    keyword: ClassVar[str] = "HEALTHCHECK"

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True)
class Maintainer(Instruction):
    """Deprecated: sets the image's `author` field."""

    keyword: ClassVar[str] = "MAINTAINER"

    name: str


@dataclass(frozen=True)
class Onbuild(Instruction):
    """A trigger stored in the image (`config.OnBuild`) and run by images built FROM it.

    `expression` is the trigger's text as stored (heredoc bodies appended on the lines
    after it); `trigger` is it parsed, to check it now.
    """

    keyword: ClassVar[str] = "ONBUILD"

    expression: str
    trigger: Instruction


#: every instruction class by keyword
INSTRUCTION_TYPES: dict[str, type[Instruction]] = {
    cls.keyword: cls
    for cls in (
        From,
        Arg,
        Env,
        Label,
        Run,
        Copy,
        Add,
        Workdir,
        User,
        Expose,
        Volume,
        Cmd,
        Entrypoint,
        Shell,
        StopSignal,
        Healthcheck,
        Maintainer,
        Onbuild,
    )
}


@dataclass(frozen=True)
class Note:
    """Something the parser or planner noticed that is not an error (deprecated syntax,
    a directive cove ignores, an option accepted without effect)."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


@dataclass(frozen=True)
class Stage:
    """One `FROM` and the instructions after it, up to the next `FROM`."""

    index: int
    from_: From
    instructions: tuple[Instruction, ...]

    @property
    def name(self) -> str | None:
        return self.from_.name

    @property
    def line(self) -> int:
        return self.from_.line

    @property
    def label(self) -> str:
        """How messages name the stage: its name, else `#index`."""
        return self.name if self.name is not None else f"#{self.index}"


@dataclass(frozen=True)
class Dockerfile:
    """A parsed Dockerfile."""

    filename: str
    directives: Directives
    global_args: tuple[Arg, ...]  # the ARGs before the first FROM
    stages: tuple[Stage, ...]
    notes: tuple[Note, ...] = ()

    @property
    def escape(self) -> str:
        return self.directives.escape

    def stage_named(self, name: str) -> Stage | None:
        """The stage a reference by name means (stage names are case-insensitive; when
        two stages share a name, the later one)."""
        wanted = name.lower()
        found = None
        for stage in self.stages:
            if stage.name == wanted:
                found = stage
        return found
