"""cove.image.build.words: splitting an instruction line before expansion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.image.build.words import (
    NotStringArray,
    extract_flags,
    looks_like_json_array,
    parse_json_array,
    parse_words,
    split_command,
    split_whitespace,
)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("RUN echo hi", ("RUN", "echo hi")),
        ("  run   echo  hi  ", ("run", "echo  hi")),
        ("CMD", ("CMD", "")),
        ("FROM\tbusybox", ("FROM", "busybox")),
    ],
)
def test_split_command(line: str, expected: tuple[str, str]) -> None:
    assert split_command(line) == expected


@pytest.mark.parametrize(
    ("rest", "flags", "remaining"),
    [
        ("echo hi", [], "echo hi"),
        ("--network=none echo", ["--network=none"], "echo"),
        ("--a=1 --b=2 x y", ["--a=1", "--b=2"], "x y"),
        ("--link src dst", ["--link"], "src dst"),
        ('--chown="a b" x', ["--chown=a b"], "x"),
        ("--chown='u:g' x", ["--chown=u:g"], "x"),
        (r"--x=a\ b y", ["--x=a b"], "y"),
        ("--x=1 -- --notaflag y", ["--x=1"], "--notaflag y"),
        ("--only", ["--only"], ""),
        ("-x y", [], "-x y"),
        ("", [], ""),
    ],
)
def test_extract_flags(rest: str, flags: list[str], remaining: str) -> None:
    assert extract_flags(rest) == (flags, remaining)


@pytest.mark.parametrize(
    ("rest", "words"),
    [
        ("a=1 b=2", ["a=1", "b=2"]),
        ('a="x y" b=2', ['a="x y"', "b=2"]),
        ("a='x y'", ["a='x y'"]),
        (r"a=x\ y b", [r"a=x\ y", "b"]),
        ('a=""', ['a=""']),
        ('""', ['""']),
        ("  spaced   out  ", ["spaced", "out"]),
        ('a="unterminated b', ['a="unterminated b']),
        (r'a="esc\"aped" b', [r'a="esc\"aped"', "b"]),
        ("", []),
    ],
)
def test_parse_words_keeps_quotes_and_escapes(rest: str, words: list[str]) -> None:
    assert parse_words(rest, "\\") == words


def test_parse_words_with_backtick_escape() -> None:
    assert parse_words("a=x` y b", "`") == ["a=x` y", "b"]
    assert parse_words(r"a=x\ y", "`") == ["a=x\\", "y"]


def test_split_whitespace_ignores_quotes() -> None:
    assert split_whitespace(' "a b"  c\td ') == ['"a', 'b"', "c", "d"]
    assert split_whitespace("   ") == []


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ('["a", "b"]', ["a", "b"]),
        ('  ["sh", "-c", "echo \\"hi\\""]', ["sh", "-c", 'echo "hi"']),
        ("[]", []),
        ("echo hi", None),
        ("[ -f x ]", None),
        ('{"a": 1}', None),
        ('["a"] trailing', None),
        ("['a', 'b']", None),
    ],
)
def test_parse_json_array(rest: str, expected: list[str] | None) -> None:
    assert parse_json_array(rest) == expected


def test_parse_json_array_refuses_non_strings() -> None:
    with pytest.raises(NotStringArray):
        parse_json_array('["a", 1]')


@pytest.mark.parametrize(
    "text",
    [
        "[\"echo\", 'hi']",
        "['sh']",
        '["a", "b",]',
        '["a", "b\\q"]',
        "[\"a\",'b']",
    ],
)
def test_broken_json_arrays_are_recognised(text: str) -> None:
    assert looks_like_json_array(text)


@pytest.mark.parametrize(
    "text",
    [
        "[ -f /x ]",
        '[ "$a" = "b" ]',
        '[ "$a" = "b" ] || [ -f x ]',
        "[ '$a' = 'b' ]",
        '["a" "b"]',
        "echo [x]",
        "[]",
        '[ "$x" ]',
    ],
)
def test_shell_commands_starting_with_a_bracket_are_not_json(text: str) -> None:
    assert not looks_like_json_array(text)


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters='"\\\n'), max_size=8)))
def test_valid_json_arrays_parse_back(items: list[str]) -> None:
    import json

    assert parse_json_array(json.dumps(items)) == items
