"""The hugetlb controller on cgroup v2: hugetlb.<size>.max (and .rsvd.max)."""

from __future__ import annotations

import os

from cove.errors import CgroupError
from cove.runtime.cgroups.v2 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

_FIELD = "linux.resources.hugepageLimits"


class _HugetlbController:
    name = "hugetlb"

    def apply(self, path: str, resources: LinuxResources) -> None:
        for limit in resources.hugepage_limits:
            size = limit.page_size
            if not size or "/" in size or size.startswith("."):
                raise CgroupError(f"{_FIELD}: invalid page size {size!r}")
            name = f"hugetlb.{size}.max"
            if not _files.exists(path, name):
                raise CgroupError(
                    f"{_FIELD}: page size {size} is not supported here (no {name} in {path})"
                )
            _files.write(path, name, str(limit.limit), f"{_FIELD}[{size}].limit")
            # The reservation limit (kernel 5.7+) stops the overcommit that would otherwise
            # end in a SIGBUS at fault time; runc sets it to the same value.
            rsvd = f"hugetlb.{size}.rsvd.max"
            if _files.exists(path, rsvd):
                _files.write(path, rsvd, str(limit.limit), f"{_FIELD}[{size}].limit")

    def stats(self, path: str, data: dict[str, Any]) -> None:
        try:
            names = os.listdir(path)
        except OSError:
            return
        sizes = sorted(
            name[len("hugetlb.") : -len(".current")]
            for name in names
            if name.startswith("hugetlb.")
            and name.endswith(".current")
            and ".rsvd." not in name
            and name.count(".") == 2
        )
        if not sizes:
            return
        hugetlb: dict[str, Any] = {}
        for size in sizes:
            events = _files.read_flat_keyed(path, f"hugetlb.{size}.events") or {}
            hugetlb[size] = {
                "usage": _files.read_number(path, f"hugetlb.{size}.current") or 0,
                "failcnt": events.get("max", 0),
            }
        data["hugetlb"] = hugetlb


CONTROLLER = _HugetlbController()
