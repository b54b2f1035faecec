"""cove-monitor (native/cove-monitor.c), started the way the engine starts it.

The test forks F, which becomes a child subreaper and session leader, forks the "container"
(`/bin/sh -c SCRIPT` on pipes or a pty), keeps the read ends and execs cove-monitor: the
monitor is then the parent of the container and our own child. The test reads the sync
pipe, talks to the attach socket and checks the log, the exit file and the process table.
"""

from __future__ import annotations

import contextlib
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


# ---- tests ---------------------------------------------------------------------------------


def test_log_has_docker_json_lines_with_exact_text(monitor_bin: Path, short_tmp: Path) -> None:
    script = r"""
        printf 'plain\n'; printf 'q"uo\\te\tx\n'; printf 'bad\377byte\n'
        printf 'caf\303\251\n'; printf 'bell\007\n'; printf 'err line\n' >&2
        head -c 20000 /dev/zero | tr '\0' a; echo; printf 'partial'
    """
    before = datetime.now(UTC)
    with monitor(monitor_bin, short_tmp, script) as mon:
        assert mon.wait() == 0
        entries = mon.log_entries()
        raw = mon.log.read_bytes()
    assert [e["log"] for e in entries if e["stream"] == "stdout"] == [
        "plain\n",
        'q"uo\\te\tx\n',
        "bad\ufffdbyte\n",
        "café\n",
        "bell\x07\n",
        "a" * 16384,
        "a" * (20000 - 16384) + "\n",
        "partial",
    ]
    assert [e["log"] for e in entries if e["stream"] == "stderr"] == ["err line\n"]
    assert b'{"log":"q\\"uo\\\\te\\tx\\n","stream":"stdout","time":"' in raw
    assert b'"log":"bad\\ufffdbyte\\n"' in raw
    assert b'"log":"caf\xc3\xa9\\n"' in raw  # valid UTF-8 passes through unescaped
    assert b'"log":"bell\\u0007\\n"' in raw
    for entry in entries:
        assert before.replace(microsecond=0) <= parse_time(entry["time"]) <= datetime.now(UTC)
    assert mon.log.stat().st_mode & 0o777 == 0o640
    assert mon.exit_info()["exit_code"] == 0


def test_attach_gets_stdout_stderr_and_exit_frames(monitor_bin: Path, short_tmp: Path) -> None:
    with monitor(
        monitor_bin, short_tmp, "read x; echo out; echo err >&2; exit 5", stdin=True
    ) as mon:
        assert mon.sock.stat().st_mode & 0o777 == 0o600
        client = mon.attach()
        client.send(STDIN, b"go\n")
        frames = client.all()
        assert joined(frames, STDOUT) == b"out\n"
        assert joined(frames, STDERR) == b"err\n"
        assert frames[-1] == (EXIT, b"5")
        assert mon.wait() == 0
        assert mon.exit_info()["exit_code"] == 5
        assert not mon.sock.exists()


def test_exit_file_for_exit_code(monitor_bin: Path, short_tmp: Path) -> None:
    (short_tmp / "attach.sock").write_text("stale")  # replaced by the monitor's socket
    with monitor(monitor_bin, short_tmp, "exit 3") as mon:
        assert mon.wait() == 0
        info = mon.exit_info()
    assert list(info) == ["exit_code", "signal", "finished_at"]
    assert info["exit_code"] == 3 and info["signal"] == 0
    finished = parse_time(str(info["finished_at"]))
    assert abs((datetime.now(UTC) - finished).total_seconds()) < 60
    assert sorted(p.name for p in short_tmp.iterdir()) == ["ctr.log", "exit.json"]


def test_exit_file_for_killed_container(monitor_bin: Path, short_tmp: Path) -> None:
    with monitor(monitor_bin, short_tmp, "exec sleep 60") as mon:
        os.kill(mon.ctr, signal.SIGKILL)
        assert mon.wait() == 0
        info = mon.exit_info()
    assert info["exit_code"] == 137 and info["signal"] == 9


def test_sigterm_kills_the_monitor(monitor_bin: Path, short_tmp: Path) -> None:
    with monitor(monitor_bin, short_tmp, "exec sleep 60") as mon:
        try:
            os.kill(mon.pid, signal.SIGTERM)
            status = wait_pid(mon.pid, TIMEOUT)
            assert status is not None and os.WIFSIGNALED(status)
            assert os.WTERMSIG(status) == signal.SIGTERM
            mon.status = status
            assert not mon.exit_file.exists()
        finally:  # the container outlives its monitor: it is ours to kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(mon.ctr, signal.SIGKILL)


