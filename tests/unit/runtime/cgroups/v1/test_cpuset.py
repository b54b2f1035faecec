"""cgroups.v1.cpuset on a fake cpuset cgroup."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import CPU, LinuxResources
from cove.runtime.cgroups.v1 import cpuset
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel, read


def test_cpus_and_mems(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpuset", cpuset__cpus="0-3", cpuset__mems="0")
    assert cpuset.CONTROLLER.name == "cpuset"
    cpuset.CONTROLLER.apply(path, LinuxResources(cpu=CPU(cpus="1,3", mems="0")))
    assert kernel.writes == [("cpuset.cpus", "1,3"), ("cpuset.mems", "0")]
    assert read(path, "cpuset.cpus") == "1,3"


def test_other_cpu_fields_leave_cpuset_alone(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpuset", cpuset__cpus="0-3", cpuset__mems="0")
    cpuset.CONTROLLER.apply(path, LinuxResources(cpu=CPU(shares=100)))
    cpuset.CONTROLLER.apply(path, LinuxResources())
    assert kernel.writes == []


def test_cpus_outside_the_parent_names_the_field(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpuset")
    kernel.refuse("cpuset.cpus", errno.EINVAL)
    with pytest.raises(CgroupError) as caught:
        cpuset.CONTROLLER.apply(path, LinuxResources(cpu=CPU(cpus="64")))
    assert str(caught.value) == (
        f"linux.resources.cpu.cpus: cannot set 64 in {path}: Invalid argument"
    )


def test_stats(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpuset", cpuset__cpus="0-2,5", cpuset__mems="0")
    data: dict[str, Any] = {}
    cpuset.CONTROLLER.stats(path, data)
    assert data["cpuset"] == {
        "cpus": [0, 1, 2, 5],
        "mems": [0],
        "cpu_exclusive": 0,
        "mem_hardwall": 0,
        "mem_exclusive": 0,
        "memory_migrate": 0,
        "memory_spread_page": 0,
        "memory_spread_slab": 0,
        "memory_pressure": 0,
        "sched_load_balance": 1,
        "sched_relax_domain_level": -1,
    }


def test_stats_of_an_unset_cpuset(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpuset")
    data: dict[str, Any] = {}
    cpuset.CONTROLLER.stats(path, data)
    assert (data["cpuset"]["cpus"], data["cpuset"]["mems"]) == ([], [])
