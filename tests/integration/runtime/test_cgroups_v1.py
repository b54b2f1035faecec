"""The cgroup v1 controllers against the real kernel, in scratch cgroups.

Each test makes its own cgroup, cove-test-<uuid>, directly under a v1 hierarchy, applies
resources for real, reads the kernel's files back, takes the stats and removes the cgroup
in the end. A few tests move a child of the test into their scratch cgroup (in the pids,
cpuacct or freezer hierarchy only: never out of the memory cgroup the session runs in);
no container is started. Controllers this host does not mount
(hugetlb, net_cls and net_prio are often absent) are skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import (
    CPU,
    BlockIO,
    DeviceRate,
    DeviceRule,
    HugepageLimit,
    LinuxResources,
    Memory,
    NetworkPriority,
)
from cove.runtime.cgroups.layout import host_layout
from cove.runtime.cgroups.v1 import CONTROLLERS, devices, freezer, hugetlb, memory
from tests.lib.cgroups import remove_cgroup_dir

MiB = 1 << 20

Scratch = Callable[[str], str]


def _mountpoint(controller: str) -> str | None:
    for hierarchy in host_layout().hierarchies:
        if hierarchy.version == 1 and controller in hierarchy.options:
            return hierarchy.mountpoint
    return None


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    """Factory: scratch(controller) -> path of a new cgroup in that v1 hierarchy."""
    made: list[str] = []

    def make(controller: str) -> str:
        if os.geteuid() != 0:
            pytest.skip("needs root (real cgroups)")
        mount = _mountpoint(controller)
        if mount is None:
            pytest.skip(f"no cgroup v1 {controller} hierarchy mounted on this host")
        path = os.path.join(mount, f"cove-test-{uuid.uuid4().hex[:12]}")
        os.mkdir(path)
        made.append(path)
        if controller == "cpuset":  # a new cpuset is empty; the manager copies the parent's
            for name in ("cpuset.cpus", "cpuset.mems"):
                Path(path, name).write_text(Path(mount, name).read_text().strip())
        return path

    yield make
    for path in reversed(made):
        remove_cgroup_dir(path)


@pytest.fixture
def child() -> Iterator[Callable[[str], subprocess.Popen[bytes]]]:
    """Factory: a `sleep` child of this test moved into the given cgroup; killed at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def spawn(path: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "60"])
        started.append(proc)
        Path(path, "cgroup.procs").write_text(str(proc.pid))
        return proc

    yield spawn
    for proc in started:
        proc.kill()
        proc.wait()


def read(path: str, name: str) -> str:
    return Path(path, name).read_text().strip()


