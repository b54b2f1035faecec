"""cgroup v2 against the real kernel, in scratch cgroups directly under the cgroup2 mount.

On a hybrid host (this one: /sys/fs/cgroup/unified) the cgroup2 hierarchy has no resource
controller enabled, but what cgroup v2 does without one works on any of its directories:
cgroup.procs, cgroup.freeze / cgroup.events, cgroup.kill, and eBPF device programs. Each
test makes cove-test-<uuid>, moves forked children of the test (never the test itself)
into it, and in the end kills what it started, reaps it and removes the directory.
Nothing else in the hierarchy is written to.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import DeviceRule, LinuxResources
from cove.runtime.cgroups.layout import host_layout
from cove.runtime.cgroups.v2 import CONTROLLERS, devices, freezer
from tests.lib.cgroups import remove_cgroup_dir

pytestmark = pytest.mark.root


@pytest.fixture
def scratch() -> Iterator[str]:
    """A new cgroup directly under the cgroup2 mount; removed (emptied first) at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root (real cgroups)")
    unified = host_layout().unified
    if unified is None:
        pytest.skip("no cgroup2 mount on this host")
    path = os.path.join(unified.mountpoint, f"cove-test-{uuid.uuid4().hex[:12]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        # Anything still inside is ours (children of this test): back to the mount root
        # (where processes may live) so the directory can go even if a kill failed.
        for pid in Path(path, "cgroup.procs").read_text().split():
            try:
                Path(unified.mountpoint, "cgroup.procs").write_text(pid)
            except OSError:
                pass
        remove_cgroup_dir(path)


@pytest.fixture
def sleeper() -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Factory: a `sleep` child of this test moved into the given cgroup; killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn(path: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "60"])
        started.append(proc)
        Path(path, "cgroup.procs").write_text(str(proc.pid))
        return proc

    try:
        yield spawn
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def run_in(path: str, probe: Callable[[], str]) -> str:
    """Fork a child, move it into the cgroup `path`, run `probe` there; its result."""
    go_read, go_write = os.pipe()
    out_read, out_write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only os calls, then _exit (never back into pytest)
        code = 0
        try:
            os.close(go_write)
            os.close(out_read)
            os.read(go_read, 1)
            os.write(out_write, probe().encode())
        except BaseException as exc:
            os.write(out_write, f"child failed: {exc!r}".encode())
            code = 1
        finally:
            os._exit(code)
    os.close(go_read)
    os.close(out_write)
    chunks = []
    try:
        Path(path, "cgroup.procs").write_text(str(pid))
        os.write(go_write, b"g")
        while chunk := os.read(out_read, 4096):
            chunks.append(chunk)
    finally:
        os.close(go_write)
        os.close(out_read)
        if not chunks:
            os.kill(pid, 9)
        os.waitpid(pid, 0)
    return b"".join(chunks).decode()


def _try(action: Callable[..., object], *args: object) -> str:
    try:
        action(*args)
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))


def opens(*attempts: tuple[str, int]) -> Callable[[], str]:
    """A probe opening each (device, flags): "ok" or the errno name, comma-separated."""

    def probe() -> str:
        def open_close(device: str, flags: int) -> None:
            os.close(os.open(device, flags))

        return ",".join(_try(open_close, device, flags) for device, flags in attempts)

    return probe


def rule(allow: bool, kind: str, major: int | None, minor: int | None, access: str) -> DeviceRule:
    return DeviceRule(allow=allow, type=kind, major=major, minor=minor, access=access)


# --- devices: the eBPF program ------------------------------------------------------------


def test_device_program_allows_null_and_refuses_zero(scratch: str, tmp_path: Path) -> None:
    # The bare program (no default rules): /dev/null only, read/write and mknod.
    program = devices.assemble([rule(True, "c", 1, 3, "rwm")])
    prog_fd = devices.load(program)
    try:
        devices.attach(scratch, prog_fd)
    finally:
        os.close(prog_fd)
    assert len(devices.attached(scratch)) == 1
    assert run_in(scratch, opens(("/dev/null", os.O_RDWR), ("/dev/zero", os.O_RDONLY))) == (
        "ok,EPERM"
    )

    def mknods() -> str:
        made = []
        for name, minor in (("null", 3), ("zero", 5)):
            node = str(tmp_path / name)
            made.append(_try(os.mknod, node, stat.S_IFCHR | 0o600, os.makedev(1, minor)))
        return ",".join(made)

    assert run_in(scratch, mknods) == "ok,EPERM"
    # Outside the cgroup nothing changed.
    os.close(os.open("/dev/zero", os.O_RDONLY))
    assert devices.detach_all(scratch) == 1
    assert devices.attached(scratch) == []
    assert run_in(scratch, opens(("/dev/zero", os.O_RDONLY))) == "ok"


