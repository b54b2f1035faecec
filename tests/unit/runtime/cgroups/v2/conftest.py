"""A fake cgroup v2 directory: plain files holding what the kernel shows in a new cgroup.

Fixtures
    cgroup   Path of a fresh leaf cgroup with every controller's files (kernel defaults)
    writes   list of (file name, value), one per write(2) the code under test made
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.runtime.cgroups.v2 import _files

# What a new cgroup shows when its parent enabled every controller (Linux 6.x, 4 cpus).
INITIAL = {
    "cgroup.controllers": "cpuset cpu io memory hugetlb pids\n",
    "cgroup.subtree_control": "\n",
    "cgroup.procs": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cpu.weight": "100\n",
    "cpu.max": "max 100000\n",
    "cpu.max.burst": "0\n",
    "cpu.idle": "0\n",
    "cpu.stat": (
        "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\n"
        "throttled_usec 0\nnr_bursts 0\nburst_usec 0\n"
    ),
    "cpuset.cpus": "\n",
    "cpuset.mems": "\n",
    "cpuset.cpus.effective": "0-3\n",
    "cpuset.mems.effective": "0\n",
    "memory.current": "0\n",
    "memory.peak": "0\n",
    "memory.min": "0\n",
    "memory.low": "0\n",
    "memory.high": "max\n",
    "memory.max": "max\n",
    "memory.oom.group": "0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "memory.stat": "anon 0\nfile 0\nkernel 0\nsock 0\nshmem 0\n",
    "memory.swap.current": "0\n",
    "memory.swap.max": "max\n",
    "memory.swap.events": "high 0\nmax 0\nfail 0\n",
    "pids.current": "0\n",
    "pids.max": "max\n",
    "pids.peak": "0\n",
    "io.stat": "",
    "io.max": "",
    "io.weight": "default 100\n",
    "hugetlb.2MB.current": "0\n",
    "hugetlb.2MB.max": "max\n",
    "hugetlb.2MB.events": "max 0\n",
    "hugetlb.2MB.rsvd.current": "0\n",
    "hugetlb.2MB.rsvd.max": "max\n",
    "hugetlb.1GB.current": "0\n",
    "hugetlb.1GB.max": "max\n",
    "hugetlb.1GB.events": "max 0\n",
    "hugetlb.1GB.rsvd.current": "0\n",
    "hugetlb.1GB.rsvd.max": "max\n",
}


def make_cgroup(path: Path, files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in (INITIAL if files is None else files).items():
        (path / name).write_text(text)
    return path


@pytest.fixture
def cgroup(tmp_path: Path) -> Path:
    return make_cgroup(tmp_path / "cgroup" / "cove" / "ct1")


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    made: list[tuple[str, str]] = []
    real = _files.write_raw

    def record(file: str, value: str) -> None:
        real(file, value)  # fails as the kernel would for a missing file
        made.append((Path(file).name, value))

    monkeypatch.setattr(_files, "write_raw", record)
    return made
