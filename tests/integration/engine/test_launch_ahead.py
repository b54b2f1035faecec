"""`cove run` forks its container's launcher as it begins (cove.engine.monitor_ahead): a
run that fails before its start, or a CLI killed while the launcher waits, leaves no
launcher and no container behind; a run that starts uses it (its monitor is in a
session of its own, not in the CLI's process group)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.engine.test_run import engine as engine  # a fixture, used by name
from tests.integration.engine.test_run import nothing_left
from tests.integration.image.test_import import cove, cove_cli

pytestmark = pytest.mark.root


def processes_of(root: Path) -> list[int]:
    """Live processes whose command line names the engine root (the CLI and its forks)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(root).encode() in words and state != "Z":
            found.append(int(entry.name))
    return found


def none_left(root: Path, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := processes_of(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("flags", [["bb:404"], ["--memory", "lots", "bb:1"],
                                   ["--network", "nonesuch", "bb:1"]])  # fmt: skip
def test_a_run_that_fails_before_its_start_leaves_no_launcher(
    engine: Path, flags: list[str]
) -> None:
    res = cove(engine, "run", "--rm", *flags, "true")
    assert res.returncode == 125, res.stderr
    assert none_left(engine) == []
    assert cove(engine, "ps", "-a", "-q").stdout == ""
    nothing_left(engine)


def test_a_cli_killed_while_its_launcher_waits_leaves_nothing(engine: Path) -> None:
    process = subprocess.Popen([cove_cli(), "--root", str(engine), "run", "--rm", "bb:1", "true"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while len(processes_of(engine)) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(process.pid, signal.SIGSTOP)  # the launcher forked: hold the CLI there
        assert len(processes_of(engine)) >= 2, "no launcher was forked"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert none_left(engine) == []  # the launcher saw its pipe close and went
    assert cove(engine, "system", "check", "--repair").returncode == 0
    assert cove(engine, "ps", "-a", "-q").stdout == ""
    nothing_left(engine)


def test_the_monitor_has_a_session_of_its_own(engine: Path) -> None:
    res = cove(engine, "run", "-d", "--name", "sess", "bb:1", "sleep", "30")
    assert res.returncode == 0, res.stderr
    try:
        inspected = cove(engine, "inspect", "--format", "{{.State.Pid}}", "sess")
        init = int(inspected.stdout.strip())
        monitor = int(Path(f"/proc/{init}/stat").read_text().rsplit(")", 1)[1].split()[1])
        fields = Path(f"/proc/{monitor}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(fields[3]) == monitor  # its session's leader: no terminal signals reach it
        assert "cove-monitor" in Path(f"/proc/{monitor}/cmdline").read_text()
    finally:
        assert cove(engine, "rm", "-f", "sess").returncode == 0
    nothing_left(engine)
