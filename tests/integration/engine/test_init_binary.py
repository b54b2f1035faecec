"""cove-init (native/cove-init.c): the `--init` PID 1. Exit codes, signal forwarding, reaping."""

from __future__ import annotations

import os
import select
import shutil
import signal
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.engine.monitor_support import build_native, proc_stat, wait_until

TIMEOUT = 10.0
PT_INTERP = 3


@pytest.fixture(scope="session")
def init_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_native(tmp_path_factory) / "cove-init"


def run(argv: list[str | Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)


def descendants(pid: int) -> list[int]:
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    return [d for k in kids for d in (int(k), *descendants(int(k)))]


@contextmanager
def started(argv: list[str | Path]) -> Iterator[subprocess.Popen[bytes]]:
    """cove-init in the background; on the way out it and its descendants are killed by pid."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            for pid in [*descendants(proc.pid), proc.pid]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        proc.wait(timeout=TIMEOUT)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def read_line(proc: subprocess.Popen[bytes]) -> str:
    assert proc.stdout is not None
    ready = select.select([proc.stdout], [], [], TIMEOUT)[0]
    assert ready, "no output from the child"
    return proc.stdout.readline().decode()


def test_exit_code_passes_through(init_bin: Path) -> None:
    assert run([init_bin, "sh", "-c", "exit 42"]).returncode == 42
    assert run([init_bin, "--", "sh", "-c", "exit 0"]).returncode == 0
    res = run([init_bin, "sh", "-c", 'echo "$0 $1"', "a", "b"])
    assert (res.returncode, res.stdout) == (0, "a b\n")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
def test_killed_child_gives_128_plus_signal(init_bin: Path, sig: signal.Signals) -> None:
    res = run([init_bin, "sh", "-c", f"kill -{sig.value} $$"])
    assert res.returncode == 128 + sig.value


@pytest.mark.parametrize(
    ("sig", "code"),
    [(signal.SIGTERM, 7), (signal.SIGINT, 8), (signal.SIGHUP, 9), (signal.SIGUSR1, 10)],
)
def test_signals_are_forwarded(init_bin: Path, sig: signal.Signals, code: int) -> None:
    name = sig.name.removeprefix("SIG")
    script = f"trap 'exit {code}' {name}; echo ready; while :; do sleep 0.05; done"
    with started([init_bin, "sh", "-c", script]) as proc:
        assert read_line(proc) == "ready\n"
        proc.send_signal(sig)
        assert proc.wait(timeout=TIMEOUT) == code


def test_orphans_reaped_as_subreaper(init_bin: Path) -> None:
    script = "sh -c 'sleep 0.5 & echo $!'; read x"  # read blocks on our stdin pipe
    with started([init_bin, "sh", "-c", script]) as proc:
        orphan = int(read_line(proc))
        wait_until(lambda: proc_stat(orphan) == ("S", proc.pid))  # re-parented to cove-init
        wait_until(lambda: proc_stat(orphan) is None)  # exited and reaped: no zombie left
        assert proc.poll() is None


def test_reaps_zombies_as_pid1(init_bin: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ps") is None:
        pytest.skip("needs root, unshare and ps for a pid namespace")
    script = """
        sh -c 'sleep 0.3 & echo orphan $!'
        ps -eo pid=,ppid=,stat=,comm=
        echo ---
        sleep 1
        ps -eo pid=,ppid=,stat=,comm=
        exit 3
    """
    res = run(["unshare", "--pid", "--fork", "--mount-proc", init_bin, "sh", "-c", script])
    assert res.returncode == 3, res.stderr
    first, second = res.stdout.split("---\n")
    orphan = first.splitlines()[0].split()[1]
    table = [line.split() for line in first.splitlines()[1:]]
    assert ["1", "0"] == table[0][:2] and table[0][3] == "cove-init"
    assert [orphan, "1"] in [row[:2] for row in table]  # the orphan's parent is PID 1
    rows = [line.split() for line in second.splitlines()]
    assert orphan not in [row[0] for row in rows]  # exited, and reaped by cove-init
    assert [row for row in rows if row[2].startswith("Z")] == []


def test_exec_failure(init_bin: Path, tmp_path: Path) -> None:
    res = run([init_bin, "/no/such/program"])
    assert res.returncode == 127
    assert res.stderr == "cove-init: exec /no/such/program: No such file or directory\n"
    not_executable = tmp_path / "data"
    not_executable.write_text("data")
    res = run([init_bin, not_executable])
    assert res.returncode == 126 and "Permission denied" in res.stderr


def test_no_command_is_a_usage_error(init_bin: Path) -> None:
    for extra in ([], ["--"]):
        res = run([init_bin, *extra])
        assert res.returncode == 2 and res.stderr.startswith("usage: cove-init")


def test_statically_linked(init_bin: Path) -> None:
    data = init_bin.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1  # ELF64, little-endian
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
    assert PT_INTERP not in types  # no dynamic loader
    if shutil.which("ldd"):
        res = run(["ldd", init_bin])
        assert "not a dynamic executable" in res.stdout + res.stderr