def test_stdin_frames_reach_the_container(monitor_bin: Path, short_tmp: Path) -> None:
    big = bytes(range(256)) * 1200  # 300 KiB: more than a pipe holds
    with monitor(monitor_bin, short_tmp, "cat", stdin=True) as mon:
        client = mon.attach()
        client.send(STDIN, b"hello ")
        client.send(STDIN, b"world\n")
        client.send(STDIN, big)
        client.send(CLOSE_STDIN)
        frames = client.all()
        assert joined(frames, STDOUT) == b"hello world\n" + big
        assert frames[-1] == (EXIT, b"0")
        assert mon.wait() == 0


def test_pty_resize_and_output(monitor_bin: Path, short_tmp: Path) -> None:
    with monitor(monitor_bin, short_tmp, "read x; stty size; echo err >&2", pty=True) as mon:
        client = mon.attach()
        client.send(RESIZE, b"40 100")
        client.send(CLOSE_STDIN)  # ignored with a pty
        client.send(STDIN, b"go\n")
        frames = client.all()
        assert {k for k, _ in frames} == {STDOUT, EXIT}
        out = joined(frames, STDOUT)
        assert b"40 100\r\n" in out and b"err\r\n" in out
        assert frames[-1] == (EXIT, b"0")
        assert mon.wait() == 0
        entries = mon.log_entries()
    assert {e["stream"] for e in entries} == {"stdout"}
    assert "40 100\r\n" in [e["log"] for e in entries]


def test_log_rotation(monitor_bin: Path, short_tmp: Path) -> None:
    script = 'i=0; while [ $i -lt 100 ]; do echo "line $i padded out a little"; i=$((i+1)); done'
    args = ["--log-max-size", "1000", "--log-max-file", "3"]
    with monitor(monitor_bin, short_tmp, script, args=args) as mon:
        assert mon.wait() == 0
        files = [mon.log.with_name(f"ctr.log{s}") for s in (".2", ".1", "")]
        assert sorted(p.name for p in short_tmp.glob("ctr.log*")) == [
            "ctr.log",
            "ctr.log.1",
            "ctr.log.2",
        ]
        numbers = []
        for path in files:
            assert 0 < path.stat().st_size <= 1000, path
            numbers += [int(e["log"].split()[1]) for e in mon.log_entries(path)]
    assert numbers == list(range(numbers[0], 100))  # the newest lines, oldest file first


def test_log_max_file_one_truncates(monitor_bin: Path, short_tmp: Path) -> None:
    script = 'i=0; while [ $i -lt 50 ]; do echo "line $i"; i=$((i+1)); done'
    with monitor(monitor_bin, short_tmp, script, args=["--log-max-size", "500"]) as mon:
        assert mon.wait() == 0
        assert [p.name for p in short_tmp.glob("ctr.log*")] == ["ctr.log"]
        assert 0 < mon.log.stat().st_size <= 500
        assert mon.log_entries()[-1]["log"] == "line 49\n"


@pytest.mark.parametrize("handoff", [False, True])
def test_exit_command_unless_handed_off(monitor_bin: Path, short_tmp: Path, handoff: bool) -> None:
    done = short_tmp / "done"
    args = ["--exit-command", "/bin/sh", "--exit-command", "-c"]
    args += ["--exit-command", f"echo done $$ > {done}"]
    with monitor(monitor_bin, short_tmp, "cat", stdin=True, args=args) as mon:
        client = mon.attach()
        if handoff:
            client.send(HANDOFF)
        client.send(CLOSE_STDIN)
        assert client.all()[-1] == (EXIT, b"0")
        assert mon.wait() == 0
        assert mon.exit_info()["exit_code"] == 0
    if handoff:
        assert not done.exists()
    else:  # exec'd in place of the monitor: same pid
        assert done.read_text() == f"done {mon.pid}\n"


def test_handoff_lapses_when_its_client_leaves(monitor_bin: Path, short_tmp: Path) -> None:
    """A client that handed off and then died (a killed `cove run`) cleans nothing up: the
    monitor runs the exit command after all."""
    done = short_tmp / "done"
    args = ["--exit-command", "/bin/sh", "--exit-command", "-c"]
    args += ["--exit-command", f"echo done > {done}"]
    with monitor(monitor_bin, short_tmp, "cat", stdin=True, args=args) as mon:
        leaving = mon.attach()
        leaving.send(HANDOFF)
        leaving.sock.close()
        staying = mon.attach()
        staying.send(CLOSE_STDIN)
        assert staying.all()[-1] == (EXIT, b"0")
        assert mon.wait() == 0
    assert done.read_text() == "done\n"


