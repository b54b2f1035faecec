"""cove.runtime.cgroups.v2.cpu on a fake cgroup v2 directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.oci.resources import CPU, LinuxResources
from cove.runtime.cgroups.v2 import cpu

CONTROLLER = cpu.CONTROLLER


def apply(cgroup: Path, **fields: object) -> None:
    CONTROLLER.apply(str(cgroup), LinuxResources(cpu=CPU(**fields)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(2, 1), (1024, 39), (262144, 10000), (1, 1), (10**6, 10000), (512, 20), (4096, 157)],
)
def test_shares_to_weight(shares: int, weight: int) -> None:
    assert cpu.shares_to_weight(shares) == weight


def test_all_fields(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    apply(cgroup, shares=1024, quota=50000, period=200000, burst=1000, idle=1)
    assert writes == [
        ("cpu.weight", "39"),
        ("cpu.max", "50000 200000"),
        ("cpu.max.burst", "1000"),
        ("cpu.idle", "1"),
    ]


def test_quota_alone_keeps_the_period(cgroup: Path) -> None:
    apply(cgroup, quota=20000)
    # The kernel keeps the current period (100000 on a new cgroup) for "QUOTA" alone.
    assert (cgroup / "cpu.max").read_text() == "20000"


def test_unlimited_quota(cgroup: Path) -> None:
    apply(cgroup, quota=-1, period=50000)
    assert (cgroup / "cpu.max").read_text() == "max 50000"


def test_period_alone_keeps_the_quota(cgroup: Path) -> None:
    (cgroup / "cpu.max").write_text("30000 100000\n")
    apply(cgroup, period=60000)
    assert (cgroup / "cpu.max").read_text() == "30000 60000"


def test_unset_fields_are_left_alone(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    apply(cgroup)
    apply(cgroup, shares=0, cpus="0-1")  # shares 0 means unset; cpus is cpuset's
    CONTROLLER.apply(str(cgroup), LinuxResources())
    assert writes == []


@pytest.mark.parametrize("key", ["realtime_runtime", "realtime_period"])
def test_realtime_is_refused(cgroup: Path, key: str) -> None:
    spec_key = "realtimeRuntime" if key == "realtime_runtime" else "realtimePeriod"
    with pytest.raises(CgroupError, match=rf"^linux\.resources\.cpu\.{spec_key}: .*real-time"):
        apply(cgroup, **{key: 950000})


def test_zero_realtime_is_accepted(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    apply(cgroup, realtime_runtime=0, realtime_period=0)
    assert writes == []


def test_missing_file_names_the_field(cgroup: Path) -> None:
    (cgroup / "cpu.max.burst").unlink()
    with pytest.raises(CgroupError, match=r"^linux\.resources\.cpu\.burst: cannot set 5: "):
        apply(cgroup, burst=5)


def test_stats(cgroup: Path) -> None:
    (cgroup / "cpu.stat").write_text(
        "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\nnr_periods 10\n"
        "nr_throttled 4\nthrottled_usec 70\nnr_bursts 0\nburst_usec 0\n"
    )
    data: dict[str, object] = {}
    CONTROLLER.stats(str(cgroup), data)
    assert data == {
        "cpu": {
            "usage": {"total": 3_000_000, "kernel": 1_000_000, "user": 2_000_000},
            "throttling": {"periods": 10, "throttledPeriods": 4, "throttledTime": 70_000},
        }
    }


def test_stats_without_the_controller(cgroup: Path, tmp_path: Path) -> None:
    # cpu.stat is a core file: without the controller it has the usage lines only.
    (cgroup / "cpu.stat").write_text("usage_usec 5\nuser_usec 3\nsystem_usec 2\n")
    data: dict[str, dict[str, dict[str, int]]] = {}
    CONTROLLER.stats(str(cgroup), data)
    assert data["cpu"]["throttling"] == {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}
    empty: dict[str, object] = {}
    CONTROLLER.stats(str(tmp_path), empty)
    assert empty == {}
