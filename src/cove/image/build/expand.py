"""Build arguments and variable expansion per stage, as Docker applies them.

Which values a word sees:

- `FROM` (image and `--platform`) sees the global scope: the automatic platform args
  (`TARGETPLATFORM`, `TARGETOS`, `TARGETARCH`, `TARGETVARIANT`, `BUILDPLATFORM`,
  `BUILDOS`, `BUILDARCH`, `BUILDVARIANT`, `TARGETSTAGE`) and the ARGs declared before
  the first FROM, each a `--build-arg` value if given, else its default (expanded with
  the global args declared above it), else unset (`global_scope`).
- Inside a stage (`StageScope`) a word sees the base image's environment, the stage's
  ENVs so far, and the ARGs the stage declared so far; ENV wins over an ARG of the same
  name. `ARG NAME` takes the `--build-arg` value if given, else its default (expanded),
  else the global value of NAME (this is how a global ARG is used in a stage), else it
  stays unset. A stage built FROM another stage starts with that stage's ENVs and ARGs.
- Only these instructions expand words (the Dockerfile reference's "environment
  replacement" list): ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME,
  WORKDIR, plus ARG defaults, `RUN --mount` options and COPY/ADD heredoc bodies whose
  terminator was not quoted (`$` and `\\` processed there, quotes left alone). RUN, CMD,
  ENTRYPOINT, SHELL and HEALTHCHECK commands are left to the shell; ONBUILD triggers are
  expanded when they run, in the image that inherits them. ENV and LABEL expand all
  their pairs with the values from before the instruction (`ENV a=1 b=$a` sees the old
  `a`).
- The proxy args (`HTTP_PROXY`, `https_proxy`, `NO_PROXY`, ... both cases) given as
  `--build-arg` reach RUN's environment without an ARG and stay out of history; they are
  never reported as unused. ARG values are in RUN's environment but not in the image.
"""

from __future__ import annotations

import dataclasses
import re
import signal as _signal
from typing import TypeVar, cast

from cove.errors import BuildError, DockerfileError
from cove.image.build.instructions import (
    Add,
    Arg,
    ArgDecl,
    Copy,
    Env,
    Expose,
    Instruction,
    KeyValue,
    Label,
    Run,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from cove.image.build.mounts import MountSpecError, parse_mount
from cove.image.build.shellwords import ShellLex
from cove.image.platform import Platform, host_platform, parse_platform

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from cove.image.build.instructions import Dockerfile, From

InstructionT = TypeVar("InstructionT", bound=Instruction)

PROXY_ARGS = frozenset(
    name
    for base in ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")
    for name in (base, base.lower())
)
PLATFORM_ARGS = (
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
)
#: build args cove knows without an ARG: never reported as unused
BUILTIN_ARGS = PROXY_ARGS | frozenset(PLATFORM_ARGS) | {"TARGETSTAGE", "SOURCE_DATE_EPOCH"}

_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/([A-Za-z]+))?$")
_PROTOCOLS = ("tcp", "udp", "sctp")
_RT_SIGNAL = re.compile(r"^(?:SIG)?RTM(IN|AX)(?:([+-])(\d+))?$", re.IGNORECASE)


# --- platforms and the global scope ---------------------------------------------------------


def _platform(value: str | Platform | None) -> Platform:
    if value is None:
        return host_platform()
    if isinstance(value, Platform):
        return value.normalized()
    return parse_platform(value)


def _platform_args(prefix: str, platform: Platform) -> dict[str, str]:
    variant = platform.variant
    if platform.architecture == "arm64" and variant == "v8":
        variant = ""  # Docker spells linux/arm64/v8 as linux/arm64
    text = f"{platform.os}/{platform.architecture}" + (f"/{variant}" if variant else "")
    return {
        f"{prefix}PLATFORM": text,
        f"{prefix}OS": platform.os,
        f"{prefix}ARCH": platform.architecture,
        f"{prefix}VARIANT": variant,
    }


def automatic_args(
    target_platform: str | Platform | None = None,
    build_platform: str | Platform | None = None,
    target_stage: str | None = None,
) -> dict[str, str]:
    """The args every Dockerfile has in its global scope: the platform of the build
    (this host unless given) and of the target (the build platform unless given), and
    the target stage's name when there is one."""
    build = _platform(build_platform)
    target = _platform(target_platform) if target_platform is not None else build
    values = {**_platform_args("TARGET", target), **_platform_args("BUILD", build)}
    if target_stage:
        values["TARGETSTAGE"] = target_stage
    return values


def _process(lexer: ShellLex, word: str, env: Mapping[str, str], file: str, line: int) -> str:
    try:
        return lexer.process_word(word, env)
    except BuildError as exc:
        raise DockerfileError(str(exc), file=file, line=line) from None


