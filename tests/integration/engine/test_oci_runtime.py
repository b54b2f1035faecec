"""The engine's OCIRuntime (SubprocessRuntime) driving cove-runtime, runc and crun through the
same busybox lifecycle; every runtime must give the same observations."""

from __future__ import annotations

import copy
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.engine.oci_runtime import SubprocessRuntime, runtime_for
from cove.errors import RuntimeFailed, RuntimeNoSuchContainer, RuntimeNotFound
from tests.lib.bundle import Bundle, new_container_id
from tests.lib.runtimes import RUNTIME_NAMES, leaked_cgroups, mounts_under, wait_for

pytestmark = pytest.mark.root

MIB = 1 << 20

# What every runtime must report for the lifecycle below.
EXPECTED: dict[str, Any] = {
    "created": "created",
    "pid_file_matches": True,
    "bundle": True,
    "running": "running",
    "ps_after_start": 1,
    "exec_status": 3,
    "exec_wrote_file": "hello\n",
    "ps_with_detached": 2,
    "detached_pid_listed": True,
    "paused": "paused",
    "resumed": "running",
    "memory_limit": 64 * MIB,
    "pids_limit": 50,
    "pids_current": 2,
    "memory_usage_positive": True,
    "cpu_total_positive": True,
    "cgroup_memory_limit": 64 * MIB,
    "stopped": "stopped",
    "deleted": "RuntimeNoSuchContainer",
    "create_twice": "RuntimeFailed",
    "start_missing": "RuntimeNoSuchContainer",
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Callable[[str], SubprocessRuntime]]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    made: list[tuple[SubprocessRuntime, list[str]]] = []

    def factory(name: str) -> SubprocessRuntime:
        try:
            rt = runtime_for(name, tmp_path / "engine")
        except RuntimeNotFound as exc:
            pytest.skip(str(exc))
        made.append((rt, []))
        return rt

    yield factory
    problems: list[str] = []
    for rt, _ in made:
        if rt.root.exists():
            for entry in rt.root.iterdir():
                if entry.is_dir():
                    problems.append(f"{rt.name}: state left for {entry.name}")
                    try:
                        rt.delete(entry.name, force=True)
                    except RuntimeFailed as exc:
                        problems.append(str(exc))
    logs = tmp_path / "engine" / "runtime" / ".logs"
    if logs.exists() and any(logs.iterdir()):
        problems.append(f"log files left: {sorted(p.name for p in logs.iterdir())}")
    problems += [f"mount left: {m}" for m in mounts_under(tmp_path)]
    assert not problems, problems


def _cgroup_file(pid: int, controller: str, name: str) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, rel = line.split(":", 2)
        if controller in controllers.split(","):
            return Path("/sys/fs/cgroup") / controller / rel.lstrip("/") / name
    return Path("/sys/fs/cgroup") / rel.lstrip("/") / name  # cgroup v2


def _process(b: Bundle, *args: str) -> dict[str, Any]:
    proc = copy.deepcopy(b.process)
    proc["args"] = list(args)
    proc["terminal"] = False
    return proc


def lifecycle(rt: SubprocessRuntime, b: Bundle, tmp_path: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    cid = new_container_id(rt.name)
    b.set_args("sleep", "300")
    b.save()
    pid_file = tmp_path / f"{rt.name}.pid"
    rt.create(cid, b.path, pid_file=pid_file)
    try:
        st = rt.state(cid)
        seen["created"] = st.status
        seen["pid_file_matches"] = int(pid_file.read_text()) == st.pid > 0
        seen["bundle"] = os.path.realpath(st.bundle) == os.path.realpath(b.path)
        pid = st.pid

        rt.start(cid)
        seen["running"] = rt.state(cid).status
        seen["ps_after_start"] = len(rt.ps(cid))

        seen["exec_status"] = rt.exec(cid, _process(b, "sh", "-c", "exit 3"), detach=False)
        rt.exec(cid, _process(b, "sh", "-c", "echo hello > /tmp/out"), detach=False)
        seen["exec_wrote_file"] = b.host_path("/tmp/out").read_text()

        xpid_file = tmp_path / f"{rt.name}.xpid"
        assert rt.exec(cid, _process(b, "sleep", "300"), detach=True, pid_file=xpid_file) == 0
        xpid = int(xpid_file.read_text())
        pids = rt.ps(cid)
        seen["ps_with_detached"] = len(pids)
        seen["detached_pid_listed"] = xpid in pids and pid in pids

        rt.pause(cid)
        seen["paused"] = rt.state(cid).status
        rt.resume(cid)
        seen["resumed"] = rt.state(cid).status

        rt.update(cid, {"memory": {"limit": 64 * MIB}, "pids": {"limit": 50}})
        stats = rt.events_stats(cid)
        seen["memory_limit"] = stats["memory"]["usage"]["limit"]
        seen["pids_limit"] = stats["pids"]["limit"]
        seen["pids_current"] = stats["pids"]["current"]
        seen["memory_usage_positive"] = stats["memory"]["usage"]["usage"] > 0
        seen["cpu_total_positive"] = stats["cpu"]["usage"]["total"] > 0
        limit_file = _cgroup_file(pid, "memory", "memory.limit_in_bytes")
        seen["cgroup_memory_limit"] = int(limit_file.read_text())

        rt.kill(cid, signal.SIGKILL, all=True)
        wait_for(lambda: rt.state(cid).status == "stopped", timeout=10)
        seen["stopped"] = rt.state(cid).status
        rt.delete(cid)
        try:
            rt.state(cid)
            seen["deleted"] = "still there"
        except RuntimeFailed as exc:
            seen["deleted"] = type(exc).__name__
        assert not leaked_cgroups(cid)
    finally:
        if (rt.root / cid).exists():
            rt.delete(cid, force=True)

    # errors carry the runtime's own message
    other = new_container_id(rt.name)
    rt.create(other, b.path, pid_file=pid_file)
    try:
        with pytest.raises(RuntimeFailed) as info:
            rt.create(other, b.path, pid_file=pid_file)
        seen["create_twice"] = type(info.value).__name__
        assert info.value.message and "exit status" not in info.value.message
    finally:
        rt.delete(other, force=True)
    with pytest.raises(RuntimeFailed) as missing:
        rt.start("no-such-" + other)
    seen["start_missing"] = type(missing.value).__name__
    assert missing.value.message
    return seen


@pytest.mark.parametrize("name", RUNTIME_NAMES)
def test_lifecycle_is_the_same_on_every_runtime(
    name: str,
    engine: Callable[[str], SubprocessRuntime],
    bundle: Callable[..., Bundle],
    tmp_path: Path,
) -> None:
    rt = engine(name)
    started = time.monotonic()
    seen = lifecycle(rt, bundle(), tmp_path)
    assert seen == EXPECTED, f"{name} ({time.monotonic() - started:.1f}s)"
    assert list((tmp_path / "engine" / "runtime" / ".logs").iterdir()) == []


def test_runtimes_do_not_share_state(
    engine: Callable[[str], SubprocessRuntime], bundle: Callable[..., Bundle], tmp_path: Path
) -> None:
    cove, runc = engine("cove"), engine("runc")
    assert cove.root != runc.root
    b = bundle()
    b.shell("sleep 300")
    b.save()
    cid = new_container_id("iso")
    cove.create(cid, b.path, pid_file=tmp_path / "pid")
    try:
        with pytest.raises(RuntimeNoSuchContainer):
            runc.state(cid)
        assert cove.state(cid).status == "created"
    finally:
        cove.delete(cid, force=True)
