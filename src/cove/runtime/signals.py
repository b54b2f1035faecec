"""Signal names and numbers as runc's `kill` accepts them."""

from __future__ import annotations

import signal

from cove.errors import InvalidArgument


def parse_signal(text: str) -> int:
    """ "9", "KILL", "SIGKILL", "kill", "SIGRTMIN+3" -> the signal number."""
    if text.isdigit():
        number = int(text)
        if not 0 < number <= signal.SIGRTMAX:
            raise InvalidArgument(f"invalid signal {text!r}: out of range")
        return number
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    base, plus, offset = name.partition("+")
    if base in ("SIGRTMIN", "SIGRTMAX") and (not plus or offset.isdigit()):
        number = getattr(signal, base) + (int(offset) if plus else 0)
        if number <= signal.SIGRTMAX:
            return int(number)
    value = getattr(signal.Signals, name, None)
    if value is None:
        raise InvalidArgument(f"invalid signal {text!r}")
    return int(value)
