"""Physical lines to logical instruction lines: parser directives, comments, line
continuations, and the raw lines heredoc bodies are read from.

The rules (Docker's):

- The file is split on `\\n` only; a trailing `\\r` is dropped from each line; a UTF-8
  byte order mark at the start is ignored.
- Parser directives (`# syntax=...`, `# escape=...`, `# check=...`, case-insensitive
  names) are only looked for at the very top: the first line that is not a known
  directive (an instruction, an empty line, any other comment, an unknown directive)
  ends the search. A directive given twice is an error. `escape` is `\\` or a backtick.
- A line whose first non-blank character is `#` is a comment, also in the middle of a
  continued instruction, where it is dropped without ending the instruction. Leading
  whitespace before comments and instructions is ignored.
- An instruction continues on the next line when its line ends with the escape character
  (optionally followed by spaces or tabs) that is not itself escaped; the character and
  what follows it are removed and the next line is appended as it is (its leading
  whitespace kept). Blank lines inside a continued instruction are skipped (deprecated;
  reported as a note). A file that ends while an instruction is still continued is an
  error in cove (Docker silently takes what it has).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cove.errors import DockerfileError

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_KNOWN_DIRECTIVES = ("syntax", "escape", "check")
_BOM = "\ufeff"


@dataclass(frozen=True)
class Directives:
    """The parser directives found at the top of the file."""

    escape: str = "\\"
    syntax: str | None = None
    check: str | None = None
    #: the line of each directive found, by name
    lines: dict[str, int] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class LogicalLine:
    """One instruction's text with its continuations joined, and the lines it spans."""

    text: str
    start: int
    end: int
    #: blank lines were skipped inside the continuation
    empty_continuation: bool = False


def split_lines(text: str) -> list[str]:
    """The physical lines of `text`, split on `\\n` only, each with its line ending."""
    if text.startswith(_BOM):
        text = text[len(_BOM) :]
    if not text:
        return []
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _chomp(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return _chomp(line).lstrip().startswith("#")


class LineReader:
    """Reads logical lines (and heredoc bodies) from the physical lines of a file."""

    def __init__(self, text: str, filename: str = "Dockerfile") -> None:
        self.filename = filename
        self.lines = split_lines(text)
        self.pos = 0  # index of the next physical line; its number is pos + 1
        self.directives = self._read_directives()
        escape = re.escape(self.directives.escape)
        self._continuation = re.compile(rf"(?<!{escape}){escape}[ \t]*$")

    @property
    def line_number(self) -> int:
        """The number of the last line read (0 before any)."""
        return self.pos

    def _read_directives(self) -> Directives:
        found: dict[str, str] = {}
        lines: dict[str, int] = {}
        for index, raw in enumerate(self.lines):
            match = _DIRECTIVE.match(_chomp(raw).lstrip())
            if match is None:
                break
            name = match.group(1).lower()
            if name not in _KNOWN_DIRECTIVES:
                break
            if name in found:
                raise DockerfileError(
                    f"only one {name} parser directive can be used",
                    file=self.filename,
                    line=index + 1,
                )
            found[name] = match.group(2)
            lines[name] = index + 1
        escape = found.get("escape", "\\")
        if escape not in ("\\", "`"):
            raise DockerfileError(
                f"invalid escape token {escape!r} does not match ` or \\",
                file=self.filename,
                line=lines["escape"],
            )
        return Directives(escape, found.get("syntax"), found.get("check"), lines)

    def _trim_continuation(self, line: str) -> tuple[str, bool]:
        """(`line` without a trailing continuation, whether it continues)."""
        match = self._continuation.search(line)
        if match is None:
            return line, False
        return line[: match.start()], True

    def next_line(self) -> LogicalLine | None:
        """The next instruction's logical line, or None at the end of the file."""
        while self.pos < len(self.lines):
            raw = self.lines[self.pos]
            self.pos += 1
            content = _chomp(raw).lstrip()
            if content.startswith("#"):
                continue  # comments and directives
            text, continues = self._trim_continuation(content)
            if not continues and not text:
                continue  # a blank line
            start = self.pos
            empty_continuation = False
            while continues and self.pos < len(self.lines):
                raw = self.lines[self.pos]
                self.pos += 1
                if _is_comment(raw):
                    continue
                body = _chomp(raw)
                if not body.strip():
                    empty_continuation = True
                    continue
                more, continues = self._trim_continuation(body)
                text += more
            if continues:
                raise DockerfileError(
                    "unexpected end of file: the instruction's last line ends with a line "
                    f"continuation ({self.directives.escape})",
                    file=self.filename,
                    line=start,
                )
            return LogicalLine(text, start, self.pos, empty_continuation)
        return None

    def read_heredoc(self, name: str, chomp: bool, start: int) -> str:
        """The body of a heredoc whose terminator is `name`: the lines up to (not
        including) the terminator, line endings kept; with `chomp` (`<<-`), leading tabs
        are removed from each line and allowed before the terminator."""
        body: list[str] = []
        while self.pos < len(self.lines):
            raw = self.lines[self.pos]
            self.pos += 1
            candidate = _chomp(raw)
            if chomp:
                candidate = candidate.lstrip("\t")
            if candidate == name:
                return "".join(body)
            body.append(raw.lstrip("\t") if chomp else raw)
        raise DockerfileError(
            f"unterminated heredoc: no line {name!r} ends it",
            file=self.filename,
            line=start,
        )
