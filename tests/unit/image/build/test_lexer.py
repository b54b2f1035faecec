"""cove.image.build.lexer: directives, comments, continuations and heredoc bodies."""

from __future__ import annotations

import pytest

from cove.errors import DockerfileError
from cove.image.build.lexer import LineReader, LogicalLine, split_lines


def logical(text: str) -> list[LogicalLine]:
    reader = LineReader(text)
    out = []
    while (line := reader.next_line()) is not None:
        out.append(line)
    return out


def texts(text: str) -> list[str]:
    return [line.text for line in logical(text)]


# --- physical lines ------------------------------------------------------------------------


def test_split_lines_keeps_endings_and_drops_bom() -> None:
    assert split_lines("\ufeffa\r\nb\nc") == ["a\r\n", "b\n", "c"]
    assert split_lines("a\n") == ["a\n"]
    assert split_lines("") == []
    assert split_lines("a\rb") == ["a\rb"]  # only \n ends a line


# --- directives ----------------------------------------------------------------------------


def test_directives_at_the_top() -> None:
    reader = LineReader("# syntax=docker/dockerfile:1\n# escape=`\n# check=skip=all\nFROM a\n")
    assert reader.directives.syntax == "docker/dockerfile:1"
    assert reader.directives.escape == "`"
    assert reader.directives.check == "skip=all"
    assert reader.directives.lines == {"syntax": 1, "escape": 2, "check": 3}


@pytest.mark.parametrize(
    "text",
    ["#escape=`\n", "# ESCAPE = ` \n", "#\tescape=`\n", "  # escape=`\n"],
)
def test_directive_spellings(text: str) -> None:
    assert LineReader(text + "FROM a\n").directives.escape == "`"


@pytest.mark.parametrize(
    "text",
    [
        "FROM a\n# escape=`\n",  # after an instruction
        "\n# escape=`\nFROM a\n",  # after an empty line
        "# a comment\n# escape=`\nFROM a\n",  # after a comment
        "# unknown=x\n# escape=`\nFROM a\n",  # after an unknown directive
    ],
)
def test_directives_only_at_the_very_top(text: str) -> None:
    assert LineReader(text).directives.escape == "\\"


def test_directive_given_twice_is_an_error() -> None:
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: only one escape parser directive"):
        LineReader("# escape=`\n# escape=\\\nFROM a\n")


def test_bad_escape_token() -> None:
    with pytest.raises(DockerfileError, match=r"^Dockerfile:1: invalid escape token"):
        LineReader("# escape=x\nFROM a\n")


def test_directive_lines_are_not_instructions() -> None:
    assert texts("# syntax=x\nFROM a\n") == ["FROM a"]


# --- comments and blank lines ---------------------------------------------------------------


def test_comments_and_blank_lines_are_skipped() -> None:
    lines = logical("\n# comment\n   # indented comment\nFROM a\n\n\nRUN b\n")
    assert [(line.text, line.start, line.end) for line in lines] == [
        ("FROM a", 4, 4),
        ("RUN b", 7, 7),
    ]


def test_leading_whitespace_before_instructions_is_ignored() -> None:
    assert texts("   FROM a\n\tRUN b\n") == ["FROM a", "RUN b"]


def test_hash_inside_an_instruction_is_not_a_comment() -> None:
    assert texts("RUN echo a # not a comment\n") == ["RUN echo a # not a comment"]


def test_crlf_line_endings() -> None:
    assert texts("FROM a\r\nRUN b \\\r\n  c\r\n") == ["FROM a", "RUN b   c"]


# --- continuations -------------------------------------------------------------------------


def test_continuation_joins_lines_keeping_the_next_lines_whitespace() -> None:
    lines = logical("RUN a \\\n    b \\\n  c\nRUN d\n")
    assert [(line.text, line.start, line.end) for line in lines] == [
        ("RUN a     b   c", 1, 3),
        ("RUN d", 4, 4),
    ]


def test_continuation_with_trailing_whitespace_after_the_escape() -> None:
    assert texts("RUN a \\  \t\n b\n") == ["RUN a  b"]


def test_escaped_escape_at_the_end_is_not_a_continuation() -> None:
    assert texts("RUN echo a\\\\\nRUN b\n") == ["RUN echo a\\\\", "RUN b"]


def test_comment_lines_inside_a_continuation_are_removed() -> None:
    assert texts("RUN a \\\n# comment\n  # indented \\\n b\n") == ["RUN a  b"]


def test_empty_continuation_lines_are_skipped_and_flagged() -> None:
    (line,) = logical("RUN a \\\n\n   \n b\n")
    assert line.text == "RUN a  b"
    assert line.empty_continuation
    assert (line.start, line.end) == (1, 4)


def test_backtick_escape() -> None:
    assert texts("# escape=`\nRUN a `\n b\nCOPY c:\\x d\\\n") == ["RUN a  b", "COPY c:\\x d\\"]


def test_backslash_is_not_a_continuation_with_backtick_escape() -> None:
    assert texts("# escape=`\nRUN dir c:\\\nRUN b\n") == ["RUN dir c:\\", "RUN b"]


@pytest.mark.parametrize(
    "text",
    [
        "FROM a\nRUN echo \\\n",
        "FROM a\nRUN echo \\",
        "FROM a\nRUN echo \\\n\n\n",
        "FROM a\nRUN a \\\n# c\n",
    ],
)
def test_continuation_at_the_end_of_the_file_is_an_error(text: str) -> None:
    reader = LineReader(text)
    assert reader.next_line() is not None
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: unexpected end of file"):
        reader.next_line()


def test_lone_escape_line_starts_a_continuation() -> None:
    assert texts("RUN a\n\\\nRUN b\n") == ["RUN a", "RUN b"]


# --- heredoc bodies ------------------------------------------------------------------------


def test_read_heredoc() -> None:
    reader = LineReader("RUN <<EOF\nline 1\n  line 2\nEOF\nRUN b\n")
    first = reader.next_line()
    assert first is not None
    assert reader.read_heredoc("EOF", False, first.start) == "line 1\n  line 2\n"
    assert reader.line_number == 4
    second = reader.next_line()
    assert second is not None and second.text == "RUN b"


def test_read_heredoc_chomp_strips_leading_tabs() -> None:
    reader = LineReader("RUN <<-EOF\n\tone\n\t\ttwo\n  three\n\tEOF\n")
    reader.next_line()
    assert reader.read_heredoc("EOF", True, 1) == "one\ntwo\n  three\n"


def test_heredoc_terminator_must_match_the_whole_line() -> None:
    reader = LineReader("RUN <<EOF\n EOF\nEOF \nEOFX\nEOF\n")
    reader.next_line()
    assert reader.read_heredoc("EOF", False, 1) == " EOF\nEOF \nEOFX\n"


def test_heredoc_body_keeps_crlf_and_comment_lines() -> None:
    reader = LineReader("RUN <<EOF\r\n# not a comment\r\nEOF\r\n")
    reader.next_line()
    assert reader.read_heredoc("EOF", False, 1) == "# not a comment\r\n"


def test_unterminated_heredoc() -> None:
    reader = LineReader("FROM a\nRUN <<EOF\nbody\n")
    reader.next_line()
    reader.next_line()
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: unterminated heredoc"):
        reader.read_heredoc("EOF", False, 2)


def test_filename_in_messages() -> None:
    with pytest.raises(DockerfileError, match=r"^Containerfile:1: invalid escape token"):
        LineReader("# escape=x\n", "Containerfile")
