"""cove.runtime.signals.parse_signal: signal names and numbers as runc's kill takes them."""

from __future__ import annotations

import signal

import pytest

from cove.errors import InvalidArgument
from cove.runtime.signals import parse_signal


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("9", 9),
        ("15", 15),
        ("1", 1),
        (str(int(signal.SIGRTMAX)), int(signal.SIGRTMAX)),
        ("KILL", 9),
        ("SIGKILL", 9),
        ("kill", 9),
        ("sigterm", 15),
        ("Term", 15),
        ("HUP", 1),
        ("SIGUSR1", 10),
        ("WINCH", 28),
        ("SIGRTMIN", int(signal.SIGRTMIN)),
        ("SIGRTMIN+1", int(signal.SIGRTMIN) + 1),
        ("rtmin+3", int(signal.SIGRTMIN) + 3),
        ("SIGRTMAX", int(signal.SIGRTMAX)),
    ],
)
def test_valid(text: str, number: int) -> None:
    assert parse_signal(text) == number
    assert isinstance(parse_signal(text), int)


@pytest.mark.parametrize(
    "text",
    [
        "0",
        str(int(signal.SIGRTMAX) + 1),
        "1000",
        "-9",
        "",
        "SIG",
        "NOPE",
        "SIGNOPE",
        "KILL9",
        "SIGRTMAX+1",
        "SIGRTMIN+x",
        "SIGRTMIN+",
        "SIG_DFL",
        "9.0",
        " KILL",
    ],
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_signal(text)
    assert str(info.value).startswith(f"invalid signal {text!r}")


def test_out_of_range_says_so() -> None:
    with pytest.raises(InvalidArgument, match=r"out of range"):
        parse_signal("0")
