"""Processes for the engine benchmarks (`engine_bench.py`, `network_bench.py`,
`api_bench.py`): a timed spawner with a timeout, progress lines, becoming a subreaper
and reaping adopted processes, and reading processes and their memory from /proc.

Standard library only.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchlib import BenchError

PR_SET_CHILD_SUBREAPER = 36

# --------------------------------------------------------------------------- processes


@dataclass
class Outcome:
    elapsed_ns: int
    code: int
    stdout: str
    stderr: str

    def last_error(self) -> str:
        return error_line(self.stderr or self.stdout)


def error_line(text: str) -> str:
    """The line of a failed command's output that says why: podman's "Error: ..." line
    (its last line may be "See 'podman --help'"), else the last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Error:"):
            return line
    return lines[-1] if lines else "(no output)"


def progress(text: str, done: bool = False) -> None:
    """A progress line, rewritten in place on a terminal; only the last one otherwise."""
    if sys.stdout.isatty():
        print(f"\r  {text}", end="\n" if done else "", flush=True)
    elif done:
        print(f"  {text}", flush=True)


class Spawner:
    """posix_spawn + pidfd + waitpid, timed with perf_counter_ns, with a timeout.

    stdin is /dev/null; stdout and stderr go to scratch files (never pipes: a detached
    container's monitor may inherit them and would keep a pipe open).  ``inflight`` is
    the PID of the command running now, so an interrupt can stop exactly that one.
    """

    def __init__(self, workdir: Path) -> None:
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self._null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._out = os.open(workdir / "stdout.log", flags, 0o600)
        self._err = os.open(workdir / "stderr.log", flags, 0o600)
        self.inflight: int | None = None

    def run(self, argv: Sequence[str], env: dict[str, str], timeout: float) -> Outcome:
        """Run ``argv`` (argv[0] absolute); BenchError if it cannot start or times out."""
        for fd in (self._out, self._err):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        actions = [
            (os.POSIX_SPAWN_DUP2, self._null, 0),
            (os.POSIX_SPAWN_DUP2, self._out, 1),
            (os.POSIX_SPAWN_DUP2, self._err, 2),
        ]
        start = time.perf_counter_ns()
        try:
            pid = os.posix_spawn(argv[0], list(argv), env, file_actions=actions)
        except OSError as exc:
            raise BenchError(f"{argv[0]}: {exc}") from exc
        self.inflight = pid
        try:
            pidfd = os.pidfd_open(pid)
            try:
                poller = select.poll()
                poller.register(pidfd, select.POLLIN)
                if not poller.poll(timeout * 1000):
                    self.kill_inflight()
                    raise BenchError(
                        f"{Path(argv[0]).name} {' '.join(argv[1:6])} ...: "
                        f"no exit after {timeout:.0f} s (killed)"
                    )
            finally:
                os.close(pidfd)
            _, status = os.waitpid(pid, 0)
            elapsed = time.perf_counter_ns() - start
        except BaseException:
            self.kill_inflight()
            raise
        self.inflight = None
        return Outcome(
            elapsed, os.waitstatus_to_exitcode(status), self._read(self._out), self._read(self._err)
        )

    def kill_inflight(self) -> None:
        pid, self.inflight = self.inflight, None
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    @staticmethod
    def _read(fd: int) -> str:
        return os.pread(fd, 1 << 20, 0).decode(errors="replace")

    def close(self) -> None:
        self.kill_inflight()
        for fd in (self._null, self._out, self._err):
            os.close(fd)


def become_subreaper() -> bool:
    """Adopt the engines' daemonized processes (monitors, conmon, clean-up commands) so
    that they are reaped when they exit: this machine's PID 1 does not reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def reap_orphans() -> None:
    """Reap adopted processes that have exited; never blocks.  Only called between
    commands, when no command of the Spawner is running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@dataclass
class Proc:
    pid: int
    exe: str  # basename of /proc/PID/exe ("" if unreadable)
    cmdline: str  # arguments joined by spaces


def processes() -> list[Proc]:
    """Every process with a readable command line (kernel threads have none)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        if not raw:
            continue
        try:
            exe = os.path.basename(os.readlink(f"/proc/{entry.name}/exe"))
        except OSError:
            exe = ""
        found.append(
            Proc(
                int(entry.name),
                exe,
                raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace"),
            )
        )
    return found


def memory_kb(pid: int) -> dict[str, int] | None:
    """Pss, Rss and private (Private_Clean + Private_Dirty) of /proc/PID/smaps_rollup."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except OSError:
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            values[parts[0].rstrip(":")] = int(parts[1])
    if "Pss" not in values:
        return None
    return {
        "pss": values["Pss"],
        "rss": values.get("Rss", 0),
        "private": values.get("Private_Clean", 0) + values.get("Private_Dirty", 0),
    }
