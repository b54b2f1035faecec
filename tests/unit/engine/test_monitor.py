"""The engine's side of the monitor that needs no root: liveness by pid and start time, the
exit file, socket paths, and the exit command."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cove.engine import monitor
from cove.errors import MonitorError


def test_start_time_identifies_a_live_process() -> None:
    start = monitor.process_start_time(os.getpid())
    assert start > 0
    assert monitor.monitor_alive(os.getpid(), start)
    assert not monitor.monitor_alive(os.getpid(), start + 1)  # a recycled pid
    assert not monitor.monitor_alive(0, start)


def test_a_zombie_or_missing_pid_counts_as_gone() -> None:
    child = subprocess.Popen(["true"])
    try:
        deadline = 200
        while (
            deadline and Path(f"/proc/{child.pid}/stat").read_text().split(")")[1].split()[0] != "Z"
        ):
            deadline -= 1
            os.sched_yield()
        assert monitor.process_start_time(child.pid) == 0
    finally:
        child.wait()
    assert monitor.process_start_time(child.pid) == 0


def test_wait_for_exit_returns_at_once_for_a_gone_monitor() -> None:
    assert monitor.wait_for_exit(os.getpid(), 1, timeout=0.01)  # not that process: gone
    start = monitor.process_start_time(os.getpid())
    assert not monitor.wait_for_exit(os.getpid(), start, timeout=0.01)  # alive: times out


def test_exit_file_round_trip_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "exit.json"
    assert monitor.read_exit_file(path) is None
    path.write_text('{"exit_code":137,"signal":9,"finished_at":"2026-11-29T00:00:00Z"}\n')
    status = monitor.read_exit_file(path)
    assert status == monitor.ExitStatus(137, 9, "2026-11-29T00:00:00Z")
    path.write_text('{"exit_code":')  # torn
    assert monitor.read_exit_file(path) is None
    path.write_text('{"signal": 1}')
    assert monitor.read_exit_file(path) is None


def test_socket_paths_stay_short_whatever_the_root() -> None:
    path = monitor.attach_socket_path("f" * 64)
    assert len(path) < 108 and path.startswith(monitor.SOCKET_DIR)


def test_paths_in_the_container_folder(tmp_path: Path) -> None:
    assert monitor.exit_file_path(tmp_path) == tmp_path / "exit.json"
    assert monitor.log_file_path(tmp_path, "ab" * 32) == tmp_path / f"{'ab' * 32}-json.log"


def test_monitor_binary_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "cove-monitor"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv(monitor.MONITOR_ENV, str(fake))
    assert monitor.monitor_binary() == str(fake)


def test_missing_monitor_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(monitor.MONITOR_ENV, "/nonexistent/cove-monitor")
    monkeypatch.setattr(monitor, "INSTALLED_MONITOR", "/nonexistent/too")
    monkeypatch.setattr(monitor.sys, "executable", "/nonexistent/python")
    with pytest.raises(MonitorError, match="cove-monitor is not installed"):
        monitor.monitor_binary()


def test_exit_command_prefers_the_explicit_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVE_ENGINE_BIN", "/opt/x/cove")
    assert monitor.cove_command() == ["/opt/x/cove"]
