"""`cove logs`, `cove exec`, `cove attach`, terminals (`-it`) and `--init` on real containers:
the json-file log the monitor writes, its rotation and the reading flags; exec's overrides and
exit codes; attaching to a running container's stdio; a tty under a pseudo-terminal."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.integration.engine.test_lifecycle import (
    LOOP,
    WAIT_FOR_GATE,
    all_ids,
    fmt,
    gate,
    ok,
    poll,
    run_d,
    status,
)
from tests.integration.engine.test_lifecycle import eng as eng  # a fixture, used by name
from tests.integration.engine.test_lifecycle import engine as engine  # a fixture, used by name
from tests.integration.image.test_import import cove, cove_cli

pytestmark = pytest.mark.root

LOG_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"


def popen(root: Path, *args: str, stdin: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    argv = [cove_cli(), "--root", str(root), *args]
    return subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read_until(fd: int, wanted: bytes, timeout: float = 20.0) -> bytes:
    """Read `fd` until `wanted` has arrived (or fail after `timeout` seconds)."""
    data = b""
    deadline = time.monotonic() + timeout
    while wanted not in data:
        left = deadline - time.monotonic()
        assert left > 0, f"timed out waiting for {wanted!r}; got {data!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the terminal's other side is closed
                chunk = b""
            assert chunk, f"end of output before {wanted!r}; got {data!r}"
            data += chunk
    return data


def finish(process: subprocess.Popen[bytes], timeout: float = 20.0) -> tuple[int, bytes, bytes]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()
        process.wait()
    return process.returncode, out, err


def log_entries(root: Path, cid: str) -> list[dict[str, str]]:
    path = Path(fmt(root, "{{.LogPath}}", cid))
    assert path.name == f"{cid}-json.log" and path.parent.name == cid
    return [json.loads(line) for line in path.read_text().splitlines()]


# --- logs -------------------------------------------------------------------------------------


def test_json_file_log_and_reading_flags(eng: Path) -> None:
    script = "for i in 1 2 3 4 5; do echo line$i; done; echo problem >&2; echo last"
    cid = run_d(eng, "bb:1", "sh", "-c", script)
    assert ok(eng, "wait", cid) == "0\n"
    entries = log_entries(eng, cid)
    assert len(entries) == 7
    for entry in entries:
        assert set(entry) == {"log", "stream", "time"} and re.fullmatch(LOG_TIME, entry["time"])
    by_stream = {s: [e["log"] for e in entries if e["stream"] == s] for s in ("stdout", "stderr")}
    assert by_stream == {"stdout": [f"line{i}\n" for i in range(1, 6)] + ["last\n"],
                         "stderr": ["problem\n"]}  # fmt: skip
    full = cove(eng, "logs", cid)
    assert (full.stdout, full.stderr) == ("".join(by_stream["stdout"]), "problem\n")
    tail = cove(eng, "logs", "--tail", "2", cid)
    last_two = entries[-2:]
    assert tail.stdout == "".join(e["log"] for e in last_two if e["stream"] == "stdout")
    assert tail.stderr == "".join(e["log"] for e in last_two if e["stream"] == "stderr")
    assert cove(eng, "logs", "--tail", "0", cid).stdout == ""
    stamped = ok(eng, "logs", "-t", cid).splitlines()
    assert len(stamped) == 6
    for line, entry in zip(stamped, [e for e in entries if e["stream"] == "stdout"], strict=True):
        assert re.fullmatch(rf"{LOG_TIME} line\d|{LOG_TIME} last", line)
        assert line == f"{entry['time']} {entry['log'].rstrip()}"
    bad = cove(eng, "logs", "--since", "yesterday-ish", cid)
    assert bad.returncode != 0 and "--since" in bad.stderr


def test_logs_since_and_until(eng: Path) -> None:
    volume, go = gate(eng)
    cid = run_d(eng, *volume, "bb:1", "sh", "-c", f"echo early; {WAIT_FOR_GATE}; echo late")
    poll(lambda: ok(eng, "logs", cid) == "early\n", "the first line")
    time.sleep(0.05)
    middle = f"{time.time():.9f}"
    time.sleep(0.05)
    go.touch()
    assert ok(eng, "wait", cid) == "0\n"
    assert ok(eng, "logs", cid) == "early\nlate\n"
    assert ok(eng, "logs", "--since", middle, cid) == "late\n"
    assert ok(eng, "logs", "--until", middle, cid) == "early\n"
    assert ok(eng, "logs", "--since", "10m", cid) == "early\nlate\n"
    assert ok(eng, "logs", "--since", str(int(time.time()) + 60), cid) == ""


def test_logs_follow_ends_when_the_container_exits(eng: Path) -> None:
    volume, go = gate(eng)
    script = f"echo first; {WAIT_FOR_GATE}; echo second >&2; exit 3"
    cid = run_d(eng, *volume, "bb:1", "sh", "-c", script)
    follower = popen(eng, "logs", "-f", cid)
    try:
        assert follower.stdout is not None
        assert read_until(follower.stdout.fileno(), b"first\n") == b"first\n"
        assert follower.poll() is None  # still following
        go.touch()
        code, out, err = finish(follower)
    finally:
        follower.kill()
        follower.wait()
    assert (code, out, err) == (0, b"", b"second\n")
    assert status(eng, cid) == "exited"
    # following a stopped container prints what there is and returns
    res = cove(eng, "logs", "-f", cid)
    assert (res.returncode, res.stdout, res.stderr) == (0, "first\n", "second\n")


def test_log_rotation(eng: Path) -> None:
    script = "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done"
    cid = run_d(eng, "--log-opt", "max-size=1k", "--log-opt", "max-file=2", "bb:1", "sh",
                "-c", script)  # fmt: skip
    assert ok(eng, "wait", cid) == "0\n"
    log = Path(fmt(eng, "{{.LogPath}}", cid))
    kept = sorted(p.name for p in log.parent.iterdir() if p.name.startswith(log.name))
    assert kept == [log.name, log.name + ".1"]
    for path in (log, log.with_name(log.name + ".1")):
        assert 0 < path.stat().st_size <= 1024 + 100  # a file may end with one line past 1k
    lines = ok(eng, "logs", cid).splitlines()
    assert 10 < len(lines) < 300 and lines[-1] == "line-299"
    first = int(lines[0].split("-")[1])
    assert lines == [f"line-{i}" for i in range(first, 300)]  # the newest, in order
    assert fmt(eng, "{{.HostConfig.LogConfig.Type}}", cid) == "json-file"


def test_logs_survive_stop_and_start(eng: Path) -> None:
    cid = run_d(eng, "bb:1", "sh", "-c", f"echo run; trap 'exit 0' TERM; {LOOP}")
    poll(lambda: ok(eng, "logs", cid) == "run\n", "the first run's line")
    ok(eng, "stop", cid)
    assert ok(eng, "logs", cid) == "run\n"
    ok(eng, "start", cid)
    poll(lambda: ok(eng, "logs", cid) == "run\nrun\n", "the second run's line")
    ok(eng, "stop", cid)
    assert ok(eng, "logs", cid) == "run\nrun\n"


# --- exec -------------------------------------------------------------------------------------


def test_exec_exit_codes_and_overrides(eng: Path) -> None:
    cid = run_d(eng, "-e", "FOO=image", "bb:1", "sh", "-c", LOOP)
    assert cove(eng, "exec", cid, "sh", "-c", "exit 6").returncode == 6
    res = cove(eng, "exec", "-e", "FOO=bar", "-w", "/tmp", "-u", "nobody", cid, "sh", "-c",
               "echo $FOO $(pwd) $(id -u) $(id -g)")  # fmt: skip
    assert (res.returncode, res.stdout) == (0, "bar /tmp 1000 1000\n"), res.stderr
    assert ok(eng, "exec", cid, "sh", "-c", "echo $FOO $(pwd) $(id -u)") == "image / 0\n"
    assert ok(eng, "exec", "-u", "1234:55", cid, "id") == "uid=1234 gid=55\n"
    err = cove(eng, "exec", cid, "sh", "-c", "echo to-stderr >&2")
    assert (err.stdout, err.stderr) == ("", "to-stderr\n")
    piped = cove(eng, "exec", "-i", cid, "cat", stdin=b"through stdin\n")
    assert piped.stdout == "through stdin\n"
    assert cove(eng, "exec", cid, "/no/such/program").returncode == 127
    assert cove(eng, "exec", "-u", "nosuchuser", cid, "true").returncode != 0
    ok(eng, "stop", "-t", "0", cid)
    stopped = cove(eng, "exec", cid, "true")
    assert stopped.returncode == 1 and "not running" in stopped.stderr
    assert cove(eng, "exec", "nosuchcontainer", "true").returncode == 1


def test_exec_detached(eng: Path) -> None:
    cid = run_d(eng, "bb:1", "sh", "-c", LOOP)
    for i in range(30):  # the setup child's InitPid once raced the process's Ready
        res = cove(eng, "exec", "-d", cid, "sh", "-c", f"sleep 0.1; echo {i} >> /tmp/marks")
        assert (res.returncode, res.stdout) == (0, ""), res.stderr
    expected = [str(i) for i in range(30)]
    poll(lambda: sorted(ok(eng, "exec", cid, "cat", "/tmp/marks").split(), key=int) == expected,
         "every exec -d ran")  # fmt: skip


def in_terminal(argv: list[str], rows: int = 24, columns: int = 80) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal of that size as its stdio; its status and output."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    try:
        process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                   start_new_session=True)  # fmt: skip
    finally:
        os.close(slave)
    output = b""
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every holder of the terminal's other side is gone
                break
            if not chunk:
                break
            output += chunk
        code = process.wait(timeout=10)
    finally:
        process.kill()
        process.wait()
        os.close(master)
    return code, output.decode(errors="replace")


def test_exec_and_run_with_a_terminal(eng: Path) -> None:
    cid = run_d(eng, "bb:1", "sh", "-c", LOOP)
    code, out = in_terminal([cove_cli(), "--root", str(eng), "exec", "-it", cid, "tty"])
    assert code == 0 and re.search(r"^/dev/pts/\d+\r?$", out, re.M), out
    code, out = in_terminal([cove_cli(), "--root", str(eng), "exec", "-t", cid, "sh", "-c",
                             "stty size; exit 4"], rows=33, columns=101)  # fmt: skip
    assert code == 4 and "33 101" in out, out
    code, out = in_terminal([cove_cli(), "--root", str(eng), "run", "--rm", "-it", "bb:1", "sh",
                             "-c", "tty; stty size; exit 5"], rows=41, columns=97)  # fmt: skip
    assert code == 5, out
    assert re.search(r"^/dev/pts/0\r?$", out, re.M) and "41 97" in out, out
    assert all_ids(eng) == [cid]  # --rm removed the -it one


# --- attach -----------------------------------------------------------------------------------


def test_attach_sends_stdin_and_returns_the_exit_code(eng: Path) -> None:
    cid = run_d(eng, "-i", "bb:1", "sh")
    attach = popen(eng, "attach", cid, stdin=subprocess.PIPE)
    try:
        assert attach.stdin is not None and attach.stdout and attach.stderr
        attach.stdin.write(b"echo hi\n")
        attach.stdin.flush()
        assert read_until(attach.stdout.fileno(), b"hi\n") == b"hi\n"
        attach.stdin.write(b"echo oops >&2; exit 3\n")
        attach.stdin.flush()
        code, out, err = finish(attach)
    finally:
        attach.kill()
        attach.wait()
    assert (code, out, err) == (3, b"", b"oops\n")
    assert fmt(eng, "{{.State.Status}} {{.State.ExitCode}}", cid) == "exited 3"
    assert ok(eng, "logs", cid) == "hi\n"
    refused = cove(eng, "attach", cid)
    assert refused.returncode == 1 and "stopped container" in refused.stderr


def test_attach_sees_output_while_attached(eng: Path) -> None:
    volume, go = gate(eng)
    script = "until [ -e /gate/go ]; do echo tick; sleep 0.1; done; echo late; exit 4"
    cid = run_d(eng, *volume, "bb:1", "sh", "-c", script)
    attach = popen(eng, "attach", cid)
    try:
        assert attach.stdout is not None
        read_until(attach.stdout.fileno(), b"tick\n")  # attached: the output flows
        go.touch()
        code, out, _ = finish(attach)
    finally:
        attach.kill()
        attach.wait()
    assert code == 4 and out.endswith(b"late\n") and set(out.split()) <= {b"tick", b"late"}
    assert fmt(eng, "{{.State.Status}} {{.State.ExitCode}}", cid) == "exited 4"


def test_start_attached_with_stdin(eng: Path) -> None:
    cid = ok(eng, "create", "-i", "bb:1", "sh", "-c", "read line; echo got $line; exit 2").strip()
    res = cove(eng, "start", "-a", "-i", cid, stdin=b"hello\n")
    assert (res.returncode, res.stdout) == (2, "got hello\n"), res.stderr


# --- --init -----------------------------------------------------------------------------------


def processes(root: Path, cid: str) -> list[tuple[str, str]]:
    """(state, command name) of the container's init and its descendants, seen from the host
    (an exec would be one more process)."""
    found = []
    pids = [fmt(root, "{{.State.Pid}}", cid)]
    while pids:
        pid = pids.pop()
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            pids += Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue  # gone meanwhile
        found.append((stat[stat.rindex(")") + 2], stat[stat.index("(") + 1 : stat.rindex(")")]))
    return sorted(found, key=lambda p: p[1])


def test_init_is_pid_1_and_reaps_zombies(eng: Path) -> None:
    res = cove(eng, "run", "--rm", "--init", "bb:1", "ps", "-o", "pid,comm")
    assert res.returncode == 0, res.stderr
    table = [line.split() for line in res.stdout.splitlines()[1:]]
    assert table[0] == ["1", "cove-init"] and table[1][1] == "ps"
    res = cove(eng, "run", "--rm", "bb:1", "ps", "-o", "pid,comm")
    assert [line.split() for line in res.stdout.splitlines()[1:]] == [["1", "ps"]]
    # an orphan whose parent exits is re-parented to PID 1: sleep never reaps it, cove-init does
    orphan = "(sleep 0.1 &); exec sleep 100"
    plain = run_d(eng, "bb:1", "sh", "-c", orphan)
    poll(lambda: processes(eng, plain) == [("S", "sleep"), ("Z", "sleep")], "a zombie stays")
    with_init = run_d(eng, "--init", "bb:1", "sh", "-c", orphan)
    poll(lambda: processes(eng, with_init) == [("S", "cove-init"), ("S", "sleep")], "no zombie")
    assert fmt(eng, "{{.HostConfig.Init}}", with_init) == "true"
    # cove-init passes the stop signal on to the command
    trapped = run_d(eng, "--init", "bb:1", "sh", "-c", f"trap 'exit 7' TERM; {LOOP}")
    started = time.monotonic()
    ok(eng, "stop", trapped)
    assert time.monotonic() - started < 5
    assert fmt(eng, "{{.State.ExitCode}}", trapped) == "7"
