"""The Dockerfile (Containerfile) parser: text in, typed instructions grouped in stages out.

`parse_dockerfile(text, filename=...)` reads the whole syntax of the Dockerfile
reference (see `cove.image.build.lexer` for lines, comments, continuations and
directives, `cove.image.build.heredoc` for heredocs). It checks what can be checked
before variables are known: the instruction names (case-insensitive), their flags and
argument counts, JSON forms, stage names, the ONBUILD rules, the EXPOSE ports and
STOPSIGNAL signals written without variables. Every error is a
`DockerfileError` naming the file and the instruction's first line.

The instruction parsers live by family: `parser_config` (FROM, ARG, ENV, LABEL,
WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL, MAINTAINER), `parser_commands` (RUN, CMD,
ENTRYPOINT, SHELL, HEALTHCHECK), `parser_files` (COPY, ADD), on the shared
`parser_context`; this module dispatches to them and handles ONBUILD, heredoc bodies
and the file's stages.

Decisions where Docker is lenient (each is reported the same way, with the line):
- text that is clearly a broken JSON array (`CMD ["a", 'b']`) is an error, where Docker
  would hand it to `/bin/sh -c` (see `words.looks_like_json_array`);
- a file that ends inside a line continuation is an error.
"""

from __future__ import annotations

import dataclasses

from cove.errors import DockerfileError
from cove.image.build.heredoc import HeredocMarker, markers_in_line
from cove.image.build.instructions import (
    Arg,
    Dockerfile,
    From,
    Heredoc,
    Instruction,
    Note,
    Onbuild,
    Stage,
)
from cove.image.build.lexer import LineReader, LogicalLine
from cove.image.build.parser_commands import (
    parse_cmd,
    parse_entrypoint,
    parse_healthcheck,
    parse_run,
    parse_shell,
)
from cove.image.build.parser_config import (
    parse_arg,
    parse_env,
    parse_expose,
    parse_from,
    parse_label,
    parse_maintainer,
    parse_stopsignal,
    parse_user,
    parse_volume,
    parse_workdir,
)
from cove.image.build.parser_context import Ctx, Flags
from cove.image.build.parser_files import parse_add, parse_copy
from cove.image.build.words import NotStringArray, extract_flags, parse_json_array, split_command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_HEREDOC_KEYWORDS = ("RUN", "COPY", "ADD")


def parse_onbuild(ctx: Ctx, flags: Flags, rest: str) -> Instruction:
    if not rest:
        raise ctx.error("ONBUILD requires at least one argument")
    keyword = split_command(rest)[0].upper()
    if keyword == "ONBUILD":
        raise ctx.error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if keyword in ("FROM", "MAINTAINER"):
        raise ctx.error(f"{keyword} isn't allowed as an ONBUILD trigger")
    inner = LogicalLine(rest, ctx.line.start, ctx.line.end, ctx.line.empty_continuation)
    trigger = _parse_logical(Ctx(ctx.filename, inner, ctx.escape, ctx.heredocs, ctx.notes), rest)
    expression = rest + "".join(f"\n{doc.content}{doc.name}" for doc in ctx.heredocs)
    return Onbuild(*ctx.common, expression=expression, trigger=trigger)


_PARSERS: dict[str, Callable[[Ctx, Flags, str], Instruction]] = {
    "FROM": parse_from,
    "ARG": parse_arg,
    "ENV": parse_env,
    "LABEL": parse_label,
    "RUN": parse_run,
    "COPY": parse_copy,
    "ADD": parse_add,
    "WORKDIR": parse_workdir,
    "USER": parse_user,
    "EXPOSE": parse_expose,
    "VOLUME": parse_volume,
    "CMD": parse_cmd,
    "ENTRYPOINT": parse_entrypoint,
    "SHELL": parse_shell,
    "STOPSIGNAL": parse_stopsignal,
    "HEALTHCHECK": parse_healthcheck,
    "MAINTAINER": parse_maintainer,
    "ONBUILD": parse_onbuild,
}


def _parse_logical(ctx: Ctx, text: str) -> Instruction:
    """One instruction from its logical line (`text`; the heredoc bodies already read)."""
    written, rest = split_command(text)
    keyword = written.upper()
    parser = _PARSERS.get(keyword)
    if parser is None:
        raise ctx.error(f"unknown instruction: {written}")
    flag_words, rest = extract_flags(rest) if keyword != "ONBUILD" else ([], rest)
    flags = Flags(ctx, keyword, flag_words)
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
    ctx = Ctx(reader.filename, line, reader.directives.escape, heredocs, notes)
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
