"""Resource limits enforced by the kernel through cove's cgroups (real containers, root).

These run on cgroup v1/hybrid hosts, where cove drives the v1 controllers.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lib.bundle import Bundle
from tests.lib.runtimes import Runtime, wait_for

pytestmark = pytest.mark.root

V1 = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
needs_v1 = pytest.mark.skipif(not V1, reason="needs cgroup v1 controllers (this is a v2 host)")

MiB = 1 << 20


def cgroup_file(controller: str, container_id: str, name: str) -> Path:
    return Path(f"/sys/fs/cgroup/{controller}/cove/{container_id}/{name}")


def detached(rt: Runtime, b: Bundle) -> int:
    rt.run(b, b.id, "--detach").check()
    return int(rt.state_json(b.id)["pid"])


@needs_v1
def test_memory_limit_oom_kills_inside_and_is_reported(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    b.linux["resources"] = {"memory": {"limit": 32 * MiB, "swap": 32 * MiB}}
    # The hog volunteers to the OOM killer (oom_score_adj 1000, inherited by head and tail):
    # otherwise a second kill may take the init and end the container. (Lowering the
    # init's score instead needs CAP_SYS_RESOURCE, which root lacks on these hosts.)
    # `tail` keeps the whole stream in memory: it grows past the limit and is killed, while
    # the container's shell survives and reports how tail died.
    b.shell("sleep 1; sh -c 'echo 1000 > /proc/self/oom_score_adj; head -c 200m /dev/zero | tail"
            " > /dev/null'; echo tail-status=$? > /tmp/st; sleep 60")  # fmt: skip
    detached(rt, b)
    assert int(cgroup_file("memory", b.id, "memory.limit_in_bytes").read_text()) == 32 * MiB
    events = rt.popen(
        "events", "--interval", "1s", b.id, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert events.stdout is not None
        seen: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(e["type"] == "oom" for e in seen):
            ready, _, _ = select.select([events.stdout], [], [], 1)
            if ready:
                line = events.stdout.readline()
                if line:
                    seen.append(json.loads(line))
        if not any(e["type"] == "oom" for e in seen):
            events.kill()
            _, errors = events.communicate()
            st = b.host_path("/tmp/st")
            raise AssertionError(
                f"no oom event in {len(seen)} events; events said: {errors!r}; container "
                f"{rt.status(b.id)}; script: {st.read_text() if st.exists() else 'no /tmp/st'}; "
                f"memory.failcnt {cgroup_file('memory', b.id, 'memory.failcnt').read_text()!r} "
                f"oom_control {cgroup_file('memory', b.id, 'memory.oom_control').read_text()!r}"
            )
        stats = [e for e in seen if e["type"] == "stats"]
        assert stats and "memory" in stats[0]["data"]  # type: ignore[operator]
    finally:
        events.kill()
        events.wait()
    assert wait_for(b.host_path("/tmp/st").exists, timeout=10)
    assert b.host_path("/tmp/st").read_text().strip() == "tail-status=137"
    assert rt.status(b.id) == "running"  # the container and the runtime survive


@needs_v1
def test_pids_limit_stops_a_fork_bomb(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    b.linux["resources"] = {"pids": {"limit": 16}}
    # busybox sh gives up when fork fails: the bomb runs in a child shell, and the outer
    # one (which forks nothing more: echo is a builtin) reports how it ended.
    b.shell("sh -c 'i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); done' 2>/tmp/err; "
            "echo $? > /tmp/done; sleep 60")  # fmt: skip
    detached(rt, b)
    assert wait_for(b.host_path("/tmp/done").exists, timeout=20)
    current = int(cgroup_file("pids", b.id, "pids.current").read_text())
    assert current <= 16
    assert "fork" in b.host_path("/tmp/err").read_text().lower()
    assert len(rt.ps(b.id, "--format", "json").json()) <= 16
    # the host can still start processes
    assert subprocess.run(["true"], check=False).returncode == 0


@needs_v1
def test_cpu_quota_caps_a_busy_loop(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    b.linux["resources"] = {"cpu": {"quota": 20000, "period": 100000}}
    b.shell("while :; do :; done")
    detached(rt, b)
    usage = cgroup_file("cpuacct", b.id, "cpuacct.usage")
    time.sleep(0.5)
    start_ns, start = int(usage.read_text()), time.monotonic()
    time.sleep(2)
    used = (int(usage.read_text()) - start_ns) / 1e9 / (time.monotonic() - start)
    assert 0.1 < used < 0.3, f"busy loop used {used:.2f} CPUs with a 0.2 CPU quota"


@needs_v1
def test_blkio_throttle_holds_direct_writes(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    dev = os.stat(b.rootfs).st_dev
    major, minor = os.major(dev), os.minor(dev)
    if not Path(f"/sys/dev/block/{major}:{minor}").exists():
        pytest.skip(f"the rootfs is not on a block device ({major}:{minor})")
    rate = 1 * MiB
    b.linux["resources"] = {
        "blockIO": {"throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": rate}]}
    }
    # 3 MiB of O_DIRECT writes (bypassing the page cache) at 1 MiB/s: about 2 s or more.
    b.shell("start=$(date +%s); dd if=/dev/zero of=/data bs=64k count=48 oflag=direct 2>/dev/null;"
            " end=$(date +%s); echo $((end-start))")  # fmt: skip
    started = time.monotonic()
    res = rt.run(b, b.id)
    elapsed = time.monotonic() - started
    res.check()
    assert elapsed >= 1.8, f"3 MiB at 1 MiB/s took only {elapsed:.2f}s"
    written = b.host_path("/data").stat().st_size
    assert written == 48 * 64 * 1024


def test_devices_cgroup_denies_a_disk_but_allows_null(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    # A /dev/sda-like node exists in the container, but the device rules do not allow it.
    b.linux["devices"] = [{"type": "b", "path": "/dev/fakedisk", "major": 8, "minor": 0}]
    b.linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    b.shell("head -c 1 /dev/fakedisk >/dev/null 2>/tmp/err; echo disk=$?; "
            "echo x > /dev/null && echo null=ok")  # fmt: skip
    res = rt.run(b, b.id)
    res.check()
    assert "disk=1" in res.stdout and "null=ok" in res.stdout
    assert "not permitted" in b.host_path("/tmp/err").read_text().lower()


@needs_v1
def test_pause_stops_the_counter_and_resume_restarts_it(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    b.shell("i=0; while :; do i=$((i+1)); echo $i > /tmp/count; done")
    detached(rt, b)
    counter = b.host_path("/tmp/count")
    assert wait_for(lambda: counter.exists() and counter.read_text().strip() != "", 10)
    rt.call("pause", b.id).check()
    assert rt.status(b.id) == "paused"
    time.sleep(0.2)
    frozen_at = counter.read_text()
    time.sleep(0.5)
    assert counter.read_text() == frozen_at
    rt.call("resume", b.id).check()
    assert rt.status(b.id) == "running"
    assert wait_for(lambda: counter.read_text() not in (frozen_at, ""), 5)
    # a paused container can be force-deleted (thawed, then killed)
    rt.call("pause", b.id).check()
    rt.delete(b.id, force=True).check()
    assert rt.status(b.id) is None


@needs_v1
def test_update_changes_limits_of_a_running_container(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle], tmp_path: Path
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    b.linux["resources"] = {"memory": {"limit": 64 * MiB}, "pids": {"limit": 50}}
    b.probe("sleep", "60")
    detached(rt, b)
    rt.call("update", "--memory", "96m", "--pids-limit", "40", b.id).check()
    assert int(cgroup_file("memory", b.id, "memory.limit_in_bytes").read_text()) == 96 * MiB
    assert cgroup_file("pids", b.id, "pids.max").read_text().strip() == "40"
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"cpu": {"shares": 512}}))
    rt.call("update", "-r", str(resources), b.id).check()
    assert cgroup_file("cpu", b.id, "cpu.shares").read_text().strip() == "512"
    bad = rt.call("update", "--memory", "lots", b.id)
    assert bad.returncode == 1 and "--memory" in bad.stderr


@needs_v1
def test_stats_event_has_runc_shape(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    b.probe("sleep", "60")
    detached(rt, b)
    event = rt.call("events", "--stats", b.id).json()
    assert event["type"] == "stats" and event["id"] == b.id
    data = event["data"]
    assert data["pids"]["current"] >= 1
    assert data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0


def test_limits_the_host_cannot_enforce_are_refused(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    if Path("/sys/fs/cgroup/hugetlb").exists():
        pytest.skip("this host has a hugetlb controller")
    b.linux["resources"] = {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]}
    container_id = rt.new_id("huge")
    res = rt.create(b, container_id)
    assert res.returncode == 1 and "hugepageLimits" in res.stderr, res.describe()
    assert not (rt.root / container_id).exists()


@needs_v1
def test_container_sees_its_own_cgroup_read_only(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    """With a cgroup namespace, /proc/self/cgroup shows "/" and the mounted hierarchies
    are the container's own cgroup (its limits at their root), read-only."""
    rt = make_runtime("cove")
    b = bundle()
    b.add_namespace("cgroup")
    b.linux["resources"] = {"pids": {"limit": 42}}
    limit = "/sys/fs/cgroup/pids/pids.max"
    b.shell(f"grep ':pids:' /proc/self/cgroup; cat {limit}; "
            f"echo 1 > {limit} 2>/dev/null && echo writable || echo ro")  # fmt: skip
    res = rt.run(b, b.id)
    res.check()
    lines = res.stdout.split()
    assert lines[0].endswith(":pids:/")
    assert lines[1] == "42"
    assert lines[2] == "ro"


@needs_v1
def test_without_a_cgroup_namespace_the_container_still_sees_its_own_cgroup(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    """Docker's default on v1 hosts (no cgroup namespace): each hierarchy under
    /sys/fs/cgroup shows the container's own cgroup folder, as runc does."""
    rt = make_runtime("cove")
    b = bundle()
    b.remove_namespace("cgroup")
    b.linux["resources"] = {"pids": {"limit": 33}}
    b.shell("cat /sys/fs/cgroup/pids/pids.max; ls /sys/fs/cgroup/memory | grep -c limit_in")
    res = rt.run(b, b.id)
    res.check()
    limit, memory_files = res.stdout.split()
    assert limit == "33"
    assert int(memory_files) >= 1