def stats(controller: str, path: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    CONTROLLERS[controller].stats(path, data)
    json.dumps(data)  # runc's events --stats is JSON: every figure must serialize
    return data


# --- memory -------------------------------------------------------------------------------


def test_memory_limits_read_back(scratch: Scratch) -> None:
    path = scratch("memory")
    has_memsw = os.path.exists(os.path.join(path, memory.MEMSW_LIMIT))
    apply = memory.CONTROLLER.apply
    apply(
        path,
        LinuxResources(
            memory=Memory(
                limit=64 * MiB,
                swap=128 * MiB,
                reservation=32 * MiB,
                swappiness=10,
                disable_oom_killer=True,
            )
        ),
    )
    assert read(path, memory.LIMIT) == str(64 * MiB)
    assert read(path, memory.SOFT_LIMIT) == str(32 * MiB)
    assert read(path, "memory.swappiness") == "10"
    assert "oom_kill_disable 1" in read(path, "memory.oom_control")
    if has_memsw:
        assert read(path, memory.MEMSW_LIMIT) == str(128 * MiB)
    # Raising both needs memory+swap first, lowering both needs memory first.
    apply(path, LinuxResources(memory=Memory(limit=256 * MiB, swap=512 * MiB)))
    assert read(path, memory.LIMIT) == str(256 * MiB)
    apply(path, LinuxResources(memory=Memory(limit=16 * MiB, swap=32 * MiB)))
    assert read(path, memory.LIMIT) == str(16 * MiB)
    if has_memsw:
        assert read(path, memory.MEMSW_LIMIT) == str(32 * MiB)
    apply(path, LinuxResources(memory=Memory(limit=-1)))
    unlimited = read(path, memory.LIMIT)
    assert int(unlimited) > 1 << 60
    if has_memsw:
        assert read(path, memory.MEMSW_LIMIT) == unlimited

    data = stats("memory", path)["memory"]
    assert set(data) == {"cache", "usage", "swap", "kernel", "kernelTCP", "raw"}
    assert data["usage"]["limit"] == int(unlimited)
    assert "total_cache" in data["raw"]
    assert memory.oom_count(path) == 0


def test_memory_kernel_limits(scratch: Scratch) -> None:
    path = scratch("memory")
    try:
        memory.CONTROLLER.apply(path, LinuxResources(memory=Memory(kernel=16 * MiB)))
    except CgroupError as exc:  # kernels that refuse kmem limits say so, naming the field
        assert str(exc).startswith("linux.resources.memory.kernel: ")
        assert "not supported" in str(exc)
    if os.path.exists(os.path.join(path, memory.KMEM_TCP_LIMIT)):
        memory.CONTROLLER.apply(path, LinuxResources(memory=Memory(kernel_tcp=8 * MiB)))
        assert read(path, memory.KMEM_TCP_LIMIT) == str(8 * MiB)


# --- cpu, cpuacct, cpuset -----------------------------------------------------------------


def test_cpu_bandwidth_and_shares(scratch: Scratch) -> None:
    path = scratch("cpu")
    has_burst = os.path.exists(os.path.join(path, "cpu.cfs_burst_us"))
    CONTROLLERS["cpu"].apply(
        path,
        LinuxResources(
            cpu=CPU(shares=512, period=50000, quota=25000, burst=5000 if has_burst else None)
        ),
    )
    assert read(path, "cpu.shares") == "512"
    assert read(path, "cpu.cfs_period_us") == "50000"
    assert read(path, "cpu.cfs_quota_us") == "25000"
    if has_burst:
        assert read(path, "cpu.cfs_burst_us") == "5000"
        # Lowering the quota below the current burst only works with burst first.
        CONTROLLERS["cpu"].apply(path, LinuxResources(cpu=CPU(quota=2000, burst=1000)))
        assert (read(path, "cpu.cfs_quota_us"), read(path, "cpu.cfs_burst_us")) == (
            "2000",
            "1000",
        )
    CONTROLLERS["cpu"].apply(path, LinuxResources(cpu=CPU(quota=-1)))
    assert read(path, "cpu.cfs_quota_us") == "-1"
    assert stats("cpu", path)["cpu"]["throttling"] == {
        "periods": 0,
        "throttledPeriods": 0,
        "throttledTime": 0,
    }


def test_cpu_shares_clamped_by_the_kernel(scratch: Scratch) -> None:
    path = scratch("cpu")
    with pytest.raises(CgroupError, match=r"^linux\.resources\.cpu\.shares: .*minimum .* is 2$"):
        CONTROLLERS["cpu"].apply(path, LinuxResources(cpu=CPU(shares=1)))


def test_cpu_realtime_and_idle(scratch: Scratch) -> None:
    path = scratch("cpu")
    if not os.path.exists(os.path.join(path, "cpu.rt_runtime_us")):
        with pytest.raises(CgroupError, match="realtimeRuntime: not supported"):
            CONTROLLERS["cpu"].apply(path, LinuxResources(cpu=CPU(realtime_runtime=1000)))
    else:
        CONTROLLERS["cpu"].apply(
            path, LinuxResources(cpu=CPU(realtime_period=500000, realtime_runtime=1000))
        )
        assert (read(path, "cpu.rt_period_us"), read(path, "cpu.rt_runtime_us")) == (
            "500000",
            "1000",
        )
    if os.path.exists(os.path.join(path, "cpu.idle")):
        CONTROLLERS["cpu"].apply(path, LinuxResources(cpu=CPU(idle=1)))
        assert read(path, "cpu.idle") == "1"


def test_cpuacct_counts_a_busy_child(scratch: Scratch) -> None:
    path = scratch("cpuacct")
    loop = "read _; i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"
    busy = subprocess.Popen(["sh", "-c", loop], stdin=subprocess.PIPE)
    try:
        Path(path, "cgroup.procs").write_text(str(busy.pid))
        assert busy.stdin is not None
        busy.stdin.write(b"go\n")
        busy.stdin.close()
        assert busy.wait(timeout=60) == 0
    finally:
        busy.kill()
        busy.wait()
    usage = stats("cpuacct", path)["cpu"]["usage"]
    assert usage["total"] > 0
    assert len(usage["percpu"]) == len(usage["percpu_user"]) >= 1
    assert sum(usage["percpu"]) == usage["total"]
    assert usage["user"] + usage["kernel"] > 0


def test_cpuset(scratch: Scratch) -> None:
    path = scratch("cpuset")
    first_cpu = read(path, "cpuset.cpus").split(",")[0].split("-")[0]
    mems = read(path, "cpuset.mems")
    CONTROLLERS["cpuset"].apply(path, LinuxResources(cpu=CPU(cpus=first_cpu, mems=mems)))
    assert read(path, "cpuset.cpus") == first_cpu
    data = stats("cpuset", path)["cpuset"]
    assert data["cpus"] == [int(first_cpu)]
    with pytest.raises(CgroupError, match=r"^linux\.resources\.cpu\.cpus: cannot set 4095 in "):
        CONTROLLERS["cpuset"].apply(path, LinuxResources(cpu=CPU(cpus="4095")))


# --- pids, blkio --------------------------------------------------------------------------


def test_pids(scratch: Scratch, child: Callable[[str], subprocess.Popen[bytes]]) -> None:
    path = scratch("pids")
    CONTROLLERS["pids"].apply(path, LinuxResources(pids_limit=10))
    assert read(path, "pids.max") == "10"
    child(path)
    assert stats("pids", path)["pids"] == {"current": 1, "limit": 10}
    CONTROLLERS["pids"].apply(path, LinuxResources(pids_limit=0))
    assert read(path, "pids.max") == "max"
    assert stats("pids", path)["pids"] == {"current": 1, "limit": 0}


def _block_device() -> tuple[str, int, int] | None:
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("loop", "ram", "zram")):
            continue
        major, minor = Path("/sys/block", name, "dev").read_text().strip().split(":")
        return name, int(major), int(minor)
    return None


