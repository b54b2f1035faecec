"""Heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) in RUN, COPY and ADD.

A marker is a whole word of the instruction line (split as a shell would, quotes kept)
of the form `[fd]<<[-]WORD`. WORD after quote removal is the terminator; when any part
of WORD was quoted the body is not expanded (for COPY/ADD; RUN bodies go to the shell,
which does its own expansion). `<<-` strips leading tabs from the body and from the
terminator line. The bodies follow the instruction, in the order of the markers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cove.errors import BuildError
from cove.image.build.shellwords import ShellLex

_MARKER = re.compile(r"^(\d*)<<(-?)([^<]*)$")


@dataclass(frozen=True)
class HeredocMarker:
    """One `<<WORD` found on an instruction line."""

    word: str  # the marker as written (`<<-"EOF"`)
    name: str  # the terminator (`EOF`)
    expand: bool  # False when the terminator was quoted
    chomp: bool  # `<<-`: leading tabs stripped
    fd: int | None  # `3<<EOF` (a shell redirection of another descriptor)


def parse_marker(word: str) -> HeredocMarker | None:
    """The heredoc marker `word` is, or None when it is not one."""
    match = _MARKER.match(word)
    if match is None or not match.group(3):
        return None
    rest = match.group(3)
    try:
        words = ShellLex("\\").process_words(rest, {})
        raw = ShellLex("\\", raw_quotes=True).process_words(rest, {})
    except BuildError:
        return None
    if len(words) != 1 or len(raw) != 1:
        return None
    name = words[0]
    quotes = name.count("'") + name.count('"')
    raw_quotes = raw[0].count("'") + raw[0].count('"')
    fd = int(match.group(1)) if match.group(1) else None
    return HeredocMarker(word, name, quotes == raw_quotes, match.group(2) == "-", fd)


def markers_in_line(line: str) -> list[HeredocMarker]:
    """The heredoc markers among the words of `line`, in order."""
    lexer = ShellLex("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
    try:
        words = lexer.process_words(line, {})
    except BuildError:
        return []
    found = []
    for word in words:
        marker = parse_marker(word)
        if marker is not None:
            found.append(marker)
    return found
