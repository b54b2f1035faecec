"""cove.image.build.shellwords: Docker's quotes, escapes and variable substitution."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.errors import BuildError
from cove.image.build.shellwords import ShellLex, expand_word, expand_words

ENV = {"A": "a", "EMPTY": "", "SPACED": "x  y", "PATH": "/usr/bin:/bin", "FILE": "dir/a.tar.gz"}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        # plain and simple substitution
        ("hello", "hello"),
        ("$A", "a"),
        ("${A}", "a"),
        ("${A}_b", "a_b"),
        ("$A_b", ""),  # the name is A_b
        ("$UNSET", ""),
        ("x$UNSET.y", "x.y"),
        ("$", "$"),
        ("a$", "a$"),
        ("$/x", "$/x"),
        ("$1", ""),
        ("$@", ""),
        ("$A$A", "aa"),
        # defaults and alternatives
        ("${UNSET:-def}", "def"),
        ("${EMPTY:-def}", "def"),
        ("${A:-def}", "a"),
        ("${UNSET-def}", "def"),
        ("${EMPTY-def}", ""),
        ("${UNSET:+alt}", ""),
        ("${EMPTY:+alt}", ""),
        ("${A:+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET:-$A}", "a"),
        ("${UNSET:-${A:+nested}}", "nested"),
        ("${UNSET:-a b}", "a b"),
        ("${A:?must be set}", "a"),
        # prefix and suffix trimming, replacement
        ("${FILE#*/}", "a.tar.gz"),
        ("${FILE%.*}", "dir/a.tar"),
        ("${FILE%%.*}", "dir/a"),
        ("${FILE##*.}", "gz"),
        ("${FILE#nomatch}", "dir/a.tar.gz"),
        ("${PATH/bin/sbin}", "/usr/sbin:/bin"),
        ("${PATH//bin/sbin}", "/usr/sbin:/sbin"),
        ("${FILE/?/X}", "Xir/a.tar.gz"),
        # quotes
        ("'$A'", "$A"),
        ('"$A"', "a"),
        ('"${A} b"', "a b"),
        ("a'b c'd", "ab cd"),
        ('"it\'s"', "it's"),
        ("'say \"hi\"'", 'say "hi"'),
        ('""', ""),
        # escapes outside quotes
        (r"\$A", "$A"),
        (r"\${A}", "${A}"),
        (r"a\ b", "a b"),
        (r"a\\b", r"a\b"),
        (r"a\b", "ab"),
        ("a\\", "a"),
        (r"\'", "'"),
        # escapes inside double quotes: only before " $ and the escape character
        (r'"a\"b"', 'a"b'),
        (r'"\$A"', "$A"),
        (r'"a\\b"', r"a\b"),
        (r'"a\nb"', r"a\nb"),
        # escapes inside single quotes: none
        (r"'a\'", "a\\"),
    ],
)
def test_process_word(word: str, expected: str) -> None:
    assert expand_word(word, ENV) == expected


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("'open", "matching single-quote"),
        ('"open', "matching double-quote"),
        ("${A", "missing '}'"),
        ("${", "missing '}'"),
        ("${}", "bad substitution"),
        ("${:x}", "bad substitution"),
        ("${A:x}", r"unsupported modifier \(:x\)"),
        ("${A!}", r"unsupported modifier \(!\)"),
        ("${A:-x", "missing '}'"),
        ("${UNSET:?}", "UNSET: is not allowed to be unset"),
        ("${UNSET?custom message}", "UNSET: custom message"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${A/x", "missing '/'"),
    ],
)
def test_errors_name_the_word(word: str, message: str) -> None:
    with pytest.raises(BuildError, match=message) as info:
        expand_word(word, ENV)
    assert repr(word) in str(info.value)


def test_empty_value_with_question_mark_without_colon_is_fine() -> None:
    assert expand_word("${EMPTY?}", ENV) == ""


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a b  c", ["a", "b", "c"]),
        ("$SPACED", ["x", "y"]),
        ('"$SPACED"', ["x  y"]),
        (r"a\ b c", ["a b", "c"]),
        ("'a b' c", ["a b", "c"]),
        ("$UNSET", []),
        ('""', []),
        ("pre$SPACED", ["prex", "y"]),
    ],
)
def test_process_words_splits_after_substitution(text: str, words: list[str]) -> None:
    assert expand_words(text, ENV) == words


def test_backtick_escape() -> None:
    assert expand_word("a` b`$A", ENV, "`") == "a b$A"
    assert expand_word(r"c:\dir", ENV, "`") == r"c:\dir"
    assert expand_word('"`"x"', ENV, "`") == '"x'


def test_skip_unset_keeps_unset_variables_as_written() -> None:
    lex = ShellLex(skip_unset=True)
    assert lex.process_word("$A $B ${C} ${D:-x}", {"A": "1"}) == "1 $B ${C} ${D:-x}"


def test_raw_quotes_and_escapes() -> None:
    assert ShellLex(raw_quotes=True).process_word("'a' \"b\"", {}) == "'a' \"b\""
    assert ShellLex(raw_escapes=True).process_word(r"a\ b", {}) == r"a\ b"


def test_skip_quotes_leaves_quotes_but_expands() -> None:
    lex = ShellLex(skip_quotes=True)
    assert lex.process_word("echo \"$A\" '$A'\n", ENV) == "echo \"a\" 'a'\n"


def test_matched_and_unmatched_names() -> None:
    result = ShellLex().process("$A ${UNSET:-x} $EMPTY", ENV)
    assert result.matched == {"A", "EMPTY"}
    assert result.unmatched == {"UNSET"}


def test_unicode_names() -> None:
    assert expand_word("$ÄÖ-x", {"ÄÖ": "v"}) == "v-x"


# --- properties ----------------------------------------------------------------------------

_PLAIN = st.text(alphabet=st.characters(blacklist_characters="$'\"\\"))


@given(_PLAIN)
def test_text_without_specials_is_unchanged(text: str) -> None:
    assert expand_word(text, ENV) == text


@given(st.text(alphabet=st.characters(blacklist_characters="$'\"")))
def test_text_without_dollar_or_quotes_never_raises(text: str) -> None:
    expected = []
    chars = iter(text)
    for ch in chars:
        if ch == "\\":
            ch = next(chars, "")
        expected.append(ch)
    assert expand_word(text, {}) == "".join(expected)


@given(st.text(alphabet=st.characters(blacklist_characters="$")), st.text())
def test_env_does_not_matter_without_dollar(text: str, value: str) -> None:
    try:
        plain = expand_word(text, {})
    except BuildError:
        with pytest.raises(BuildError):
            expand_word(text, {"X": value})
        return
    assert expand_word(text, {"X": value}) == plain


@given(st.text())
def test_braced_variable_gives_its_value(value: str) -> None:
    assert expand_word("${X}", {"X": value}) == value
    assert expand_word('"$X"', {"X": value}) == value


@given(st.text(alphabet=st.characters(blacklist_characters="'")))
def test_single_quotes_keep_everything(text: str) -> None:
    assert expand_word(f"'{text}'", ENV) == text


@given(st.text(alphabet=st.characters(blacklist_characters="$'\"\\")))
def test_words_of_plain_text_are_its_whitespace_split(text: str) -> None:
    assert expand_words(text, {}) == text.split()


@given(st.text())
def test_arbitrary_text_either_expands_or_raises_build_error(text: str) -> None:
    try:
        expand_word(text, ENV)
        expand_words(text, ENV)
    except BuildError:
        pass