def test_orphans_are_reaped(monitor_bin: Path, short_tmp: Path) -> None:
    script = "read x; sh -c 'sleep 1 & echo $!'; read y; exit 0"
    with monitor(monitor_bin, short_tmp, script, stdin=True) as mon:
        client = mon.attach()
        client.send(STDIN, b"go\n")
        kind, payload = client.next() or (0, b"")
        assert kind == STDOUT
        orphan = int(payload)
        wait_until(lambda: proc_stat(orphan) == ("S", mon.pid))  # re-parented to the monitor
        wait_until(lambda: proc_stat(orphan) is None)  # exited and reaped, not a zombie
        assert proc_stat(mon.ctr) is not None  # while the container still runs
        assert zombie_children(mon.pid) == []
        client.send(STDIN, b"bye\n")
        assert client.all()[-1] == (EXIT, b"0")
        assert mon.wait() == 0


def test_slow_client_is_dropped_and_container_not_blocked(
    monitor_bin: Path, short_tmp: Path
) -> None:
    script = r"read x; head -c 12000000 /dev/zero | tr '\0' x; echo; exit 4"
    args = ["--log-max-size", "2000000"]
    with monitor(monitor_bin, short_tmp, script, stdin=True, args=args) as mon:
        client = mon.attach()
        client.send(STDIN, b"go\n")  # and never read
        assert mon.wait(timeout=30) == 0
        assert mon.exit_info()["exit_code"] == 4
        received = b""
        client.sock.settimeout(TIMEOUT)
        while chunk := client.sock.recv(1 << 20):
            received += chunk
        assert 0 < len(received) < 12000000
        assert not received.endswith(frame(EXIT, b"4"))


def test_more_than_64_clients(monitor_bin: Path, short_tmp: Path) -> None:
    with monitor(monitor_bin, short_tmp, "read x; echo hi", stdin=True) as mon:
        clients = [mon.attach() for _ in range(65)]
        clients[64].sock.settimeout(TIMEOUT)
        assert clients[64].sock.recv(16) == b""  # closed at once
        socks = [c.sock for c in clients[:64]]
        assert select.select(socks, [], [], 0.2)[0] == []  # the others stay open
        clients[0].send(STDIN, b"go\n")
        for client in clients[:64]:
            frames = client.all()
            assert frames == [(STDOUT, b"hi\n"), (EXIT, b"0")]
        assert mon.wait() == 0


def test_bad_command_line_exits_2(monitor_bin: Path, short_tmp: Path) -> None:
    required = ["--pid", "1", "--exit-file", "e", "--attach-socket", "a", "--log-path", "l"]
    required += ["--sync-fd", "9"]
    for argv in (
        [],
        ["--bogus"],
        required[:-2],
        [*required, "--pty-fd", "5", "--stdout-fd", "6"],
        ["--pid", "abc", *required[2:]],
        [*required, "extra"],
    ):
        res = subprocess.run([monitor_bin, *argv], capture_output=True, text=True, timeout=TIMEOUT)
        assert res.returncode == 2, (argv, res.stderr)
        assert res.stderr


def test_startup_failure_is_reported_on_sync_fd(monitor_bin: Path, short_tmp: Path) -> None:
    sync_r, sync_w = os.pipe()
    try:
        argv = [str(monitor_bin), "--pid", "1", "--exit-file", str(short_tmp / "e")]
        argv += ["--attach-socket", str(short_tmp / "a"), "--log-path", str(short_tmp / "l")]
        argv += ["--sync-fd", str(sync_w)]
        res = subprocess.run(argv, pass_fds=[sync_w], capture_output=True, timeout=TIMEOUT)
        os.close(sync_w)
        sync_w = -1
        assert res.returncode == 1
        message = read_to_eof(sync_r).decode()
        assert message.startswith("error: ") and message.endswith("\n"), message
        assert "not a child" in message
    finally:
        os.close(sync_r)
        if sync_w >= 0:
            os.close(sync_w)


def test_idle_monitor_is_small(monitor_bin: Path, short_tmp: Path) -> None:
    with monitor(monitor_bin, short_tmp, "read x; echo bye", stdin=True) as mon:
        client = mon.attach()
        client.send(STDIN, b"")  # an empty frame: the monitor has served a client
        time.sleep(0.2)
        rollup = Path(f"/proc/{mon.pid}/smaps_rollup").read_text()
        pss = re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)
        assert pss, rollup
        pss_kb = int(pss.group(1))
        print(f"cove-monitor idle PSS: {pss_kb} kB")
        assert pss_kb < 1024
        client.send(STDIN, b"\n")
        assert client.all() == [(STDOUT, b"bye\n"), (EXIT, b"0")]
        assert mon.wait() == 0
