"""cove.cli.runtime.flags: runc-style (urfave/cli) flag parsing."""

from __future__ import annotations

import pytest

from cove.cli.runtime.flags import Flag, Parsed, parse, usage
from cove.errors import InvalidArgument

FLAGS = [
    Flag("bundle", takes_value=True, aliases=("b",), help="bundle dir"),
    Flag("pid-file", takes_value=True),
    Flag("detach", aliases=("d",)),
    Flag("tty", aliases=("t",)),
    Flag("env", takes_value=True, repeat=True, aliases=("e",)),
]


@pytest.mark.parametrize(
    "args",
    [
        ["--bundle", "/b"],
        ["--bundle=/b"],
        ["-bundle", "/b"],
        ["-bundle=/b"],
        ["-b", "/b"],
        ["-b=/b"],
        ["--b", "/b"],
    ],
)
def test_value_spellings(args: list[str]) -> None:
    parsed = parse([*args, "ct1"], FLAGS)
    assert parsed.text("bundle") == "/b"
    assert parsed.positional == ["ct1"]


def test_value_may_contain_equals_and_look_like_a_flag() -> None:
    parsed = parse(["--bundle=a=b", "--pid-file", "-weird"], FLAGS)
    assert parsed.values == {"bundle": "a=b", "pid-file": "-weird"}
    assert parse(["--bundle="], FLAGS).text("bundle") == ""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--detach"], True),
        (["-d"], True),
        (["--detach=true"], True),
        (["--detach=false"], False),
        (["-d=false"], False),
        ([], False),
    ],
)
def test_switches(args: list[str], expected: bool) -> None:
    parsed = parse(args, FLAGS)
    assert parsed.switch("detach") is expected


def test_switch_with_other_value_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match=r"flag --detach is a switch: use true or false"):
        parse(["--detach=yes"], FLAGS)


def test_switch_does_not_take_the_next_word() -> None:
    parsed = parse(["-d", "ct1"], FLAGS)
    assert parsed.switch("detach")
    assert parsed.positional == ["ct1"]


def test_repeated_flags() -> None:
    parsed = parse(["-e", "A=1", "--env=B=2", "ct", "--env", "C=3"], FLAGS)
    assert parsed.many("env") == ["A=1", "B=2", "C=3"]
    assert parsed.positional == ["ct"]
    assert parse([], FLAGS).many("env") == []


def test_last_value_wins_for_single_flags() -> None:
    assert parse(["-b", "one", "--bundle", "two"], FLAGS).text("bundle") == "two"


def test_flags_after_positionals() -> None:
    parsed = parse(["ct1", "--bundle", "/b", "extra", "-d"], FLAGS)
    assert parsed.positional == ["ct1", "extra"]
    assert parsed.text("bundle") == "/b"
    assert parsed.switch("detach")


def test_double_dash_ends_flags() -> None:
    parsed = parse(["-d", "--", "--bundle", "-x", "ct"], FLAGS)
    assert parsed.switch("detach")
    assert "bundle" not in parsed.values
    assert parsed.positional == ["--bundle", "-x", "ct"]


def test_lone_dash_is_positional() -> None:
    assert parse(["-"], FLAGS).positional == ["-"]


def test_stop_at_positional() -> None:
    parsed = parse(["-t", "ct1", "sh", "-c", "--bundle", "x"], FLAGS, stop_at_positional=True)
    assert parsed.switch("tty")
    assert parsed.positional == ["ct1", "sh", "-c", "--bundle", "x"]
    assert "bundle" not in parsed.values


def test_unknown_flag() -> None:
    with pytest.raises(InvalidArgument, match=r"^unknown flag '--nope'$"):
        parse(["--nope"], FLAGS)
    with pytest.raises(InvalidArgument, match=r"^unknown flag '-x=1'$"):
        parse(["ct", "-x=1"], FLAGS)


@pytest.mark.parametrize("args", [["--bundle"], ["ct", "-b"], ["--env"]])
def test_missing_value(args: list[str]) -> None:
    with pytest.raises(InvalidArgument, match=f"^flag '{args[-1]}' needs a value$"):
        parse(args, FLAGS)


def test_parsed_accessors() -> None:
    parsed = Parsed({"n": "12", "bad": "x"}, ["a"])
    assert parsed.number("n") == 12
    assert parsed.number("missing", 5) == 5
    assert parsed.text("missing", "dflt") == "dflt"
    assert not parsed.switch("missing")
    with pytest.raises(InvalidArgument, match=r"^--bad: expected a number, got 'x'$"):
        parsed.number("bad")


def test_usage_lists_flags_with_aliases() -> None:
    text = usage("create", "[flags] ID", FLAGS)
    lines = text.splitlines()
    assert lines[0] == "usage: cove-runtime create [flags] ID"
    bundle_line = next(line for line in lines if "--bundle" in line)
    assert bundle_line.lstrip().startswith("-b, --bundle VALUE")
    assert bundle_line.endswith("bundle dir")
    assert any(line.lstrip().startswith("-d, --detach ") for line in lines)
    assert text.endswith("\n")
