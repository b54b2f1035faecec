"""The Dockerfile (Containerfile) parser: text in, typed instructions grouped in stages out.

`parse_dockerfile(text, filename=...)` reads the whole syntax of the Dockerfile
reference (see `cove.image.build.lexer` for lines, comments, continuations and
directives, `cove.image.build.heredoc` for heredocs). It checks what can be checked
before variables are known: the instruction names (case-insensitive), their flags and
argument counts, JSON forms, stage names, the ONBUILD rules, the EXPOSE ports and
STOPSIGNAL signals written without variables. Every error is a
`DockerfileError` naming the file and the instruction's first line.

Decisions where Docker is lenient (each is reported the same way, with the line):
- text that is clearly a broken JSON array (`CMD ["a", 'b']`) is an error, where Docker
  would hand it to `/bin/sh -c` (see `words.looks_like_json_array`);
- a file that ends inside a line continuation is an error.
"""

from __future__ import annotations

import dataclasses
import re

from cove.errors import DockerfileError
from cove.image.build.expand import check_signal, parse_expose
from cove.image.build.heredoc import HeredocMarker, markers_in_line, parse_marker
from cove.image.build.instructions import (
    Add,
    Arg,
    ArgDecl,
    Cmd,
    CommandLine,
    Copy,
    Dockerfile,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Heredoc,
    Instruction,
    KeyValue,
    Label,
    Maintainer,
    Note,
    Onbuild,
    Run,
    Shell,
    Stage,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from cove.image.build.lexer import LineReader, LogicalLine
from cove.image.build.mounts import MountSpecError, parse_mount
from cove.image.build.words import (
    NotStringArray,
    extract_flags,
    looks_like_json_array,
    parse_json_array,
    parse_words,
    split_command,
    split_whitespace,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

STAGE_NAME = re.compile(r"^[a-z][a-z0-9\-_.]*$")
_HEREDOC_KEYWORDS = ("RUN", "COPY", "ADD")
_NETWORKS = ("default", "none", "host")
_SECURITY = ("sandbox", "insecure")
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MIN_HEALTH_DURATION = 1_000_000  # 1ms

_BOOL, _STRING, _STRINGS = "bool", "string", "strings"
_FLAGS: dict[str, dict[str, str]] = {
    "FROM": {"platform": _STRING},
    "RUN": {"mount": _STRINGS, "network": _STRING, "security": _STRING},
    "COPY": {
        "from": _STRING,
        "chown": _STRING,
        "chmod": _STRING,
        "link": _BOOL,
        "parents": _BOOL,
        "exclude": _STRINGS,
    },
    "ADD": {
        "chown": _STRING,
        "chmod": _STRING,
        "link": _BOOL,
        "checksum": _STRING,
        "keep-git-dir": _BOOL,
        "exclude": _STRINGS,
        "unpack": _BOOL,
    },
    "HEALTHCHECK": {
        "interval": _STRING,
        "timeout": _STRING,
        "start-period": _STRING,
        "start-interval": _STRING,
        "retries": _STRING,
    },
}


class _Ctx:
    """What parsing one instruction needs: where it is, its text, the heredoc bodies
    read after it, and where notes go."""

    def __init__(
        self,
        filename: str,
        line: LogicalLine,
        escape: str,
        heredocs: list[Heredoc],
        notes: list[Note],
    ) -> None:
        self.filename = filename
        self.line = line
        self.escape = escape
        self.heredocs = heredocs
        self.notes = notes

    def error(self, reason: str) -> DockerfileError:
        return DockerfileError(reason, file=self.filename, line=self.line.start)

    def note(self, message: str) -> None:
        self.notes.append(Note(self.filename, self.line.start, message))

    @property
    def common(self) -> tuple[int, int, str]:
        return self.line.start, self.line.end, self.line.text.strip()


class _Flags:
    """The parsed `--flags` of one instruction."""

    def __init__(self, ctx: _Ctx, keyword: str, words: list[str]) -> None:
        allowed = _FLAGS.get(keyword, {})
        self.values: dict[str, str | bool | list[str]] = {}
        for word in words:
            name, sep, value = word[2:].partition("=")
            kind = allowed.get(name)
            if kind is None:
                raise ctx.error(f"unknown flag for {keyword}: --{name}")
            if name in self.values and kind != _STRINGS:
                raise ctx.error(f"duplicate flag for {keyword}: --{name}")
            if kind == _BOOL:
                if not sep:
                    self.values[name] = True
                elif value.lower() in ("true", "false"):
                    self.values[name] = value.lower() == "true"
                else:
                    raise ctx.error(f"expecting a boolean value for --{name}, not {value!r}")
            elif not sep:
                raise ctx.error(f"missing a value on flag --{name} (--{name}=VALUE)")
            elif kind == _STRINGS:
                existing = self.values.setdefault(name, [])
                assert isinstance(existing, list)
                existing.append(value)
            else:
                self.values[name] = value

    def string(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def boolean(self, name: str) -> bool:
        return self.values.get(name) is True

    def optional_bool(self, name: str) -> bool | None:
        value = self.values.get(name)
        return value if isinstance(value, bool) else None

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.values.get(name)
        return tuple(value) if isinstance(value, list) else ()

    def __bool__(self) -> bool:
        return bool(self.values)


# --- helpers -------------------------------------------------------------------------------


def _json_or_none(ctx: _Ctx, keyword: str, rest: str) -> list[str] | None:
    try:
        args = parse_json_array(rest)
    except NotStringArray:
        raise ctx.error(
            f"{keyword}: when using the JSON array syntax, arrays must hold strings only"
        ) from None
    if args is None and looks_like_json_array(rest):
        raise ctx.error(
            f"{keyword}: malformed JSON in exec form: {rest.strip()} (use double quotes and "
            'commas: ["executable", "arg"])'
        )
    return args


def _command(ctx: _Ctx, keyword: str, rest: str) -> CommandLine:
    args = _json_or_none(ctx, keyword, rest)
    if args is not None:
        return CommandLine(tuple(args), exec_form=True)
    if not rest:
        raise ctx.error(f"{keyword} requires at least one argument")
    return CommandLine((rest,), exec_form=False)


def _single(ctx: _Ctx, keyword: str, rest: str) -> str:
    if not rest:
        raise ctx.error(f"{keyword} requires exactly one argument")
    return rest


def _list(ctx: _Ctx, keyword: str, rest: str) -> tuple[list[str], bool]:
    """The arguments of COPY, ADD and VOLUME: a JSON array, or words split on
    whitespace (quotes are not word boundaries there)."""
    args = _json_or_none(ctx, keyword, rest)
    if args is not None:
        return args, True
    return split_whitespace(rest), False


def _key_values(ctx: _Ctx, keyword: str, rest: str) -> tuple[KeyValue, ...]:
    words = parse_words(rest, ctx.escape)
    if not words:
        raise ctx.error(f"{keyword} requires at least one argument")
    if "=" not in words[0]:
        parts = re.split(r"[\t\v\f\r ]+", rest.strip(), maxsplit=1)
        if len(parts) < 2:
            raise ctx.error(f"{keyword} must have two arguments (or use {keyword} key=value)")
        ctx.note(f'"{keyword} key value" is a legacy form; prefer "{keyword} key=value"')
        return (KeyValue(parts[0], parts[1], legacy=True),)
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ctx.error(
                f"{keyword}: syntax error - can't find = in {word!r}, must be of the form "
                "name=value"
            )
        if not key:
            raise ctx.error(f"{keyword} names can not be blank")
        pairs.append(KeyValue(key, value))
    return tuple(pairs)


def parse_duration(text: str) -> int:
    """A Go duration (`30s`, `1m30s`, `1.5h`, `500ms`, `0`) in nanoseconds."""
    body = text.strip()
    sign = 1
    if body.startswith(("+", "-")):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION.match(body, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return sign * round(total)


# --- one parser per instruction -------------------------------------------------------------


def _parse_from(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    words = split_whitespace(rest)
    name = None
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not STAGE_NAME.match(name):
            raise ctx.error(
                f"invalid name for build stage: {words[2]!r}, name can't start with a number "
                "or contain symbols"
            )
        if name in ("scratch", "context"):
            ctx.note(f"stage name {name!r} is reserved and may be confused with an image")
    elif len(words) != 1:
        raise ctx.error("FROM requires either one or three arguments (FROM image [AS name])")
    return From(*ctx.common, image=words[0], name=name, platform=flags.string("platform"))


def _parse_arg(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    words = parse_words(rest, ctx.escape)
    if not words:
        raise ctx.error("ARG requires at least one argument")
    decls = []
    for word in words:
        name, sep, default = word.partition("=")
        if not name:
            raise ctx.error("ARG names can not be blank")
        decls.append(ArgDecl(name, default if sep else None))
    return Arg(*ctx.common, args=tuple(decls))


def _parse_env(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    return Env(*ctx.common, pairs=_key_values(ctx, "ENV", rest))


def _parse_label(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    return Label(*ctx.common, pairs=_key_values(ctx, "LABEL", rest))


def _parse_run(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    command = _command(ctx, "RUN", rest)
    mounts = []
    for spec in flags.strings("mount"):
        try:
            mounts.append(parse_mount(spec, deferred=True))
        except MountSpecError as exc:
            raise ctx.error(f"RUN --mount={spec}: {exc}") from None
        if mounts[-1].from_ is not None and "$" in mounts[-1].from_:
            raise ctx.error(
                "variable expansion is not supported for the from= of a mount; define a "
                "stage with FROM using a global ARG instead"
            )
    network = flags.string("network")
    if network is not None and network not in _NETWORKS:
        raise ctx.error(f"RUN: unsupported network mode {network!r} (default, none or host)")
    security = flags.string("security")
    if security is not None and security not in _SECURITY:
        raise ctx.error(f"RUN: unsupported security mode {security!r} (sandbox or insecure)")
    return Run(
        *ctx.common,
        command=command,
        mounts=tuple(mounts),
        mount_specs=flags.strings("mount"),
        network=network,
        security=security,
        heredocs=tuple(ctx.heredocs),
    )


def _copy_args(ctx: _Ctx, keyword: str, rest: str) -> tuple[list[str], str, bool]:
    args, exec_form = _list(ctx, keyword, rest)
    if len(args) < 2:
        raise ctx.error(
            f"{keyword} requires at least two arguments (sources, then the destination), "
            f"got {len(args)}"
        )
    sources: list[str] = []
    docs = iter(ctx.heredocs)
    for source in args[:-1]:
        if not exec_form and parse_marker(source) is not None:
            if next(docs, None) is None:
                raise ctx.error(f"{keyword}: heredoc {source} has no body")
            continue
        sources.append(source)
    return sources, args[-1], exec_form


def _parse_copy(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    sources, dest, exec_form = _copy_args(ctx, "COPY", rest)
    source_stage = flags.string("from")
    if source_stage is not None:
        if not source_stage:
            raise ctx.error("COPY: --from needs a stage name, a stage index or an image")
        if "$" in source_stage:
            raise ctx.error(
                "variable expansion is not supported for --from; define a stage with FROM "
                "using a global ARG instead"
            )
    if flags.boolean("link"):
        ctx.note("COPY --link is accepted; cove builds the layer the same way without it")
    return Copy(
        *ctx.common,
        sources=tuple(sources),
        dest=dest,
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.boolean("link"),
        excludes=flags.strings("exclude"),
        heredocs=tuple(ctx.heredocs),
        exec_form=exec_form,
        from_=source_stage,
        parents=flags.boolean("parents"),
    )


def _parse_add(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    sources, dest, exec_form = _copy_args(ctx, "ADD", rest)
    if flags.boolean("link"):
        ctx.note("ADD --link is accepted; cove builds the layer the same way without it")
    return Add(
        *ctx.common,
        sources=tuple(sources),
        dest=dest,
        chown=flags.string("chown"),
        chmod=flags.string("chmod"),
        link=flags.boolean("link"),
        excludes=flags.strings("exclude"),
        heredocs=tuple(ctx.heredocs),
        exec_form=exec_form,
        checksum=flags.string("checksum"),
        keep_git_dir=flags.boolean("keep-git-dir"),
        unpack=flags.optional_bool("unpack"),
    )


def _parse_workdir(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    return Workdir(*ctx.common, path=_single(ctx, "WORKDIR", rest))


def _parse_user(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    return User(*ctx.common, user=_single(ctx, "USER", rest))


def _parse_expose(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    ports = split_whitespace(rest)
    if not ports:
        raise ctx.error("EXPOSE requires at least one argument")
    for port in ports:
        if not any(ch in port for ch in "$'\"\\"):
            try:
                parse_expose(port)
            except ValueError as exc:
                raise ctx.error(f"EXPOSE: {exc}") from None
    return Expose(*ctx.common, ports=tuple(ports))


def _parse_volume(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    paths, exec_form = _list(ctx, "VOLUME", rest)
    if not paths:
        raise ctx.error("VOLUME requires at least one argument")
    if any(not path.strip() for path in paths):
        raise ctx.error("VOLUME specified can not be an empty string")
    return Volume(*ctx.common, paths=tuple(paths), exec_form=exec_form)


def _parse_cmd(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    return Cmd(*ctx.common, command=_command(ctx, "CMD", rest))


def _parse_entrypoint(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    return Entrypoint(*ctx.common, command=_command(ctx, "ENTRYPOINT", rest))


def _parse_shell(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    args = _json_or_none(ctx, "SHELL", rest)
    if args is None:
        raise ctx.error('SHELL requires the arguments to be in JSON form: SHELL ["sh", "-c"]')
    if not args:
        raise ctx.error("SHELL requires at least one argument")
    return Shell(*ctx.common, args=tuple(args))


def _parse_stopsignal(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    signal = _single(ctx, "STOPSIGNAL", rest)
    if not any(ch in signal for ch in "$'\"\\"):
        try:
            check_signal(signal)
        except ValueError as exc:
            raise ctx.error(f"STOPSIGNAL: {exc}") from None
    return StopSignal(*ctx.common, signal=signal)


def _parse_maintainer(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    ctx.note('MAINTAINER is deprecated; use LABEL org.opencontainers.image.authors="..."')
    return Maintainer(*ctx.common, name=_single(ctx, "MAINTAINER", rest))


def _health_duration(ctx: _Ctx, flags: _Flags, name: str) -> int:
    text = flags.string(name)
    if text is None:
        return 0
    try:
        value = parse_duration(text)
    except ValueError:
        raise ctx.error(f"HEALTHCHECK: invalid duration for --{name}: {text!r}") from None
    if value != 0 and value < _MIN_HEALTH_DURATION:
        raise ctx.error(f"HEALTHCHECK: --{name} {text!r} cannot be less than 1ms")
    return value


def _parse_healthcheck(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    parts = rest.split(None, 1)
    if not parts:
        raise ctx.error("HEALTHCHECK requires an argument (NONE, or CMD ...)")
    kind = parts[0].upper()
    tail = parts[1].strip() if len(parts) == 2 else ""
    if kind == "NONE":
        if tail:
            raise ctx.error("HEALTHCHECK NONE takes no arguments")
        if flags:
            raise ctx.error("HEALTHCHECK NONE takes no options")
        return Healthcheck(*ctx.common, test=("NONE",))
    if kind != "CMD":
        raise ctx.error(f"unknown type {parts[0]!r} in HEALTHCHECK (try CMD)")
    if not tail:
        raise ctx.error("HEALTHCHECK CMD requires a command")
    command = _command(ctx, "HEALTHCHECK", tail)
    test = ("CMD", *command.args) if command.exec_form else ("CMD-SHELL", tail)
    retries_text = flags.string("retries")
    retries = 0
    if retries_text is not None:
        try:
            retries = int(retries_text)
        except ValueError:
            raise ctx.error(f"HEALTHCHECK: invalid --retries {retries_text!r}") from None
        if retries < 0:
            raise ctx.error("HEALTHCHECK: --retries cannot be negative")
    return Healthcheck(
        *ctx.common,
        test=test,
        interval=_health_duration(ctx, flags, "interval"),
        timeout=_health_duration(ctx, flags, "timeout"),
        start_period=_health_duration(ctx, flags, "start-period"),
        start_interval=_health_duration(ctx, flags, "start-interval"),
        retries=retries,
    )


def _parse_onbuild(ctx: _Ctx, flags: _Flags, rest: str) -> Instruction:
    if not rest:
        raise ctx.error("ONBUILD requires at least one argument")
    keyword = split_command(rest)[0].upper()
    if keyword == "ONBUILD":
        raise ctx.error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if keyword in ("FROM", "MAINTAINER"):
        raise ctx.error(f"{keyword} isn't allowed as an ONBUILD trigger")
    inner = LogicalLine(rest, ctx.line.start, ctx.line.end, ctx.line.empty_continuation)
    trigger = _parse_logical(_Ctx(ctx.filename, inner, ctx.escape, ctx.heredocs, ctx.notes), rest)
    expression = rest + "".join(f"\n{doc.content}{doc.name}" for doc in ctx.heredocs)
    return Onbuild(*ctx.common, expression=expression, trigger=trigger)


_PARSERS: dict[str, Callable[[_Ctx, _Flags, str], Instruction]] = {
    "FROM": _parse_from,
    "ARG": _parse_arg,
    "ENV": _parse_env,
    "LABEL": _parse_label,
    "RUN": _parse_run,
    "COPY": _parse_copy,
    "ADD": _parse_add,
    "WORKDIR": _parse_workdir,
    "USER": _parse_user,
    "EXPOSE": _parse_expose,
    "VOLUME": _parse_volume,
    "CMD": _parse_cmd,
    "ENTRYPOINT": _parse_entrypoint,
    "SHELL": _parse_shell,
    "STOPSIGNAL": _parse_stopsignal,
    "HEALTHCHECK": _parse_healthcheck,
    "MAINTAINER": _parse_maintainer,
    "ONBUILD": _parse_onbuild,
}


def _parse_logical(ctx: _Ctx, text: str) -> Instruction:
    """One instruction from its logical line (`text`; the heredoc bodies already read)."""
    written, rest = split_command(text)
    keyword = written.upper()
    parser = _PARSERS.get(keyword)
    if parser is None:
        raise ctx.error(f"unknown instruction: {written}")
    flag_words, rest = extract_flags(rest) if keyword != "ONBUILD" else ([], rest)
    flags = _Flags(ctx, keyword, flag_words)
    return parser(ctx, flags, rest.strip())


def _heredoc_markers(text: str) -> list[HeredocMarker]:
    """The heredoc markers of a RUN, COPY or ADD (also behind ONBUILD) in shell form."""
    written, rest = split_command(text)
    keyword = written.upper()
    if keyword == "ONBUILD":
        written, rest = split_command(rest)
        keyword = written.upper()
    if keyword not in _HEREDOC_KEYWORDS:
        return []
    _flags, rest = extract_flags(rest)
    try:
        if parse_json_array(rest) is not None:
            return []
    except NotStringArray:
        return []
    return markers_in_line(rest)


def _read_instruction(reader: LineReader, line: LogicalLine, notes: list[Note]) -> Instruction:
    heredocs = [
        Heredoc(
            name=marker.name,
            content=reader.read_heredoc(marker.name, marker.chomp, line.start),
            expand=marker.expand,
            chomp=marker.chomp,
            fd=marker.fd,
        )
        for marker in _heredoc_markers(line.text)
    ]
    if heredocs:
        line = LogicalLine(line.text, line.start, reader.line_number, line.empty_continuation)
    if line.empty_continuation:
        notes.append(
            Note(
                reader.filename,
                line.start,
                "empty continuation line (blank lines inside a continued instruction are "
                "deprecated)",
            )
        )
    ctx = _Ctx(reader.filename, line, reader.directives.escape, heredocs, notes)
    return _parse_logical(ctx, line.text)


def parse_dockerfile(text: str | bytes, *, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile. `filename` is how messages name it."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DockerfileError(f"not valid UTF-8 text ({exc.reason})", file=filename) from None
    reader = LineReader(text, filename)
    notes: list[Note] = []
    directives = reader.directives
    if directives.syntax is not None:
        notes.append(
            Note(
                filename,
                directives.lines["syntax"],
                f"# syntax={directives.syntax} is ignored: cove has its own Dockerfile frontend",
            )
        )
    if directives.check is not None:
        notes.append(Note(filename, directives.lines["check"], "# check= is ignored"))
    global_args: list[Arg] = []
    stages: list[Stage] = []
    current: From | None = None
    body: list[Instruction] = []
    seen_any = False
    while (line := reader.next_line()) is not None:
        seen_any = True
        instruction = _read_instruction(reader, line, notes)
        if isinstance(instruction, From):
            if current is not None:
                stages.append(Stage(len(stages), current, tuple(body)))
            current, body = instruction, []
        elif current is None:
            if not isinstance(instruction, Arg):
                raise DockerfileError(
                    f"{instruction.keyword} before the first FROM: only ARG instructions may "
                    "come before FROM",
                    file=filename,
                    line=instruction.line,
                )
            global_args.append(instruction)
        else:
            body.append(instruction)
    if current is None:
        where = max(reader.line_number, 1)
        if not seen_any:
            raise DockerfileError(
                "the file has no instructions (missing FROM)", file=filename, line=where
            )
        raise DockerfileError(
            "missing FROM: the file has no build stage", file=filename, line=where
        )
    stages.append(Stage(len(stages), current, tuple(body)))
    _note_duplicate_stage_names(filename, stages, notes)
    return Dockerfile(filename, directives, tuple(global_args), tuple(stages), tuple(notes))


def _note_duplicate_stage_names(filename: str, stages: list[Stage], notes: list[Note]) -> None:
    first: dict[str, int] = {}
    for stage in stages:
        if stage.name is None:
            continue
        if stage.name in first:
            notes.append(
                Note(
                    filename,
                    stage.line,
                    f"stage name {stage.name!r} is already used at line {first[stage.name]}; "
                    "references to it mean this later stage",
                )
            )
        else:
            first[stage.name] = stage.line


def parse_instruction(
    text: str, *, filename: str = "Dockerfile", line: int = 1, escape: str = "\\"
) -> Instruction:
    """One instruction from `text` (continuations and heredoc bodies included), numbered
    as if it were at `line`: for ONBUILD triggers found in a base image's config, which
    are reported at the FROM line of the stage that runs them."""
    prefix = "" if escape == "\\" else f"# escape={escape}\n"
    reader = LineReader(prefix + text, filename)
    notes: list[Note] = []
    logical = reader.next_line()
    if logical is None:
        raise DockerfileError("empty instruction", file=filename, line=line)
    instruction = _read_instruction(reader, logical, notes)
    if reader.next_line() is not None:
        raise DockerfileError(
            f"an ONBUILD trigger must be a single instruction: {text!r}", file=filename, line=line
        )
    return _renumber(instruction, line)


def _renumber(instruction: Instruction, line: int) -> Instruction:
    if isinstance(instruction, Onbuild):
        trigger = dataclasses.replace(instruction.trigger, line=line, end_line=line)
        return dataclasses.replace(instruction, line=line, end_line=line, trigger=trigger)
    return dataclasses.replace(instruction, line=line, end_line=line)
