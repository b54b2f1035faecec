"""cove.runtime.cgroups.v2.hugetlb on a fake cgroup v2 directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.oci.resources import HugepageLimit, LinuxResources
from cove.runtime.cgroups.v2 import hugetlb

CONTROLLER = hugetlb.CONTROLLER


def apply(cgroup: Path, *limits: HugepageLimit) -> None:
    CONTROLLER.apply(str(cgroup), LinuxResources(hugepage_limits=limits))


def test_limits_and_reservations(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    apply(cgroup, HugepageLimit("2MB", 4 << 21), HugepageLimit("1GB", 1 << 30))
    assert writes == [
        ("hugetlb.2MB.max", str(4 << 21)),
        ("hugetlb.2MB.rsvd.max", str(4 << 21)),
        ("hugetlb.1GB.max", str(1 << 30)),
        ("hugetlb.1GB.rsvd.max", str(1 << 30)),
    ]


def test_without_reservation_files(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    (cgroup / "hugetlb.2MB.rsvd.max").unlink()
    apply(cgroup, HugepageLimit("2MB", 0))
    assert writes == [("hugetlb.2MB.max", "0")]


@pytest.mark.parametrize("size", ["64KB", "../2MB", "2MB/x", ""])
def test_unknown_or_odd_size(cgroup: Path, size: str) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.hugepageLimits: "):
        apply(cgroup, HugepageLimit(size, 1))


def test_unset_is_left_alone(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    CONTROLLER.apply(str(cgroup), LinuxResources())
    assert writes == []


def test_stats(cgroup: Path, tmp_path: Path) -> None:
    (cgroup / "hugetlb.2MB.current").write_text("4194304\n")
    (cgroup / "hugetlb.2MB.events").write_text("max 2\n")
    data: dict[str, object] = {}
    CONTROLLER.stats(str(cgroup), data)
    assert data == {
        "hugetlb": {
            "1GB": {"usage": 0, "failcnt": 0},
            "2MB": {"usage": 4194304, "failcnt": 2},
        }
    }
    empty: dict[str, object] = {}
    CONTROLLER.stats(str(tmp_path), empty)
    CONTROLLER.stats(str(tmp_path / "missing"), empty)
    assert empty == {}
