"""Facts about host processes read from /proc: alive or not, start time, waiting."""

from __future__ import annotations

import os
import select


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks, or None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            stat = stat_file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def is_alive(pid: int, expected_start: int) -> bool:
    """True if `pid` runs and is the same process that started at `expected_start`."""
    if pid <= 0:
        return False
    started = start_time(pid)
    return started is not None and (expected_start == 0 or started == expected_start)


def wait_gone(pid: int, expected_start: int, timeout: float) -> bool:
    """Wait until the process exits (it need not be our child); False on timeout."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        if not is_alive(pid, expected_start):
            return True
        readable, _, _ = select.select([pidfd], [], [], timeout)
        return bool(readable) or not is_alive(pid, expected_start)
    finally:
        os.close(pidfd)
