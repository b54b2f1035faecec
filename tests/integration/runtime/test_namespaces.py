"""cove-only checks of namespaces the reference comparison does not cover."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.lib.bundle import Bundle
from tests.lib.probe import last_json
from tests.lib.runtimes import Runtime


def _user_namespace(b: Bundle, host_base: int = 100000) -> None:
    b.config["linux"]["namespaces"].append({"type": "user"})
    mapping = [{"containerID": 0, "hostID": host_base, "size": 65536}]
    b.config["linux"]["uidMappings"] = mapping
    b.config["linux"]["gidMappings"] = mapping
    # The mapped root must reach the rootfs (pytest's tmp folders are 0700) and own it.
    for parent in b.path.parents:
        if parent == Path("/tmp"):
            break
        parent.chmod(parent.stat().st_mode | 0o011)
    b.path.chmod(0o755)
    for dirpath, dirnames, filenames in os.walk(b.rootfs):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), host_base, host_base)
    os.lchown(b.rootfs, host_base, host_base)


def test_user_namespace_maps_root(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    _user_namespace(b)
    b.process["args"] = ["sh", "-c", "cat /proc/self/uid_map; /bin/coveprobe ids; touch /ok"]
    res = rt.run(b, b.id)
    res.check()
    assert res.stdout.split()[:3] == ["0", "100000", "65536"]
    ids = last_json(res.stdout)
    assert (ids["uid"], ids["gid"]) == (0, 0)
    assert os.stat(b.host_path("/ok")).st_uid == 100000


def test_exec_joins_the_user_namespace(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    _user_namespace(b)
    b.process["args"] = ["sleep", "100"]
    rt.run(b, b.id, "--detach").check()
    res = rt.exec(b.id, "cat", "/proc/self/uid_map")
    res.check()
    assert res.stdout.split() == ["0", "100000", "65536"]


def test_time_namespace_offsets(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    b.config["linux"]["namespaces"].append({"type": "time"})
    b.config["linux"]["timeOffsets"] = {"boottime": {"secs": 864000, "nanosecs": 0}}
    b.process["args"] = ["cat", "/proc/uptime"]
    res = rt.run(b, b.id)
    res.check()
    host_uptime = float(Path("/proc/uptime").read_text().split()[0])
    inside = float(res.stdout.split()[0])
    assert 864000 - 5 < inside - host_uptime < 864000 + 5


def test_no_pivot_runs_in_the_rootfs(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    (b.rootfs / "marker-no-pivot").write_text("inside")
    b.process["args"] = ["cat", "/marker-no-pivot"]
    res = rt.run(b, b.id, "--no-pivot")
    res.check()
    assert res.stdout == "inside"


def test_preserve_fds_passes_extra_descriptors(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    b.process["args"] = ["sh", "-c", "echo through-fd-3 >&3"]
    b.save()
    rt.track(b.id)
    read_end, write_end = os.pipe()
    # The runtime must get the pipe as fd 3: a shell redirect does that in the child only.
    command = rt.command("run", "--preserve-fds", "1", "--bundle", str(b.path), b.id)
    try:
        done = subprocess.run(
            ["bash", "-c", f'exec "$@" 3>&{write_end}', "bash", *command],
            pass_fds=(write_end,),
            capture_output=True,
            timeout=30,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 0, done.stderr
    assert os.read(read_end, 100) == b"through-fd-3\n"
    os.close(read_end)


def test_exec_without_preserve_fds_gets_no_extra_descriptors(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    b.process["args"] = ["ls", "/proc/self/fd"]
    res = rt.run(b, b.id)
    res.check()
    # ls itself opens the directory: 0, 1, 2 and that one.
    assert len(res.stdout.split()) <= 4, res.stdout


def test_foreground_run_with_a_terminal(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    """terminal: true without --console-socket: run proxies its own pty to the container."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    rt = make_runtime("cove")
    b = bundle()
    b.process["terminal"] = True
    b.process["args"] = ["sh", "-c", "tty; stty size; read line; echo got-$line; exit 7"]
    b.save()
    rt.track(b.id)
    pid, master = pty.fork()
    if pid == 0:  # pragma: no cover - the child execs at once
        os.execv(rt.command("run")[0], rt.command("run", "--bundle", str(b.path), b.id))
    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    output = b""
    deadline = time.monotonic() + 20
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        output += data
        if b"33 101" in output and not answered:
            os.write(master, b"hello\r")
            answered = True
    _, status = os.waitpid(pid, 0)
    os.close(master)
    assert os.waitstatus_to_exitcode(status) == 7, output
    lines = output.decode().split()
    assert lines[0].startswith("/dev/pts/")
    assert "33 101" in output.decode()
    assert "got-hello" in lines