def global_scope(
    dockerfile: Dockerfile,
    build_args: Mapping[str, str] | None = None,
    automatic: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The values FROM lines see (and that `ARG NAME` in a stage picks up)."""
    build_args = build_args or {}
    values = dict(automatic if automatic is not None else automatic_args())
    lexer = ShellLex(dockerfile.escape)
    for instruction in dockerfile.global_args:
        for decl in instruction.args:
            if decl.name in build_args:
                values[decl.name] = build_args[decl.name]
            elif decl.default is not None:
                values[decl.name] = _process(
                    lexer, decl.default, values, dockerfile.filename, instruction.line
                )
    return values


def expand_from(
    instruction: From, scope: Mapping[str, str], *, file: str = "Dockerfile", escape: str = "\\"
) -> tuple[str, str | None]:
    """(image, platform) of a FROM line, expanded with the global scope."""
    lexer = ShellLex(escape)
    image = _process(lexer, instruction.image, scope, file, instruction.line)
    if not image:
        raise DockerfileError(
            f"base name ({instruction.image}) should not be blank", file=file, line=instruction.line
        )
    platform = None
    if instruction.platform is not None:
        platform = _process(lexer, instruction.platform, scope, file, instruction.line)
        if not platform:
            raise DockerfileError(
                f"empty platform value from expression {instruction.platform}",
                file=file,
                line=instruction.line,
            )
    return image, platform


# --- values checked after expansion ---------------------------------------------------------


def parse_expose(word: str) -> list[str]:
    """`80`, `80/udp`, `8000-8002/tcp`: the image config keys, one per port (`80/tcp`)."""
    match = _PORT.match(word.strip())
    if match is None:
        raise ValueError(f"invalid port specification {word!r} (port[-port][/protocol])")
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else start
    protocol = (match.group(3) or "tcp").lower()
    if protocol not in _PROTOCOLS:
        raise ValueError(f"invalid protocol {match.group(3)!r} in {word!r} (tcp, udp or sctp)")
    if not 0 < start <= 65535 or not 0 < end <= 65535 or end < start:
        raise ValueError(f"invalid port range {word!r}")
    return [f"{port}/{protocol}" for port in range(start, end + 1)]


def check_signal(text: str) -> str:
    """`text` when it names a signal (`SIGTERM`, `TERM`, `15`, `SIGRTMIN+3`)."""
    if text.isdigit():
        if 0 < int(text) <= 64:
            return text
        raise ValueError(f"invalid signal: {text}")
    name = text.upper()
    if _RT_SIGNAL.match(name):
        return text
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name in _signal.Signals.__members__:
        return text
    raise ValueError(f"invalid signal: {text}")


# --- the scope of one stage -----------------------------------------------------------------


def _env_dict(image_env: Iterable[str] | Mapping[str, str]) -> dict[str, str]:
    if hasattr(image_env, "items"):
        return dict(cast("Mapping[str, str]", image_env))
    out: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


class StageScope:
    """The ENV and ARG values of one stage while its instructions are expanded in order.

    `global_args`: `global_scope(...)`. `build_args`: the `--build-arg` values.
    `image_env`: the base image's `config.Env` (`["K=V", ...]` or a mapping).
    """

    def __init__(
        self,
        *,
        global_args: Mapping[str, str] | None = None,
        build_args: Mapping[str, str] | None = None,
        image_env: Iterable[str] | Mapping[str, str] = (),
        file: str = "Dockerfile",
        escape: str = "\\",
    ) -> None:
        self.global_args = dict(global_args or {})
        self.build_args = dict(build_args or {})
        self.env = _env_dict(image_env)  # the image's environment: base, then ENVs
        self.args: dict[str, str] = {}  # ARG values declared so far, in order
        self.declared: list[str] = []  # ARG names declared so far (with or without value)
        self.file = file
        self.escape = escape
        self._lexer = ShellLex(escape)
        self._raw_lexer = ShellLex("\\", skip_quotes=True)

    def inherit(self) -> StageScope:
        """The scope a stage built FROM this stage starts with."""
        child = StageScope(
            global_args=self.global_args,
            build_args=self.build_args,
            image_env=self.env,
            file=self.file,
            escape=self.escape,
        )
        child.args = dict(self.args)
        child.declared = list(self.declared)
        return child

    # --- views ----------------------------------------------------------------------------

    def values(self) -> dict[str, str]:
        """What a word sees: ARGs, overridden by the environment."""
        return {**self.args, **self.env}

    def config_env(self) -> list[str]:
        """The image's `config.Env`."""
        return [f"{key}={value}" for key, value in self.env.items()]

    def arg_pairs(self) -> list[tuple[str, str]]:
        """The declared ARGs that have a value and are not shadowed by ENV, in order:
        what Docker records before a RUN in history (`RUN |2 A=1 B=2 ...`)."""
        return [(key, value) for key, value in self.args.items() if key not in self.env]

    def run_env(self) -> list[str]:
        """The environment of a RUN: the image's, then the ARGs it does not override, then
        the proxy build args not otherwise set."""
        out = dict(self.env)
        for key, value in self.args.items():
            out.setdefault(key, value)
        for key in sorted(PROXY_ARGS & self.build_args.keys()):
            out.setdefault(key, self.build_args[key])
        return [f"{key}={value}" for key, value in out.items()]

    # --- expansion ------------------------------------------------------------------------

    def expand_word(self, word: str, *, line: int = 0) -> str:
        """`word` expanded with what the stage sees now (quotes and escapes processed)."""
        return _process(self._lexer, word, self.values(), self.file, line)

    def _words(self, text: str, line: int) -> list[str]:
        try:
            return self._lexer.process_words(text, self.values())
        except BuildError as exc:
            raise DockerfileError(str(exc), file=self.file, line=line) from None

    def _error(self, instruction: Instruction, reason: str) -> DockerfileError:
        return DockerfileError(reason, file=self.file, line=instruction.line)

    def expand(self, instruction: InstructionT) -> InstructionT:
        """`instruction` with its words expanded; ARG and ENV also update the scope.
        Instructions that expand nothing come back unchanged."""
        line = instruction.line

        def word(text: str) -> str:
            return _process(self._lexer, text, env, self.file, line)

        env = self.values()
        result: Instruction = instruction
        if isinstance(instruction, Arg):
            result = self._declare(instruction)
        elif isinstance(instruction, Env):
            pairs = tuple(KeyValue(word(p.key), word(p.value), p.legacy) for p in instruction.pairs)
            for pair in pairs:
                if not pair.key:
                    raise self._error(instruction, "ENV names can not be blank")
                self.env[pair.key] = pair.value
            result = dataclasses.replace(instruction, pairs=pairs)
        elif isinstance(instruction, Label):
            pairs = tuple(KeyValue(word(p.key), word(p.value), p.legacy) for p in instruction.pairs)
            result = dataclasses.replace(instruction, pairs=pairs)
        elif isinstance(instruction, (Copy, Add)):
            result = self._expand_copy(instruction, word, env)
        elif isinstance(instruction, Workdir):
            result = dataclasses.replace(instruction, path=word(instruction.path))
        elif isinstance(instruction, User):
            result = dataclasses.replace(instruction, user=word(instruction.user))
        elif isinstance(instruction, StopSignal):
            value = word(instruction.signal)
            try:
                check_signal(value)
            except ValueError as exc:
                raise self._error(instruction, f"STOPSIGNAL: {exc}") from None
            result = dataclasses.replace(instruction, signal=value)
        elif isinstance(instruction, Volume):
            paths = tuple(word(path) for path in instruction.paths)
            if any(not path.strip() for path in paths):
                raise self._error(instruction, "VOLUME specified can not be an empty string")
            result = dataclasses.replace(instruction, paths=paths)
        elif isinstance(instruction, Expose):
            ports: list[str] = []
            for text in instruction.ports:
                for item in self._words(text, line):
                    try:
                        ports.extend(parse_expose(item))
                    except ValueError as exc:
                        raise self._error(instruction, f"EXPOSE: {exc}") from None
            result = dataclasses.replace(instruction, ports=tuple(dict.fromkeys(ports)))
        elif isinstance(instruction, Run) and instruction.mount_specs:
            mounts = []
            for spec in instruction.mount_specs:
                try:
                    mounts.append(parse_mount(spec, expand=word))
                except MountSpecError as exc:
                    raise self._error(instruction, f"RUN --mount={spec}: {exc}") from None
            result = dataclasses.replace(instruction, mounts=tuple(mounts))
        return cast("InstructionT", result)

    def _declare(self, instruction: Arg) -> Arg:
        decls = []
        for decl in instruction.args:
            value: str | None
            if decl.name in self.build_args:
                value = self.build_args[decl.name]
            elif decl.default is not None:
                value = _process(
                    self._lexer, decl.default, self.values(), self.file, instruction.line
                )
            else:
                value = self.global_args.get(decl.name)
            if value is not None:
                self.args[decl.name] = value
            elif decl.name in self.args:
                value = self.args[decl.name]
            if decl.name not in self.declared:
                self.declared.append(decl.name)
            decls.append(ArgDecl(decl.name, value))
        return dataclasses.replace(instruction, args=tuple(decls))

    def _expand_copy(
        self, instruction: Copy | Add, word: Callable[[str], str], env: Mapping[str, str]
    ) -> Instruction:
        heredocs = tuple(
            dataclasses.replace(
                doc,
                content=_process(self._raw_lexer, doc.content, env, self.file, instruction.line),
            )
            if doc.expand
            else doc
            for doc in instruction.heredocs
        )
        expanded: Copy | Add = dataclasses.replace(
            instruction,
            sources=tuple(word(source) for source in instruction.sources),
            dest=word(instruction.dest),
            chown=None if instruction.chown is None else word(instruction.chown),
            chmod=None if instruction.chmod is None else word(instruction.chmod),
            excludes=tuple(word(pattern) for pattern in instruction.excludes),
            heredocs=heredocs,
        )
        if isinstance(expanded, Add) and expanded.checksum is not None:
            expanded = dataclasses.replace(expanded, checksum=word(expanded.checksum))
        return expanded
