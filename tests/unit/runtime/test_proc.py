"""cove.runtime.proc: liveness and start times from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cove.runtime import proc
from cove.runtime.proc import is_alive, start_time, wait_gone


def spawn(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(list(argv))


def state_of(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as stat:
        data = stat.read()
    return data[data.rindex(b")") + 2 :].split()[0].decode()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = spawn("sleep", "30")
    yield child
    child.kill()
    child.wait()


def test_own_process() -> None:
    started = start_time(os.getpid())
    assert isinstance(started, int)
    assert started > 0
    assert start_time(os.getpid()) == started
    assert is_alive(os.getpid(), 0)
    assert is_alive(os.getpid(), started)
    assert not is_alive(os.getpid(), started + 1)  # a reused pid


def test_child_started_after_us(sleeper: subprocess.Popen[bytes]) -> None:
    ours, its = start_time(os.getpid()), start_time(sleeper.pid)
    assert ours is not None and its is not None
    assert its >= ours
    assert is_alive(sleeper.pid, its)


def test_dead_child() -> None:
    child = spawn(sys.executable, "-c", "pass")
    child.wait()
    assert start_time(child.pid) is None
    assert not is_alive(child.pid, 0)


def test_zombie_counts_as_gone() -> None:
    child = spawn("true")
    try:
        deadline = time.monotonic() + 5
        while state_of(child.pid) != "Z":
            assert time.monotonic() < deadline, "child never became a zombie"
            time.sleep(0.005)
        assert start_time(child.pid) is None
        assert not is_alive(child.pid, 0)
    finally:
        child.wait()


@pytest.mark.parametrize("pid", [0, -1])
def test_non_positive_pids(pid: int) -> None:
    assert not is_alive(pid, 0)


def test_command_name_with_spaces_and_parens(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = ["S", *[str(n) for n in range(4, 22)], "777", *["0"] * 30]
    content = b"123 (we) ird (name)) " + " ".join(fields).encode()

    class FakeStat:
        def __init__(self, path: str, mode: str) -> None:
            assert path == "/proc/123/stat"

        def __enter__(self) -> Any:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def read(self) -> bytes:
            return content

    monkeypatch.setattr(proc, "open", FakeStat, raising=False)
    assert start_time(123) == 777


def test_wait_gone_when_the_process_exits() -> None:
    child = spawn("sleep", "0.05")
    try:
        assert wait_gone(child.pid, 0, timeout=5)
    finally:
        child.wait()


def test_wait_gone_times_out(sleeper: subprocess.Popen[bytes]) -> None:
    began = time.monotonic()
    assert not wait_gone(sleeper.pid, 0, timeout=0.05)
    assert time.monotonic() - began < 2


def test_wait_gone_of_a_reaped_pid() -> None:
    child = spawn("true")
    child.wait()
    assert wait_gone(child.pid, 0, timeout=0.01)