def test_blkio(scratch: Scratch) -> None:
    path = scratch("blkio")
    weight_file = "blkio.weight" if os.path.exists(f"{path}/blkio.weight") else "blkio.bfq.weight"
    CONTROLLERS["blkio"].apply(path, LinuxResources(block_io=BlockIO(weight=200)))
    assert read(path, weight_file).split()[-1] == "200"
    device = _block_device()
    if device is None:
        pytest.skip("no disk to throttle on this host")
    name, major, minor = device
    rate = (DeviceRate(major, minor, MiB),)
    CONTROLLERS["blkio"].apply(
        path, LinuxResources(block_io=BlockIO(throttle_read_bps=rate, throttle_write_iops=rate))
    )
    assert read(path, "blkio.throttle.read_bps_device") == f"{major}:{minor} {MiB}"
    assert read(path, "blkio.throttle.write_iops_device") == f"{major}:{minor} {MiB}"
    CONTROLLERS["blkio"].apply(
        path, LinuxResources(block_io=BlockIO(throttle_read_bps=(DeviceRate(major, minor, 0),)))
    )
    assert read(path, "blkio.throttle.read_bps_device") == ""
    scheduler = Path("/sys/block", name, "queue", "scheduler").read_text()
    weights = LinuxResources(block_io=BlockIO(weight_device=(DeviceRate(major, minor, 300),)))
    if weight_file == "blkio.bfq.weight" and "[bfq]" not in scheduler:
        # BFQ's per-device weight only applies to a device BFQ schedules.
        with pytest.raises(CgroupError, match=r"^linux\.resources\.blockIO\.weightDevice\[0\]: "):
            CONTROLLERS["blkio"].apply(path, weights)
    assert set(stats("blkio", path)["blkio"]) == {"ioServiceBytesRecursive", "ioServicedRecursive"}


