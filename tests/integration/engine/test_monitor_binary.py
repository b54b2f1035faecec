"""cove-monitor (native/cove-monitor.c), started the way the engine starts it.

The test forks F, which becomes a child subreaper and session leader, forks the "container"
(`/bin/sh -c SCRIPT` on pipes or a pty), keeps the read ends and execs cove-monitor: the
monitor is then the parent of the container and our own child. The test reads the sync
pipe, talks to the attach socket and checks the log, the exit file and the process table.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.engine.monitor_support import (
    CLOSE_STDIN,
    EXIT,
    HANDOFF,
    RESIZE,
    STDERR,
    STDIN,
    STDOUT,
    TIMEOUT,
    frame,
    joined,
    monitor,
    parse_time,
    proc_stat,
    read_to_eof,
    wait_pid,
    wait_until,
    zombie_children,
)
from tests.integration.engine.monitor_support import monitor_bin as monitor_bin

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
