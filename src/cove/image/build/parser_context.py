"""What every instruction parser of `cove.image.build.parser` works with: `Ctx` (where
the instruction is, its heredoc bodies, where notes go, how errors are made), `Flags`
(its `--flags`, checked against what each instruction accepts) and the argument forms
several instructions share (JSON or shell form, one argument, a list, key=value pairs).
"""

from __future__ import annotations

import re

from cove.errors import DockerfileError
from cove.image.build.instructions import CommandLine, KeyValue, Note
from cove.image.build.words import (
    NotStringArray,
    looks_like_json_array,
    parse_json_array,
    parse_words,
    split_whitespace,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.image.build.instructions import Heredoc
    from cove.image.build.lexer import LogicalLine

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


class Ctx:
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


class Flags:
    """The parsed `--flags` of one instruction."""

    def __init__(self, ctx: Ctx, keyword: str, words: list[str]) -> None:
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


def json_or_none(ctx: Ctx, keyword: str, rest: str) -> list[str] | None:
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


def command_line(ctx: Ctx, keyword: str, rest: str) -> CommandLine:
    args = json_or_none(ctx, keyword, rest)
    if args is not None:
        return CommandLine(tuple(args), exec_form=True)
    if not rest:
        raise ctx.error(f"{keyword} requires at least one argument")
    return CommandLine((rest,), exec_form=False)


def single_argument(ctx: Ctx, keyword: str, rest: str) -> str:
    if not rest:
        raise ctx.error(f"{keyword} requires exactly one argument")
    return rest


def argument_list(ctx: Ctx, keyword: str, rest: str) -> tuple[list[str], bool]:
    """The arguments of COPY, ADD and VOLUME: a JSON array, or words split on
    whitespace (quotes are not word boundaries there)."""
    args = json_or_none(ctx, keyword, rest)
    if args is not None:
        return args, True
    return split_whitespace(rest), False


def key_values(ctx: Ctx, keyword: str, rest: str) -> tuple[KeyValue, ...]:
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
