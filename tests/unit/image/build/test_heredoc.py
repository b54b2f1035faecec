"""cove.image.build.heredoc: recognising heredoc markers."""

from __future__ import annotations

import pytest

from cove.image.build.heredoc import HeredocMarker, markers_in_line, parse_marker


@pytest.mark.parametrize(
    ("word", "name", "expand", "chomp", "fd"),
    [
        ("<<EOF", "EOF", True, False, None),
        ("<<-EOF", "EOF", True, True, None),
        ('<<"EOF"', "EOF", False, False, None),
        ("<<'EOF'", "EOF", False, False, None),
        ('<<-"END"', "END", False, True, None),
        ("<<E'O'F", "EOF", False, False, None),
        ("3<<EOF", "EOF", True, False, 3),
        ("<<file.txt", "file.txt", True, False, None),
    ],
)
def test_markers(word: str, name: str, expand: bool, chomp: bool, fd: int | None) -> None:
    assert parse_marker(word) == HeredocMarker(word, name, expand, chomp, fd)


@pytest.mark.parametrize("word", ["<<", "<<-", "EOF", "cat<<EOF", "<<<EOF", '"<<EOF"'])
def test_not_markers(word: str) -> None:
    assert parse_marker(word) is None


def test_markers_in_a_line_in_order() -> None:
    found = markers_in_line('cat <<A >a && cat <<-"B" > b')
    assert [(m.name, m.expand, m.chomp) for m in found] == [("A", True, False), ("B", False, True)]


def test_a_space_after_the_arrows_is_no_marker() -> None:
    assert markers_in_line("cat << EOF") == []


def test_quoted_markers_are_not_markers() -> None:
    assert markers_in_line("echo '<<EOF' \"<<X\"") == []


def test_unbalanced_quotes_give_no_markers() -> None:
    assert markers_in_line("echo 'oops <<EOF") == []


def test_variables_are_left_alone() -> None:
    (marker,) = markers_in_line("$CMD <<EOF $X")
    assert marker.name == "EOF"
