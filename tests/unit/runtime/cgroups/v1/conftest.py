"""A fake cgroup v1 directory: plain files holding what the kernel shows in a new cgroup.

`kernel` (a FakeKernel) makes such directories, records every write the controllers make
(the files keep only the last value, as a cgroup file shows one value) and can make a
file refuse values the way the kernel does (an errno for the values a predicate picks).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cove.runtime.cgroups.v1 import _files

UNLIMITED = "9223372036854771712"

# What a fresh cgroup's files read on Linux 6.x (the values seen on this project's hosts).
INITIAL: dict[str, dict[str, str]] = {
    "memory": {
        "memory.limit_in_bytes": UNLIMITED,
        "memory.soft_limit_in_bytes": UNLIMITED,
        "memory.memsw.limit_in_bytes": UNLIMITED,
        "memory.kmem.limit_in_bytes": UNLIMITED,
        "memory.kmem.tcp.limit_in_bytes": UNLIMITED,
        "memory.usage_in_bytes": "0",
        "memory.max_usage_in_bytes": "0",
        "memory.failcnt": "0",
        "memory.memsw.usage_in_bytes": "0",
        "memory.memsw.max_usage_in_bytes": "0",
        "memory.memsw.failcnt": "0",
        "memory.kmem.usage_in_bytes": "0",
        "memory.kmem.max_usage_in_bytes": "0",
        "memory.kmem.failcnt": "0",
        "memory.kmem.tcp.usage_in_bytes": "0",
        "memory.kmem.tcp.max_usage_in_bytes": "0",
        "memory.kmem.tcp.failcnt": "0",
        "memory.swappiness": "60",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0",
        "memory.use_hierarchy": "1",
        "memory.stat": "cache 0\nrss 0\nswap 0\npgfault 0\n"
        f"hierarchical_memory_limit {UNLIMITED}\ntotal_cache 0",
    },
    "cpu": {
        "cpu.shares": "1024",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.cfs_burst_us": "0",
        "cpu.rt_period_us": "1000000",
        "cpu.rt_runtime_us": "0",
        "cpu.idle": "0",
        "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0",
    },
    "cpuacct": {
        "cpuacct.usage": "0",
        "cpuacct.usage_percpu": "0 0 ",
        "cpuacct.usage_all": "cpu user system\n0 0 0\n1 0 0",
        "cpuacct.stat": "user 0\nsystem 0",
    },
    "cpuset": {
        "cpuset.cpus": "",
        "cpuset.mems": "",
        "cpuset.effective_cpus": "",
        "cpuset.effective_mems": "",
        "cpuset.cpu_exclusive": "0",
        "cpuset.mem_exclusive": "0",
        "cpuset.mem_hardwall": "0",
        "cpuset.memory_migrate": "0",
        "cpuset.memory_pressure": "0",
        "cpuset.memory_spread_page": "0",
        "cpuset.memory_spread_slab": "0",
        "cpuset.sched_load_balance": "1",
        "cpuset.sched_relax_domain_level": "-1",
    },
    "pids": {"pids.max": "max", "pids.current": "0", "pids.events": "max 0"},
    # A 6.x kernel without CFQ: the weights are BFQ's, no blkio.weight nor leaf_weight.
    "blkio": {
        "blkio.bfq.weight": "100",
        "blkio.bfq.weight_device": "default 100",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "",
        "blkio.throttle.io_service_bytes": "Total 0",
        "blkio.throttle.io_service_bytes_recursive": "Total 0",
        "blkio.throttle.io_serviced": "Total 0",
        "blkio.throttle.io_serviced_recursive": "Total 0",
    },
    "hugetlb": {
        f"hugetlb.{size}.{name}": value
        for size in ("2MB", "1GB")
        for name, value in (
            ("limit_in_bytes", UNLIMITED),
            ("rsvd.limit_in_bytes", UNLIMITED),
            ("usage_in_bytes", "0"),
            ("rsvd.usage_in_bytes", "0"),
            ("max_usage_in_bytes", "0"),
            ("rsvd.max_usage_in_bytes", "0"),
            ("failcnt", "0"),
            ("rsvd.failcnt", "0"),
            ("numa_stat", "total=0 N0=0"),
        )
    },
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": "lo 0\neth0 0", "net_prio.prioidx": "3"},
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm"},
    "freezer": {
        "freezer.state": "THAWED",
        "freezer.self_freezing": "0",
        "freezer.parent_freezing": "0",
    },
}


class FakeKernel:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.writes: list[tuple[str, str]] = []  # (file name, value) in order
        self._refusals: list[tuple[str, Callable[[str], bool], int]] = []

    def cgroup(self, controller: str, drop: tuple[str, ...] = (), **extra: str) -> str:
        """A new cgroup directory of `controller`, without the files named in `drop`.

        `extra` adds or overrides files: keyword names use "__" for "." (memory__stat)."""
        path = self.root / controller / f"cg{len(list(self.root.glob('*/*')))}"
        path.mkdir(parents=True)
        files = {**INITIAL[controller], **{k.replace("__", "."): v for k, v in extra.items()}}
        for name, value in files.items():
            if name not in drop:
                (path / name).write_text(value + "\n" if value else "")
        return str(path)

    def refuse(self, name: str, code: int, when: Callable[[str], bool] = lambda _: True) -> None:
        """Make writes to `name` of the values `when` picks fail with errno `code`."""
        self._refusals.append((name, when, code))

    def write_raw(self, path: str, name: str, value: str) -> None:
        for refused, when, code in self._refusals:
            if refused == name and when(value):
                raise OSError(code, os.strerror(code), os.path.join(path, name))
        self.writes.append((name, value))
        _real_write_raw(path, name, value)


_real_write_raw = _files.write_raw


def read(path: str, name: str) -> str:
    return Path(path, name).read_text().strip()


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeKernel:
    fake = FakeKernel(tmp_path / "cgroup")
    monkeypatch.setattr(_files, "write_raw", fake.write_raw)
    return fake
