"""cgroups.v1.cpu on a fake cpu cgroup."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import CPU, LinuxResources
from cove.runtime.cgroups.v1 import _files, cpu
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel, read


def apply(path: str, **fields: Any) -> None:
    cpu.CONTROLLER.apply(path, LinuxResources(cpu=CPU(**fields)))


def test_nothing_without_cpu(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpu")
    assert cpu.CONTROLLER.name == "cpu"
    cpu.CONTROLLER.apply(path, LinuxResources())
    apply(path, cpus="0-1", mems="0")  # cpuset's fields: not this controller's
    assert kernel.writes == []


def test_shares(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpu")
    apply(path, shares=512)
    assert kernel.writes == [("cpu.shares", "512")]


def test_shares_clamped_by_the_kernel_is_an_error(
    kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = kernel.cgroup("cpu")
    real = kernel.write_raw

    def clamp(path_: str, name: str, value: str) -> None:
        real(path_, name, str(min(int(value), 262144)) if name == "cpu.shares" else value)

    monkeypatch.setattr(_files, "write_raw", clamp)
    with pytest.raises(CgroupError) as caught:
        apply(path, shares=500000)
    assert str(caught.value) == (
        f"linux.resources.cpu.shares: cannot set 500000 in {path}: "
        "the maximum this kernel allows is 262144"
    )


def test_period_before_quota_then_burst(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpu")
    apply(path, quota=50000, period=200000, burst=10000)
    assert kernel.writes == [
        ("cpu.cfs_period_us", "200000"),
        ("cpu.cfs_quota_us", "50000"),
        ("cpu.cfs_burst_us", "10000"),
    ]


def test_unlimited_quota(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpu", cpu__cfs_quota_us="50000")
    apply(path, quota=-1)
    assert read(path, "cpu.cfs_quota_us") == "-1"


def test_quota_refused_below_burst_goes_after_it(kernel: FakeKernel) -> None:
    # The kernel refuses a quota below the current burst: lowering both needs burst first.
    path = kernel.cgroup("cpu", cpu__cfs_quota_us="80000", cpu__cfs_burst_us="60000")
    kernel.refuse(
        "cpu.cfs_quota_us",
        errno.EINVAL,
        lambda v: int(v) < int(read(path, "cpu.cfs_burst_us")),
    )
    apply(path, quota=20000, burst=10000)
    assert kernel.writes == [("cpu.cfs_burst_us", "10000"), ("cpu.cfs_quota_us", "20000")]


def test_refusal_that_does_not_settle_is_raised(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpu")
    kernel.refuse("cpu.cfs_quota_us", errno.EINVAL)
    with pytest.raises(CgroupError) as caught:
        apply(path, quota=20000, period=100000)
    assert str(caught.value) == (
        f"linux.resources.cpu.quota: cannot set 20000 in {path}: Invalid argument"
    )


def test_burst_and_idle_missing_are_fine_when_zero(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpu", drop=("cpu.cfs_burst_us", "cpu.idle"))
    apply(path, burst=0, idle=0)
    assert kernel.writes == []


@pytest.mark.parametrize(
    ("fields", "missing", "key"),
    [
        ({"burst": 1000}, "cpu.cfs_burst_us", "burst"),
        ({"idle": 1}, "cpu.idle", "idle"),
        ({"realtime_runtime": 1000}, "cpu.rt_runtime_us", "realtimeRuntime"),
        ({"realtime_period": 100000}, "cpu.rt_period_us", "realtimePeriod"),
    ],
)
def test_missing_file_is_an_error_when_set(
    kernel: FakeKernel, fields: dict[str, int], missing: str, key: str
) -> None:
    path = kernel.cgroup("cpu", drop=(missing,))
    with pytest.raises(CgroupError) as caught:
        apply(path, **fields)
    assert str(caught.value) == (
        f"linux.resources.cpu.{key}: not supported by this kernel (no {missing} in {path})"
    )


def test_realtime_and_idle(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpu")
    apply(path, realtime_runtime=10000, realtime_period=500000, idle=1)
    assert kernel.writes == [
        ("cpu.rt_period_us", "500000"),
        ("cpu.rt_runtime_us", "10000"),
        ("cpu.idle", "1"),
    ]


def test_zero_means_not_set(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpu")
    apply(path, shares=0, realtime_runtime=0, realtime_period=0)
    assert kernel.writes == []


def test_stats_throttling(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "cpu", cpu__stat="nr_periods 10\nnr_throttled 4\nthrottled_time 123456\nnr_bursts 0"
    )
    data: dict[str, Any] = {"cpu": {"usage": {"total": 1}}}
    cpu.CONTROLLER.stats(path, data)
    assert data["cpu"] == {
        "usage": {"total": 1},  # cpuacct's part is kept
        "throttling": {"periods": 10, "throttledPeriods": 4, "throttledTime": 123456},
    }
