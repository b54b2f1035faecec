"""Splitting one logical Dockerfile line into its parts, before any expansion.

- `split_command`: the instruction keyword and the rest.
- `extract_flags`: the leading `--name[=value]` words (quotes and backslash escapes
  processed inside them; a lone `--` ends the flags).
- `parse_words`: whitespace-separated words that keep their quotes and escapes, for
  ENV/LABEL/ARG (quotes are removed later, when the words are expanded).
- `split_whitespace`: plain splitting on spaces and tabs (COPY/ADD/VOLUME/EXPOSE/FROM
  in their non-JSON forms do not honour quotes when splitting).
- `parse_json_array`: the exec (JSON array) form, or None when the text is not one.
- `looks_like_json_array`: text that was meant as an exec form but is not valid JSON.
"""

from __future__ import annotations

import json
import re

_WHITESPACE = re.compile(r"[\t\v\f\r ]+")
_QUOTED_ITEM = re.compile(r"""\s*(?:"(?:[^"\\]|\\.)*"|'[^']*')\s*""", re.DOTALL)


class NotStringArray(ValueError):
    """A JSON array with an element that is not a string."""


def split_command(line: str) -> tuple[str, str]:
    """(`keyword`, `rest`) of a logical line, both stripped; the keyword as written."""
    parts = _WHITESPACE.split(line.strip(), maxsplit=1)
    if len(parts) == 1:
        return parts[0], ""
    return parts[0], parts[1].strip()


def extract_flags(rest: str) -> tuple[list[str], str]:
    """The `--flag[=value]` words at the start of `rest` and what follows them.

    Quotes inside a flag word are removed and a backslash takes the next character
    literally; a word `--` ends the flags and is dropped.
    """
    flags: list[str] = []
    pos, n = 0, len(rest)
    while True:
        while pos < n and rest[pos].isspace():
            pos += 1
        if pos >= n:
            return flags, ""
        if not rest.startswith("--", pos):
            return flags, rest[pos:]
        word: list[str] = []
        blank_ok = False
        quote = ""
        while pos < n:
            ch = rest[pos]
            if quote:
                if ch == quote:
                    quote = ""
                    pos += 1
                    continue
            elif ch.isspace():
                break
            elif ch in "'\"":
                quote = ch
                blank_ok = True
                pos += 1
                continue
            if ch == "\\":
                if pos + 1 >= n:
                    pos += 1
                    continue
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
        text = "".join(word)
        if text == "--":
            return flags, rest[pos:].strip()
        if text or blank_ok:
            flags.append(text)


def parse_words(rest: str, escape: str) -> list[str]:
    """Words separated by whitespace, quotes and escapes kept (moby's parseWords): a
    quoted part can hold spaces; an escape keeps the next character in the word."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    blank_ok = False
    quote = ""
    pos, n = 0, len(rest)
    while pos < n:
        ch = rest[pos]
        if not in_word:
            if ch.isspace():
                pos += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if pos + 1 >= n:
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
            pos += 1
            continue
        if ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, blank_ok, in_word = [], False, False
            pos += 1
            continue
        if ch in "'\"":
            quote = ch
            blank_ok = True
        elif ch == escape:
            if pos + 1 >= n:
                pos += 1
                continue
            word.append(ch)
            pos += 1
            ch = rest[pos]
        word.append(ch)
        pos += 1
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


def split_whitespace(rest: str) -> list[str]:
    """`rest` split on runs of spaces and tabs; no quote handling."""
    rest = rest.strip()
    return _WHITESPACE.split(rest) if rest else []


def parse_json_array(rest: str) -> list[str] | None:
    """The strings of a JSON array, or None when `rest` is not a JSON array.

    Raises NotStringArray for a valid array with a non-string element (Docker refuses
    those rather than falling back to the shell form).
    """
    text = rest.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise NotStringArray(text)
    return value


def looks_like_json_array(rest: str) -> bool:
    """True for text that is clearly a broken exec form: inside `[...]` only quoted
    strings (double or single quotes) separated by commas, with at least one comma or a
    single-quoted item, e.g. `["echo", 'hi']` or `["a", "b",]`.

    Docker runs such text through the shell, where it fails obscurely; cove reports it.
    Shell commands that start with `[` (`[ -f x ] && ...`, `[ "$a" = b ]`) contain bare
    words and are left alone.
    """
    text = rest.strip()
    if len(text) < 2 or text[0] != "[" or text[-1] != "]":
        return False
    inner = text[1:-1]
    pos, items, commas, single = 0, 0, 0, False
    while pos < len(inner):
        match = _QUOTED_ITEM.match(inner, pos)
        if match is None:
            return False
        items += 1
        single = single or match.group(0).strip().startswith("'")
        pos = match.end()
        if pos < len(inner):
            if inner[pos] != ",":
                return False
            commas += 1
            pos += 1
            if not inner[pos:].strip():
                break  # a trailing comma
    return items > 0 and (commas > 0 or single)
