"""Running cove-monitor (native/cove-monitor.c) the way the engine starts it, for the tests
(`test_monitor_binary.py`, `test_restart_health.py`, `test_init_binary.py`): building the
native binaries once per session, process helpers, the attach protocol's client, and
`monitor()`, which starts a "container" under the monitor.

The launcher forks F, which becomes a child subreaper and session leader, forks the
"container" (`/bin/sh -c SCRIPT` on pipes or a pty), keeps the read ends and execs
cove-monitor: the monitor is then the parent of the container and our own child.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / "tools" / "build-native.sh"
TIMEOUT = 10.0
PR_SET_CHILD_SUBREAPER = 36

STDIN, CLOSE_STDIN, RESIZE, HANDOFF = 0, 1, 2, 3  # client -> monitor frame types
STDOUT, STDERR, EXIT = 1, 2, 0xFF  # monitor -> client frame types

LOG_LINE = re.compile(
    rb'^\{"log":"(?:[^"\\]|\\.)*","stream":"(?:stdout|stderr)",'
    rb'"time":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"\}$'
)
RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")

_built: dict[str, Path] = {}


def build_native(factory: pytest.TempPathFactory) -> Path:
    """Build cove-monitor and cove-init once per session (test_init_binary shares this)."""
    if "dir" not in _built:
        if shutil.which("gcc") is None:
            reason = "gcc not installed: cannot build native/*.c"
            print(reason)
            pytest.skip(reason)
        out = factory.mktemp("native")
        res = subprocess.run(
            ["bash", str(BUILD_SCRIPT), str(out)], capture_output=True, text=True, timeout=300
        )
        if res.returncode != 0:
            pytest.fail(f"tools/build-native.sh failed:\n{res.stderr}")
        _built["dir"] = out
    return _built["dir"]


@pytest.fixture(scope="session")
def monitor_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_native(tmp_path_factory) / "cove-monitor"


# ---- process helpers -----------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    return state, int(ppid)


def zombie_children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st is not None and st == ("Z", parent):
                found.append(int(entry.name))
    return found


def wait_pid(pid: int, timeout: float) -> int | None:
    """Raw wait status of our child pid, None if it is still running after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def wait_until(cond: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def read_to_eof(fd: int, timeout: float = TIMEOUT) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out reading fd {fd}, got {data!r}"
        if select.select([fd], [], [], left)[0]:
            chunk = os.read(fd, 4096)
            if not chunk:
                return data
            data += chunk


# ---- attach protocol -----------------------------------------------------------------------


def frame(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BxxxI", kind, len(payload)) + payload


class Attach:
    """One attach-socket client."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))
        self.buf = b""

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.sock.settimeout(TIMEOUT)
        self.sock.sendall(frame(kind, payload))

    def next(self, timeout: float = TIMEOUT) -> tuple[int, bytes] | None:
        """The next frame, None at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 8:
                kind, size = struct.unpack(">BxxxI", self.buf[:8])
                if len(self.buf) >= 8 + size:
                    payload, self.buf = self.buf[8 : 8 + size], self.buf[8 + size :]
                    return kind, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no frame within {timeout}s (have {self.buf[:64]!r})")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                assert self.buf == b"", f"truncated frame at EOF: {self.buf[:64]!r}"
                return None
            self.buf += chunk

    def all(self) -> list[tuple[int, bytes]]:
        frames = []
        while (f := self.next()) is not None:
            frames.append(f)
        return frames

    def close(self) -> None:
        self.sock.close()


def joined(frames: list[tuple[int, bytes]], kind: int) -> bytes:
    return b"".join(p for k, p in frames if k == kind)


# ---- the monitor under test ----------------------------------------------------------------


@dataclass
class Monitor:
    pid: int  # F, which became the monitor: our child
    dir: Path
    ctr: int = 0  # the container's init: the monitor's child
    status: int | None = None
    clients: list[Attach] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.dir / "ctr.log"

    @property
    def exit_file(self) -> Path:
        return self.dir / "exit.json"

    @property
    def sock(self) -> Path:
        return self.dir / "attach.sock"

    def attach(self) -> Attach:
        client = Attach(self.sock)
        self.clients.append(client)
        return client

    def wait(self, timeout: float = TIMEOUT) -> int:
        status = wait_pid(self.pid, timeout)
        assert status is not None, f"monitor {self.pid} still running after {timeout}s"
        self.status = status
        return os.waitstatus_to_exitcode(status)

    def exit_info(self) -> dict[str, object]:
        text = self.exit_file.read_text()
        assert text.endswith("}\n") and text.count("\n") == 1, text
        info: dict[str, object] = json.loads(text)
        return info

    def log_entries(self, path: Path | None = None) -> list[dict[str, str]]:
        raw = (path or self.log).read_bytes()
        assert raw.endswith(b"\n")
        lines = raw.split(b"\n")[:-1]
        for line in lines:
            assert LOG_LINE.match(line), line[:200]
        return [json.loads(line) for line in lines]


def _become_f(
    binary: Path,
    mon_dir: Path,
    script: str,
    stdin: bool,
    pty: bool,
    args: Sequence[str],
    sync_w: int,
    info_w: int,
) -> None:
    """Imitate the engine's launcher: runs in the forked child and execs the monitor."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    os.setsid()
    keep: dict[str, int] = {}
    if pty:
        master, slave = os.openpty()
        ctr_fds = [slave, slave, slave]
        keep["--pty-fd"] = master
        to_close = [slave]
    else:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        if stdin:
            in_r, in_w = os.pipe()
            keep["--stdin-fd"] = in_w
        else:
            in_r = os.open(os.devnull, os.O_RDONLY)
        ctr_fds = [in_r, out_w, err_w]
        keep["--stdout-fd"] = out_r
        keep["--stderr-fd"] = err_r
        to_close = ctr_fds
    ctr = os.fork()
    if ctr == 0:
        try:
            for target, fd in enumerate(ctr_fds):
                os.dup2(fd, target)
            os.execv("/bin/sh", ["sh", "-c", script])
        finally:
            os._exit(121)
    for fd in set(to_close):
        os.close(fd)
    os.write(info_w, f"{ctr}\n".encode())
    os.close(info_w)
    argv = [str(binary), "--pid", str(ctr), "--sync-fd", str(sync_w)]
    for opt, name in (("--exit-file", "exit.json"), ("--attach-socket", "attach.sock")):
        argv += [opt, str(mon_dir / name)]
    argv += ["--log-path", str(mon_dir / "ctr.log")]
    os.set_inheritable(sync_w, True)
    for opt, fd in keep.items():
        os.set_inheritable(fd, True)
        argv += [opt, str(fd)]
    os.execv(binary, [*argv, *args])


@contextmanager
def monitor(
    binary: Path,
    mon_dir: Path,
    script: str,
    *,
    stdin: bool = False,
    pty: bool = False,
    args: Sequence[str] = (),
) -> Iterator[Monitor]:
    """Start a container under cove-monitor; on the way out kill whatever is left, by pid."""
    sync_r, sync_w = os.pipe()
    info_r, info_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(sync_r)
            os.close(info_r)
            _become_f(binary, mon_dir, script, stdin, pty, args, sync_w, info_w)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(120)
    os.close(sync_w)
    os.close(info_w)
    mon = Monitor(pid, mon_dir)
    try:
        info = read_to_eof(info_r)
        assert info, "the launcher failed before forking the container"
        mon.ctr = int(info)
        sync = read_to_eof(sync_r).decode()
        assert sync == f"{pid}\n", sync
        yield mon
    finally:
        os.close(sync_r)
        os.close(info_r)
        for client in mon.clients:
            client.close()
        if mon.status is None:
            if mon.ctr and (st := proc_stat(mon.ctr)) is not None and st[1] == pid:
                os.kill(mon.ctr, signal.SIGKILL)
            if os.getpgid(pid) == pid:  # F's session: the monitor and the container's tree
                os.killpg(pid, signal.SIGKILL)
            wait_pid(pid, TIMEOUT)


def parse_time(stamp: str) -> datetime:
    assert RFC3339_NANO.match(stamp), stamp
    return datetime.strptime(stamp[:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
