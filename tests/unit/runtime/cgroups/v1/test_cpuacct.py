"""cgroups.v1.cpuacct on a fake cpuacct cgroup."""

from __future__ import annotations

import os
from typing import Any

from cove.oci.resources import CPU, LinuxResources
from cove.runtime.cgroups.v1 import cpuacct
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel


def test_apply_writes_nothing(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpuacct")
    assert cpuacct.CONTROLLER.name == "cpuacct"
    cpuacct.CONTROLLER.apply(path, LinuxResources(cpu=CPU(shares=100, quota=20000)))
    assert kernel.writes == []


def test_stats_usage_in_nanoseconds(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "cpuacct",
        cpuacct__usage="3000000000",
        cpuacct__usage_percpu="1000000000 2000000000 ",
        cpuacct__usage_all="cpu user system\n0 700000000 300000000\n1 1500000000 500000000",
        cpuacct__stat="user 220\nsystem 80",
    )
    data: dict[str, Any] = {"cpu": {"throttling": {"periods": 1}}}
    cpuacct.CONTROLLER.stats(path, data)
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    assert data["cpu"] == {
        "throttling": {"periods": 1},
        "usage": {
            "total": 3000000000,
            "percpu": [1000000000, 2000000000],
            "percpu_kernel": [300000000, 500000000],
            "percpu_user": [700000000, 1500000000],
            "kernel": 80 * tick,
            "user": 220 * tick,
        },
    }


def test_stats_on_a_kernel_without_usage_all(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpuacct", drop=("cpuacct.usage_all",))
    data: dict[str, Any] = {}
    cpuacct.CONTROLLER.stats(path, data)
    assert data["cpu"]["usage"] == {
        "total": 0,
        "percpu": [0, 0],
        "percpu_kernel": [],
        "percpu_user": [],
        "kernel": 0,
        "user": 0,
    }
