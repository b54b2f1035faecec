"""cove.engine.container_logs: Docker json-file logs, read and followed across rotation."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

import pytest

from cove.engine.container_logs import (
    LogEntry,
    follow_logs,
    format_entry,
    format_time,
    parse_line,
    parse_since,
    parse_timestamp,
    read_logs,
    rotated_files,
)
from cove.errors import InvalidArgument

T0 = 1_795_923_726_123_456_789  # 2026-11-29T03:42:06.123456789Z
NS = 1_000_000_000


def line(text: str, t: int, stream: str = "stdout") -> bytes:
    return (json.dumps({"log": text, "stream": stream, "time": format_time(t)}) + "\n").encode()


def write_log_lines(path: Path, entries: Iterable[tuple[str, int]], mode: str = "ab") -> None:
    with open(path, mode) as f:
        for text, t in entries:
            f.write(line(text, t))


def texts(entries: Iterable[LogEntry]) -> list[bytes]:
    return [e.text for e in entries]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / ("ab" * 32 + "-json.log")


# --- times ---------------------------------------------------------------------------------


def test_format_time_is_rfc3339_nano_utc() -> None:
    assert format_time(T0) == "2026-11-29T03:42:06.123456789Z"
    assert format_time(T0 - 123_456_789) == "2026-11-29T03:42:06.000000000Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T03:42:06.123456789Z", T0),
        ("2026-11-29T03:42:06Z", T0 - 123_456_789),
        ("2026-11-29T04:42:06.5+01:00", T0 - 123_456_789 + NS // 2),
        ("2026-11-28T22:42:06-05:00", T0 - 123_456_789),
        ("2026-11-29Z", T0 - 123_456_789 - (3 * 3600 + 42 * 60 + 6) * NS),
        ("2026-11-29T03:42Z", T0 - 123_456_789 - 6 * NS),
        ("1700000000", 1_700_000_000 * NS),
        ("1700000000.123456789", 1_700_000_000 * NS + 123_456_789),
        ("1700000000.5", 1_700_000_000 * NS + NS // 2),
        ("0", 0),
    ],
)
def test_parse_since_absolute(text: str, expected: int) -> None:
    assert parse_since(text, now_ns=T0) == expected


def test_parse_since_without_zone_is_local_time() -> None:
    local = datetime(2026, 11, 29, 3, 42, 6).timestamp()
    assert parse_since("2026-11-29T03:42:06") == int(local) * NS
    assert parse_since("2026-11-29T03:42:06.25") == int(local) * NS + NS // 4
    midnight = datetime(2026, 11, 29).timestamp()
    assert parse_since("2026-11-29") == int(midnight) * NS


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("10m", 600 * NS),
        ("1h30m", 5400 * NS),
        ("2.5s", 2_500_000_000),
        ("300ms", 300_000_000),
        ("1h2m3s4ms5us6ns", 3723 * NS + 4_005_006),
        ("-10s", -10 * NS),
    ],
)
def test_parse_since_duration_is_relative_to_now(text: str, ago: int) -> None:
    assert parse_since(text, now_ns=T0) == T0 - ago


def test_parse_since_duration_uses_the_clock() -> None:
    before = time.time_ns()
    value = parse_since("1m")
    assert before - 60 * NS <= value <= time.time_ns() - 60 * NS


@pytest.mark.parametrize(
    "text", ["5x", "yesterday", "1.2.3", "s", "10 m", "2026-13-01", "2026-11-29T25:00:00Z", "1h-"]
)
def test_parse_since_rejects_bad_values(text: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        parse_since(text, flag="--until")
    assert "--until" in str(err.value)
    assert f"'{text}'" in str(err.value)


def test_parse_since_bare_number_is_a_unix_timestamp_not_a_duration() -> None:
    assert parse_since("10", now_ns=T0) == 10 * NS


def test_parse_since_empty_means_no_bound() -> None:
    assert parse_since("") == 0


def test_parse_timestamp_needs_seconds_and_zone() -> None:
    assert parse_timestamp("2026-11-29T03:42:06.123456789Z") == T0
    assert parse_timestamp("2026-11-29T03:42:06") is None
    assert parse_timestamp("2026-11-29T03:42Z") is None
    assert parse_timestamp("garbage") is None


# --- entries -------------------------------------------------------------------------------


def test_parse_line_reads_docker_json_file_records() -> None:
    entry = parse_line(line("hello\n", T0, "stderr"))
    assert entry == LogEntry(stream="stderr", text=b"hello\n", time_ns=T0)
    assert parse_line(b'{"log":"x"}\n') is None  # no time
    assert parse_line(b'["log"]\n') is None
    assert parse_line(b'{"log":"x","stream":"stdout","time":"2026-1') is None


def test_parse_line_keeps_non_utf8_bytes() -> None:
    raw = json.dumps({"log": "caf\udce9\n", "stream": "stdout", "time": format_time(T0)})
    entry = parse_line(raw.encode())
    assert entry is not None and entry.text == b"caf\xe9\n"
    odd = json.dumps({"log": "\ud800!", "stream": "stdout", "time": format_time(T0)})
    entry = parse_line(odd.encode())
    assert entry is not None and entry.text.endswith(b"!")


def test_format_entry() -> None:
    entry = LogEntry("stdout", b"hello\n", T0)
    assert format_entry(entry, timestamps=False) == b"hello\n"
    assert format_entry(entry, timestamps=True) == b"2026-11-29T03:42:06.123456789Z hello\n"
    partial = LogEntry("stdout", b"par", T0 + 1)
    assert format_entry(partial, True) == b"2026-11-29T03:42:06.123456790Z par"


# --- read_logs -------------------------------------------------------------------------------


def test_missing_log_is_empty(log: Path) -> None:
    assert read_logs(str(log)) == []
    assert rotated_files(str(log)) == []


def test_reads_rotated_files_oldest_first(log: Path) -> None:
    write_log_lines(Path(f"{log}.2"), [("a\n", T0), ("b\n", T0 + 1)])
    write_log_lines(Path(f"{log}.1"), [("c\n", T0 + 2)])
    write_log_lines(log, [("d\n", T0 + 3), ("e", T0 + 4), ("f\n", T0 + 5)])
    Path(f"{log}.x").write_bytes(line("no\n", T0))  # not a rotated file
    assert rotated_files(str(log)) == [f"{log}.2", f"{log}.1"]
    entries = read_logs(str(log))
    assert texts(entries) == [b"a\n", b"b\n", b"c\n", b"d\n", b"e", b"f\n"]
    assert [e.time_ns for e in entries] == [T0 + i for i in range(6)]


def test_rotation_beyond_nine_sorts_numerically(log: Path) -> None:
    for n in range(1, 12):
        write_log_lines(Path(f"{log}.{n}"), [(f"{n}\n", T0 - n)])
    assert texts(read_logs(str(log)))[:3] == [b"11\n", b"10\n", b"9\n"]


def test_tail_since_until(log: Path) -> None:
    write_log_lines(log, [(f"{i}\n", T0 + i * NS) for i in range(10)])
    path = str(log)
    assert texts(read_logs(path, tail=3)) == [b"7\n", b"8\n", b"9\n"]
    assert read_logs(path, tail=0) == []
    assert len(read_logs(path, tail=-1)) == 10
    assert len(read_logs(path, tail=100)) == 10
    assert texts(read_logs(path, since_ns=T0 + 8 * NS)) == [b"8\n", b"9\n"]
    assert texts(read_logs(path, until_ns=T0 + NS)) == [b"0\n", b"1\n"]
    window = read_logs(path, since_ns=T0 + 2 * NS, until_ns=T0 + 6 * NS)
    assert texts(window) == [b"2\n", b"3\n", b"4\n", b"5\n", b"6\n"]
    # tail counts after the window: the last two of 2..6
    both = read_logs(path, tail=2, since_ns=T0 + 2 * NS, until_ns=T0 + 6 * NS)
    assert texts(both) == [b"5\n", b"6\n"]
    assert texts(read_logs(path, tail=5, since_ns=T0 + 8 * NS)) == [b"8\n", b"9\n"]


def test_malformed_and_torn_lines_are_skipped(log: Path) -> None:
    with open(log, "wb") as f:
        f.write(line("one\n", T0))
        f.write(b"not json\n")
        f.write(b"\n")
        f.write(b'{"log": 5, "stream": "stdout", "time": "2026-11-29T03:42:06Z"}\n')
        f.write(b'{"log": "x", "stream": "stdout", "time": "tomorrow"}\n')
        f.write(line("two\n", T0 + 1))
        f.write(line("torn\n", T0 + 2)[:25])  # the writer is mid-write
    assert texts(read_logs(str(log))) == [b"one\n", b"two\n"]
    assert texts(read_logs(str(log), tail=1)) == [b"two\n"]


def test_stderr_stream_kept(log: Path) -> None:
    with open(log, "wb") as f:
        f.write(line("out\n", T0))
        f.write(line("err\n", T0 + 1, "stderr"))
    assert [e.stream for e in read_logs(str(log))] == ["stdout", "stderr"]


# --- follow_logs -----------------------------------------------------------------------------


class Collector:
    """Runs follow_logs in a thread; `done` is the stop flag."""

    def __init__(self, path: Path, **kw: object) -> None:
        self.entries: list[LogEntry] = []
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(str(path),), kwargs=kw, daemon=True)
        self.thread.start()

    def _run(self, path: str, **kw: object) -> None:
        try:
            for entry in follow_logs(path, stop=self.done.is_set, poll_interval=0.005, **kw):  # type: ignore[arg-type]
                self.entries.append(entry)
        except BaseException as err:  # pragma: no cover - reported by finish()
            self.error = err

    def wait_for(self, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.entries) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        if len(self.entries) < count:
            self.done.set()
            pytest.fail(f"only {texts(self.entries)} after {timeout}s, want {count} entries")

    def finish(self) -> list[bytes]:
        self.done.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()
        assert self.error is None
        return texts(self.entries)


def test_follow_gives_existing_then_appended_lines(log: Path) -> None:
    write_log_lines(log, [("old1\n", T0), ("old2\n", T0 + 1)])
    c = Collector(log, tail=1)
    c.wait_for(1)
    write_log_lines(log, [("new1\n", T0 + 2)])
    c.wait_for(2)
    assert c.finish() == [b"old2\n", b"new1\n"]


def test_follow_waits_for_the_newline(log: Path) -> None:
    write_log_lines(log, [("a\n", T0)])
    c = Collector(log)
    c.wait_for(1)
    whole = line("b\n", T0 + 1)
    with open(log, "ab") as f:
        f.write(whole[:10])
        f.flush()
        time.sleep(0.05)
        assert texts(c.entries) == [b"a\n"]  # half a line is not an entry
        f.write(whole[10:])
    c.wait_for(2)
    assert c.finish() == [b"a\n", b"b\n"]


def test_follow_starts_before_the_log_exists(log: Path) -> None:
    c = Collector(log)
    time.sleep(0.03)
    write_log_lines(log, [("first\n", T0)])
    c.wait_for(1)
    assert c.finish() == [b"first\n"]


def test_follow_applies_since(log: Path) -> None:
    write_log_lines(log, [("old\n", T0)])
    c = Collector(log, since_ns=T0 + 5)
    time.sleep(0.03)
    write_log_lines(log, [("older\n", T0 + 1), ("newer\n", T0 + 10)])
    c.wait_for(1)
    assert c.finish() == [b"newer\n"]


def test_follow_drains_after_stop(log: Path) -> None:
    """Lines written just before stop() turns true are still given."""
    write_log_lines(log, [("a\n", T0)])
    stopped = threading.Event()
    out: list[bytes] = []

    def stop() -> bool:
        if not stopped.is_set():
            write_log_lines(log, [("last\n", T0 + 1)])  # written as the container exits
            stopped.set()
        return True

    for entry in follow_logs(str(log), stop=stop, poll_interval=0.001):
        out.append(entry.text)
    assert out == [b"a\n", b"last\n"]


def rotate(path: Path, keep: int) -> None:
    """What the monitor does at max-size: PATH.k -> PATH.k+1, PATH -> PATH.1, a new PATH."""
    for n in range(keep - 1, 0, -1):
        if os.path.exists(f"{path}.{n}"):
            os.rename(f"{path}.{n}", f"{path}.{n + 1}")
    os.rename(path, f"{path}.1")


def test_follow_survives_rotation(log: Path) -> None:
    write_log_lines(log, [("a\n", T0)])
    c = Collector(log)
    c.wait_for(1)

    def writer() -> None:
        t = T0
        for round_ in range(3):
            for i in range(5):
                t += 1
                write_log_lines(log, [(f"{round_}-{i}\n", t)])
                time.sleep(0.002)
            # the rest of this file, written just before it is renamed
            t += 1
            write_log_lines(log, [(f"{round_}-end\n", t)])
            rotate(log, keep=3)
            time.sleep(0.01)
            log.touch()

    thread = threading.Thread(target=writer)
    thread.start()
    thread.join()
    write_log_lines(log, [("final\n", T0 + 100)])
    c.wait_for(1 + 3 * 6 + 1)
    got = c.finish()
    suffixes = ("0", "1", "2", "3", "4", "end")
    want = [b"a\n"] + [f"{r}-{s}\n".encode() for r in range(3) for s in suffixes]
    assert got == [*want, b"final\n"]


def test_follow_catches_up_after_two_rotations_between_polls(log: Path) -> None:
    write_log_lines(log, [("a\n", T0)])
    entries = follow_logs(str(log), stop=lambda: True, poll_interval=0.001)
    assert next(entries).text == b"a\n"
    # Two rotations before the follower looks again.
    write_log_lines(log, [("b\n", T0 + 1)])
    rotate(log, keep=5)
    write_log_lines(log, [("c\n", T0 + 2)])
    rotate(log, keep=5)
    write_log_lines(log, [("d\n", T0 + 3)])
    assert texts(entries) == [b"b\n", b"c\n", b"d\n"]


def test_follow_rereads_a_truncated_log(log: Path) -> None:
    write_log_lines(log, [("a\n", T0), ("b\n", T0 + 1)])
    c = Collector(log)
    c.wait_for(2)
    with open(log, "r+b") as f:
        f.truncate(0)
    time.sleep(0.03)
    write_log_lines(log, [("c\n", T0 + 2)])
    c.wait_for(3)
    assert c.finish() == [b"a\n", b"b\n", b"c\n"]


def test_follow_of_missing_log_ends_on_stop(log: Path) -> None:
    assert list(follow_logs(str(log), stop=lambda: True)) == []


def test_follow_reads_a_file_that_came_and_went_while_none_was_open(log: Path) -> None:
    """The log rotates, and the next file is written and rotated too before the follower
    finds a current file again: that file is still read, in order."""
    write_log_lines(log, [("a\n", T0)])

    def rotated(text: str, t: int) -> Callable[[], None]:
        def step() -> None:
            write_log_lines(log, [(text, t)])
            rotate(log, keep=5)

        return step

    def last() -> None:
        write_log_lines(log, [("d\n", T0 + 3)])

    steps = iter([rotated("b\n", T0 + 1), rotated("c\n", T0 + 2), last])

    def stop() -> bool:
        step = next(steps, None)
        if step is None:
            return True
        step()
        return False

    got = texts(follow_logs(str(log), stop=stop, poll_interval=0.001))
    assert got == [b"a\n", b"b\n", b"c\n", b"d\n"]