# --- devices, freezer ---------------------------------------------------------------------


def test_devices(scratch: Scratch) -> None:
    path = scratch("devices")
    rules = (
        DeviceRule(allow=False),
        DeviceRule(allow=True, type="c", major=10, minor=229, access="rw"),
    )
    CONTROLLERS["devices"].apply(path, LinuxResources(devices=rules))
    listed = set(read(path, "devices.list").splitlines())
    expected = {"c 10:229 rw"} | {
        devices.rule_lines(rule)[0] for rule in devices.DEFAULT_ALLOWED_DEVICES
    }
    assert listed == expected
    # A later deny takes the device back out of the allowed list.
    CONTROLLERS["devices"].apply(
        path,
        LinuxResources(devices=(DeviceRule(allow=False, type="c", major=10, minor=229),)),
    )
    assert "c 10:229 rw" not in read(path, "devices.list").splitlines()


def test_freezer(scratch: Scratch, child: Callable[[str], subprocess.Popen[bytes]]) -> None:
    path = scratch("freezer")
    assert not freezer.is_frozen(path)
    freezer.freeze(path)
    assert freezer.is_frozen(path)
    freezer.thaw(path)
    assert not freezer.is_frozen(path)
    proc = child(path)
    freezer.freeze(path)
    assert read(path, "freezer.state") == "FROZEN"
    freezer.thaw(path)
    assert read(path, "freezer.state") == "THAWED"
    proc.kill()
    proc.wait()


# --- hugetlb, net_cls, net_prio (often not mounted) ---------------------------------------


def test_hugetlb(scratch: Scratch) -> None:
    path = scratch("hugetlb")
    sizes = hugetlb.page_sizes(path)
    if not sizes:
        pytest.skip("no huge page sizes")
    limits = LinuxResources(hugepage_limits=(HugepageLimit(sizes[0], 4 * sizes_bytes(sizes[0])),))
    CONTROLLERS["hugetlb"].apply(path, limits)
    assert read(path, f"hugetlb.{sizes[0]}.limit_in_bytes") == str(4 * sizes_bytes(sizes[0]))
    with pytest.raises(CgroupError, match="unknown hugepage size '3MB'"):
        CONTROLLERS["hugetlb"].apply(
            path, LinuxResources(hugepage_limits=(HugepageLimit("3MB", MiB),))
        )
    assert set(stats("hugetlb", path)["hugetlb"]) == set(sizes)


def sizes_bytes(size: str) -> int:
    return int(size[:-2]) << {"KB": 10, "MB": 20, "GB": 30}[size[-2:]]


def test_net_cls(scratch: Scratch) -> None:
    path = scratch("net_cls")
    CONTROLLERS["net_cls"].apply(path, LinuxResources(network_class_id=0x100001))
    assert read(path, "net_cls.classid") == str(0x100001)


def test_net_prio(scratch: Scratch) -> None:
    path = scratch("net_prio")
    CONTROLLERS["net_prio"].apply(
        path, LinuxResources(network_priorities=(NetworkPriority("lo", 5),))
    )
    assert "lo 5" in read(path, "net_prio.ifpriomap").splitlines()
