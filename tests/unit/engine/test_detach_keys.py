"""cove.engine.detach_keys: Docker's detach key syntax and the escape proxy."""

from __future__ import annotations

import pytest

from cove.engine.detach_keys import EscapeProxy, parse_detach_keys
from cove.errors import InvalidArgument


@pytest.mark.parametrize(
    ("text", "keys"),
    [("ctrl-p,ctrl-q", b"\x10\x11"), ("ctrl-a", b"\x01"), ("a,b", b"ab"),
     ("ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_", b"\x00\x1b\x1c\x1d\x1e\x1f"),
     ("CTRL-X", b"\x18")],
)  # fmt: skip
def test_detach_keys_in_dockers_syntax(text: str, keys: bytes) -> None:
    assert parse_detach_keys(text) == keys


@pytest.mark.parametrize("text", ["", "ctrl-1", "ab", "ctrl-", "ctrl-pq", "a,,b", "é"])
def test_bad_detach_keys(text: str) -> None:
    with pytest.raises(InvalidArgument, match="Invalid escape keys"):
        parse_detach_keys(text)


def test_escape_proxy_detaches_on_the_whole_sequence_only() -> None:
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"abc") == (b"abc", False)
    assert proxy.feed(b"x\x10") == (b"x", False)  # held: may be the start
    assert proxy.feed(b"y") == (b"\x10y", False)  # broken: given back, in order
    assert proxy.feed(b"\x10") == (b"", False)
    assert proxy.feed(b"\x11rest") == (b"", True)  # split over two reads; the rest dropped


def test_escape_proxy_restarts_on_a_repeated_first_key() -> None:
    proxy = EscapeProxy(b"\x10\x11")
    assert proxy.feed(b"\x10\x10\x11") == (b"\x10", True)
    proxy = EscapeProxy(b"ab")
    assert proxy.feed(b"aac") == (b"aac", False)
