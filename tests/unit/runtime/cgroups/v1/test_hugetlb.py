"""cgroups.v1.hugetlb on a fake hugetlb cgroup."""

from __future__ import annotations

from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import HugepageLimit, LinuxResources
from cove.runtime.cgroups.v1 import hugetlb
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel

MiB = 1 << 20


def test_limits_and_reservations(kernel: FakeKernel) -> None:
    path = kernel.cgroup("hugetlb")
    assert hugetlb.CONTROLLER.name == "hugetlb"
    limits = (HugepageLimit("2MB", 64 * MiB), HugepageLimit("1GB", 0))
    hugetlb.CONTROLLER.apply(path, LinuxResources(hugepage_limits=limits))
    assert kernel.writes == [
        ("hugetlb.2MB.limit_in_bytes", str(64 * MiB)),
        ("hugetlb.2MB.rsvd.limit_in_bytes", str(64 * MiB)),
        ("hugetlb.1GB.limit_in_bytes", "0"),
        ("hugetlb.1GB.rsvd.limit_in_bytes", "0"),
    ]


def test_kernel_without_rsvd_files(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "hugetlb", drop=("hugetlb.2MB.rsvd.limit_in_bytes", "hugetlb.1GB.rsvd.limit_in_bytes")
    )
    hugetlb.CONTROLLER.apply(path, LinuxResources(hugepage_limits=(HugepageLimit("2MB", MiB),)))
    assert kernel.writes == [("hugetlb.2MB.limit_in_bytes", str(MiB))]


def test_unknown_size_is_named(kernel: FakeKernel) -> None:
    path = kernel.cgroup("hugetlb")
    limits = (HugepageLimit("2MB", MiB), HugepageLimit("3MB", MiB))
    with pytest.raises(CgroupError) as caught:
        hugetlb.CONTROLLER.apply(path, LinuxResources(hugepage_limits=limits))
    assert str(caught.value) == (
        "linux.resources.hugepageLimits[1].pageSize: unknown hugepage size '3MB' "
        "(this kernel has: 2MB, 1GB)"
    )


def test_page_sizes_smallest_first(kernel: FakeKernel) -> None:
    path = kernel.cgroup("hugetlb", hugetlb__64KB__limit_in_bytes="0")
    assert hugetlb.page_sizes(path) == ["64KB", "2MB", "1GB"]


def test_stats_per_size(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "hugetlb",
        hugetlb__2MB__usage_in_bytes=str(4 * MiB),
        hugetlb__2MB__max_usage_in_bytes=str(8 * MiB),
        hugetlb__2MB__failcnt="2",
    )
    data: dict[str, Any] = {}
    hugetlb.CONTROLLER.stats(path, data)
    assert data["hugetlb"] == {
        "2MB": {"usage": 4 * MiB, "max": 8 * MiB, "failcnt": 2},
        "1GB": {"usage": 0, "max": 0, "failcnt": 0},
    }
