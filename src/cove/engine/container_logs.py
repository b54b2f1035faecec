"""Reading a container's log (`docker logs`): Docker's json-file format, as the monitor
writes it to `<dir>/<id>-json.log`.

One JSON object a line: `{"log": "text\\n", "stream": "stdout", "time": "<RFC 3339 nano>"}`.
A partial line (no newline yet when the monitor flushed it) is an entry of its own whose
"log" does not end in "\\n". Rotation renames PATH to PATH.1, PATH.1 to PATH.2, ... so
PATH.N is the oldest file. Only lines that end in "\\n" count: a torn last line (the writer
is mid-write, or died there) is left alone; other malformed lines are skipped.

Times are UNIX nanoseconds (`int`) everywhere; `parse_since` reads the values of
`--since`/`--until` with Docker's syntax.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import IO

from cove.errors import InvalidArgument

NS = 1_000_000_000


@dataclass(frozen=True)
class LogEntry:
    """One json-file record: its stream ("stdout" or "stderr"), its bytes, its time."""

    stream: str
    text: bytes
    time_ns: int


# --- times ---------------------------------------------------------------------------------

# RFC 3339 and the shortened forms Docker accepts: a date, then optionally hours, minutes,
# seconds and a fraction, then optionally a zone ("Z" or an offset).
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?)?"
    r"([zZ]|[+-]\d{2}:\d{2})?",
    re.ASCII,
)
_UNIX = re.compile(r"(\d+)(?:\.(\d{1,9}))?", re.ASCII)
_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)", re.ASCII)
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": NS,
    "m": 60 * NS,
    "h": 3600 * NS,
}


def _fraction_ns(digits: str | None) -> int:
    """ ".5" -> 500000000: the digits after the point, as nanoseconds."""
    if not digits:
        return 0
    return int(digits.ljust(9, "0")[:9])


def _zone(text: str | None) -> timezone | None:
    """None (local time) when no zone is written."""
    if text is None:
        return None
    if text in ("Z", "z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _timestamp_ns(match: re.Match[str]) -> int:
    """Nanoseconds since the epoch for a `_TIMESTAMP` match; ValueError for a bad date."""
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        tzinfo=_zone(zone),
    )
    # A naive datetime is local time, as Docker reads a timestamp without a zone.
    return int(moment.timestamp()) * NS + _fraction_ns(fraction)


def _duration_ns(text: str) -> int | None:
    """A Go duration ("1h30m", "2.5s", "-10m") in nanoseconds; None if `text` is not one."""
    sign = 1
    body = text
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if not body:
        return None
    total = 0
    position = 0
    while position < len(body):
        part = _DURATION_PART.match(body, position)
        if part is None:
            return None
        whole, fraction, unit = part.groups()
        if not whole and not fraction:
            return None  # "s" or ".s": a unit needs a number
        scale = _DURATION_UNITS[unit]
        total += int(whole or "0") * scale
        if fraction:
            total += int(fraction) * scale // 10 ** len(fraction)
        position = part.end()
    return sign * total


def parse_since(value: str, now_ns: int | None = None, flag: str = "--since") -> int:
    """The time a `--since`/`--until` value names, in UNIX nanoseconds.

    Docker's syntax: an RFC 3339 timestamp, possibly shortened (`2026-11-29`,
    `2026-11-29T03:42`) and without a zone (then it is local time), a UNIX timestamp with
    an optional fraction (`1700000000.5`), or a Go duration (`10m`, `1h30m`, `300ms`) that
    means that long before `now_ns`. "" means no bound and gives 0.
    """
    text = value.strip()
    if not text:
        return 0
    if text != "0":  # Docker reads a bare "0" as the epoch, not as a zero duration
        duration = _duration_ns(text)
        if duration is not None:
            return (time.time_ns() if now_ns is None else now_ns) - duration
    stamp = _TIMESTAMP.fullmatch(text)
    if stamp is not None:
        try:
            return _timestamp_ns(stamp)
        except (ValueError, OverflowError):
            raise InvalidArgument(
                f"invalid value '{value}' for flag {flag}: no such date"
            ) from None
    unix = _UNIX.fullmatch(text)
    if unix is not None:
        return int(unix.group(1)) * NS + _fraction_ns(unix.group(2))
    raise InvalidArgument(
        f"invalid value '{value}' for flag {flag}: expected a timestamp "
        "(2026-11-29T03:42:06Z, 1700000000) or a duration (10m, 1h30m)"
    )


def parse_timestamp(text: str) -> int | None:
    """An RFC 3339 time with seconds and a zone (a json-file "time", a record's StartedAt)
    in UNIX nanoseconds; None when `text` is not one."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None or match.group(6) is None or match.group(8) is None:
        return None
    try:
        return _timestamp_ns(match)
    except (ValueError, OverflowError):
        return None


def format_time(time_ns: int) -> str:
    """RFC 3339 in UTC with nine fraction digits, as `docker logs --timestamps` prints."""
    seconds, fraction = divmod(time_ns, NS)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def format_entry(entry: LogEntry, timestamps: bool) -> bytes:
    """What `docker logs` prints for `entry`: its text, after its time and a space when
    `timestamps`."""
    if not timestamps:
        return entry.text
    return format_time(entry.time_ns).encode() + b" " + entry.text


# --- lines ---------------------------------------------------------------------------------


def _encode(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate surrogateescape does not map to a byte
        return text.encode("utf-8", "replace")


def parse_line(line: bytes) -> LogEntry | None:
    """The entry of one json-file line, or None when the line is malformed."""
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    text, stream, stamp = record.get("log"), record.get("stream"), record.get("time")
    if not isinstance(text, str) or not isinstance(stamp, str):
        return None
    time_ns = parse_timestamp(stamp)
    if time_ns is None:
        return None
    return LogEntry(
        stream=stream if isinstance(stream, str) else "", text=_encode(text), time_ns=time_ns
    )


def _parse_lines(lines: Iterable[bytes]) -> Iterator[LogEntry]:
    for line in lines:
        entry = parse_line(line)
        if entry is not None:
            yield entry


def _split_complete(data: bytes) -> tuple[list[bytes], bytes]:
    """(the complete lines of `data`, what follows the last newline)."""
    end = data.rfind(b"\n")
    if end < 0:
        return [], data
    return data[: end + 1].splitlines(), data[end + 1 :]


def _in_window(entry: LogEntry, since_ns: int, until_ns: int) -> bool:
    if since_ns and entry.time_ns < since_ns:
        return False
    return not (until_ns and entry.time_ns > until_ns)


# --- files ---------------------------------------------------------------------------------

_Identity = tuple[int, int]


def _identity(info: os.stat_result) -> _Identity:
    return (info.st_dev, info.st_ino)


def rotated_files(path: str) -> list[str]:
    """PATH.N ... PATH.1: the rotated files of `path` that exist, oldest first."""
    folder = os.path.dirname(path) or "."
    prefix = os.path.basename(path) + "."
    numbers: list[int] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    for name in names:
        suffix = name[len(prefix) :]
        if name.startswith(prefix) and suffix.isascii() and suffix.isdigit():
            numbers.append(int(suffix))
    return [f"{path}.{n}" for n in sorted(numbers, reverse=True)]


def _read_closed_file(path: str) -> list[bytes]:
    """The complete lines of a file nobody writes any more ([] when it is gone)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return []
    return _split_complete(data)[0]


def _open(path: str) -> IO[bytes] | None:
    try:
        return open(path, "rb")
    except OSError:  # missing (not written yet, or rotated away this instant) or unreadable
        return None


class _LogReader:
    """Reads a log's complete lines in order, across rotations, by file identity.

    It remembers the last file it read (`identity`). Each `poll` gives what was appended
    to the open file; once that file has been renamed away, its last lines, then the
    rotated files newer than it (the log may rotate more than once between two polls, or
    while no file is open), then the new current file. The first poll reads everything.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.current: IO[bytes] | None = None
        self.identity: _Identity | None = None  # None: nothing read yet
        self.rest = b""  # the torn last line of the current file, if any

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        self.rest = b""  # a torn line at the end of a rotated file never completes

    def poll(self) -> list[bytes]:
        """The complete lines written since the last poll ([] when there are none)."""
        lines: list[bytes] = []
        if self.current is not None:
            lines = self._read_more()
            if lines:
                return lines
            if not self._rotated():
                self._check_truncated()
                return []
            lines = self._read_more()  # written just before the rename
            self.close()
        return lines + self._switch()

    def _read_more(self) -> list[bytes]:
        assert self.current is not None
        data = self.current.read()
        if not data:
            return []
        lines, self.rest = _split_complete(self.rest + data)
        return lines

    def _rotated(self) -> bool:
        try:
            return _identity(os.stat(self.path)) != self.identity
        except OSError:
            return True

    def _check_truncated(self) -> None:
        """A log cut to zero in place (copy-truncate rotation) is read again from its start."""
        assert self.current is not None
        if os.fstat(self.current.fileno()).st_size < self.current.tell():
            self.current.seek(0)
            self.rest = b""

    def _newer_rotated(self, opened: _Identity | None) -> list[tuple[str, _Identity]]:
        """The rotated files written after the last file read, oldest first; all of them
        when nothing was read yet or that file is gone. `opened` (the current file, just
        opened) is left out: if it was rotated meanwhile it is read as the current file."""
        newer: list[tuple[str, _Identity]] = []
        for name in rotated_files(self.path):
            try:
                identity = _identity(os.stat(name))
            except OSError:
                continue
            if identity == self.identity:
                newer = []
            elif identity != opened:
                newer.append((name, identity))
        return newer

    def _switch(self) -> list[bytes]:
        """Open the current file first, then read the rotated files that came before it."""
        current = _open(self.path)
        opened = _identity(os.fstat(current.fileno())) if current is not None else None
        lines: list[bytes] = []
        for name, identity in self._newer_rotated(opened):
            lines.extend(_read_closed_file(name))
            self.identity = identity
        if current is not None:
            self.current, self.identity, self.rest = current, opened, b""
            lines.extend(self._read_more())
        return lines


def _select(
    lines: list[bytes], *, tail: int | None, since_ns: int, until_ns: int
) -> list[LogEntry]:
    if tail == 0:
        return []
    chosen = (e for e in _parse_lines(lines) if _in_window(e, since_ns, until_ns))
    if tail is None or tail < 0:
        return list(chosen)
    return list(deque(chosen, maxlen=tail))


def read_logs(
    path: str, *, tail: int | None = None, since_ns: int = 0, until_ns: int = 0
) -> list[LogEntry]:
    """The entries of the log at `path` (rotated files first, oldest first).

    `since_ns`/`until_ns` (0: no bound) keep entries with since <= time <= until; `tail`
    then keeps the last N of those (None or negative: all, as Docker's -1; 0: none). A
    missing log is empty.
    """
    reader = _LogReader(path)
    try:
        lines = reader.poll()
    finally:
        reader.close()
    return _select(lines, tail=tail, since_ns=since_ns, until_ns=until_ns)


# --- following -----------------------------------------------------------------------------


def follow_logs(
    path: str,
    *,
    since_ns: int = 0,
    tail: int | None = None,
    stop: Callable[[], bool],
    poll_interval: float = 0.05,
) -> Iterator[LogEntry]:
    """`docker logs --follow`: what `read_logs` gives, then each entry as it is appended.

    Rotation is followed by inode: the renamed file is read to its end before the new one.
    Only complete lines are yielded. The iteration ends once `stop()` has returned True and
    nothing more can be read (the container exited and its log is drained). Polls.
    """
    reader = _LogReader(path)
    try:
        yield from _select(reader.poll(), tail=tail, since_ns=since_ns, until_ns=0)
        stopping = False
        while True:
            lines = reader.poll()
            if lines:
                for entry in _parse_lines(lines):
                    if _in_window(entry, since_ns, 0):
                        yield entry
                continue
            if stopping:
                return
            if stop():
                stopping = True  # one more pass to drain what was written before the stop
                continue
            time.sleep(poll_interval)
    finally:
        reader.close()