def test_controller_installs_and_replaces_the_filter(scratch: str) -> None:
    kmsg = ("/dev/kmsg", os.O_RDONLY)  # 1:11, not among the default devices
    kmsg_write = ("/dev/kmsg", os.O_WRONLY)
    defaults = (("/dev/null", os.O_RDWR), ("/dev/zero", os.O_RDONLY), ("/dev/full", os.O_RDWR))
    controller = CONTROLLERS["devices"]

    controller.apply(scratch, LinuxResources(devices=(rule(False, "a", None, None, "rwm"),)))
    first = devices.attached(scratch)
    assert len(first) == 1
    assert run_in(scratch, opens(*defaults, kmsg)) == "ok,ok,ok,EPERM"

    # An update: read access to 1:11 only. The old program is gone, the new one alone.
    controller.apply(
        scratch,
        LinuxResources(devices=(rule(False, "a", None, None, "rwm"), rule(True, "c", 1, 11, "r"))),
    )
    second = devices.attached(scratch)
    assert len(second) == 1 and second != first
    assert run_in(scratch, opens(kmsg, kmsg_write)) == "ok,EPERM"

    # A later deny of one bit, and defaults winning over a spec that denies /dev/null.
    controller.apply(
        scratch,
        LinuxResources(
            devices=(
                rule(True, "c", 1, 11, "rw"),
                rule(False, "c", 1, 11, "w"),
                rule(False, "c", 1, 3, "rwm"),
            )
        ),
    )
    assert run_in(scratch, opens(kmsg, kmsg_write, ("/dev/null", os.O_RDWR))) == "ok,EPERM,ok"

    # No rules in an update: the filter in place stays.
    controller.apply(scratch, LinuxResources())
    assert len(devices.attached(scratch)) == 1
    assert run_in(scratch, opens(kmsg_write)) == "EPERM"
    assert devices.detach_all(scratch) == 1


def test_verifier_refusal_is_quoted(scratch: str) -> None:
    # Reads past the end of struct bpf_cgroup_dev_ctx (12 bytes).
    bad = b"".join(
        (
            devices.insn(devices.LDX_MEM_W, 2, 1, 12),
            devices.insn(devices.ALU64_MOV_K, 0, 0, 0, 1),
            devices.insn(devices.JMP_EXIT),
        )
    )
    with pytest.raises(CgroupError, match=r"^linux\.resources\.devices: the kernel rejected .*ctx"):
        devices.load(bad)


# --- core files: cgroup.procs, cgroup.freeze, cgroup.kill ----------------------------------


def test_procs(scratch: str, sleeper: Callable[[str], subprocess.Popen[bytes]]) -> None:
    proc = sleeper(scratch)
    assert Path(scratch, "cgroup.procs").read_text().split() == [str(proc.pid)]
    lines = Path(f"/proc/{proc.pid}/cgroup").read_text().splitlines()
    assert f"0::/{os.path.basename(scratch)}" in lines
    events = Path(scratch, "cgroup.events").read_text().split()
    assert events[events.index("populated") + 1] == "1"


SIGNAL_CATCHER = 'trap "echo usr1 > $0" USR1; echo ready > $0.ready; while :; do sleep 0.02; done'


def test_freeze_and_thaw(
    scratch: str, sleeper: Callable[[str], subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    catcher = subprocess.Popen(["sh", "-c", SIGNAL_CATCHER, str(flag)])
    try:
        Path(scratch, "cgroup.procs").write_text(str(catcher.pid))
        sleeper(scratch)
        deadline = time.monotonic() + 5
        while not Path(f"{flag}.ready").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not freezer.is_frozen(scratch)
        freezer.freeze(scratch)
        assert freezer.is_frozen(scratch)
        assert "frozen 1" in Path(scratch, "cgroup.events").read_text()
        # A frozen process runs no signal handler until thawed. (A fatal signal would
        # still kill it: the kernel turns those into SIGKILL, which reaches frozen tasks.)
        catcher.send_signal(10)  # SIGUSR1
        time.sleep(0.2)
        assert not flag.exists()
        freezer.thaw(scratch)
        assert not freezer.is_frozen(scratch)
        assert "frozen 0" in Path(scratch, "cgroup.events").read_text()
        deadline = time.monotonic() + 5
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert flag.read_text() == "usr1\n"
    finally:
        catcher.kill()
        catcher.wait()


def test_kill_all(scratch: str, sleeper: Callable[[str], subprocess.Popen[bytes]]) -> None:
    if not Path(scratch, "cgroup.kill").exists():
        pytest.skip("kernel without cgroup.kill (before 5.14)")
    procs = [sleeper(scratch) for _ in range(3)]
    assert freezer.kill_all(scratch) is True
    assert [proc.wait(timeout=5) for proc in procs] == [-9, -9, -9]
    deadline = time.monotonic() + 5
    while Path(scratch, "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert Path(scratch, "cgroup.procs").read_text() == ""


def test_kill_all_reaches_a_frozen_cgroup(
    scratch: str, sleeper: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    if not Path(scratch, "cgroup.kill").exists():
        pytest.skip("kernel without cgroup.kill (before 5.14)")
    proc = sleeper(scratch)
    freezer.freeze(scratch)
    assert freezer.kill_all(scratch)
    assert proc.wait(timeout=5) == -9
    freezer.thaw(scratch)


def test_stats_of_a_real_directory(
    scratch: str, sleeper: Callable[[str], subprocess.Popen[bytes]]
) -> None:
    sleeper(scratch)
    data: dict[str, Any] = {}
    for controller in CONTROLLERS.values():
        controller.stats(scratch, data)
    json.dumps(data)  # runc's events --stats is JSON: every figure must serialize
    # cpu.stat is a core file: usage is there even with no cpu controller enabled.
    assert set(data["cpu"]["usage"]) == {"total", "kernel", "user"}
    assert "memory" not in data or data["memory"]["usage"]["usage"] >= 0
