"""hugetlb (v1): limits on huge pages, per page size.

Spec field                        kernel file (cgroup-v1/hugetlb.rst)
hugepageLimits[].pageSize/limit   hugetlb.<size>.limit_in_bytes, size as "2MB", "1GB"
                                  and hugetlb.<size>.rsvd.limit_in_bytes where it exists
                                  (Linux 5.7 and later), so reservations obey it too

A size the kernel does not offer is an error naming it and the sizes it has. Stats are
runc's: data["hugetlb"][size] = {"usage", "max", "failcnt"} for every size.
"""

from __future__ import annotations

import os

from cove.errors import CgroupError
from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

FIELD = "linux.resources.hugepageLimits"


class HugetlbController:
    name = "hugetlb"

    def apply(self, path: str, resources: LinuxResources) -> None:
        for index, item in enumerate(resources.hugepage_limits):
            name = f"hugetlb.{item.page_size}.limit_in_bytes"
            field = f"{FIELD}[{index}]"
            if not _files.exists(path, name):
                sizes = ", ".join(page_sizes(path)) or "none"
                raise CgroupError(
                    f"{field}.pageSize: unknown hugepage size {item.page_size!r} "
                    f"(this kernel has: {sizes})"
                )
            _files.write(path, name, item.limit, f"{field}.limit")
            rsvd = f"hugetlb.{item.page_size}.rsvd.limit_in_bytes"
            if _files.exists(path, rsvd):
                _files.write(path, rsvd, item.limit, f"{field}.limit")

    def stats(self, path: str, data: dict[str, Any]) -> None:
        hugetlb = data.setdefault("hugetlb", {})
        for size in page_sizes(path):
            prefix = f"hugetlb.{size}"
            hugetlb[size] = {
                "usage": _files.read_int(path, f"{prefix}.usage_in_bytes"),
                "max": _files.read_int(path, f"{prefix}.max_usage_in_bytes"),
                "failcnt": _files.read_int(path, f"{prefix}.failcnt"),
            }


CONTROLLER = HugetlbController()


def page_sizes(path: str) -> list[str]:
    """The page sizes the cgroup offers ("2MB", "1GB"), smallest first."""
    try:
        names = os.listdir(path)
    except OSError:
        return []
    sizes = []
    for name in names:
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "hugetlb" and parts[2] == "limit_in_bytes":
            sizes.append(parts[1])
    return sorted(sizes, key=_size_bytes)


def _size_bytes(size: str) -> int:
    units = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    number = size[:-2]
    return int(number) * units.get(size[-2:], 1) if number.isdigit() else 0
