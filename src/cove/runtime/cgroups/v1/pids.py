"""pids (v1): the most tasks the cgroup may hold.

Spec field    kernel file (cgroup-v1/pids.rst)
pids.limit    pids.max      "max" when the limit is 0 or negative (unlimited)

Stats: pids.current and pids.max as runc's {"current", "limit"}, the limit 0 for "max".
"""

from __future__ import annotations

from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources


class PidsController:
    name = "pids"

    def apply(self, path: str, resources: LinuxResources) -> None:
        limit = resources.pids_limit
        if limit is None:
            return
        value = str(limit) if limit > 0 else "max"
        _files.write(path, "pids.max", value, "linux.resources.pids.limit")

    def stats(self, path: str, data: dict[str, Any]) -> None:
        text = (_files.read(path, "pids.max") or "max").strip()
        limit = 0 if text == "max" else _files.parse_int(text, path, "pids.max")
        data["pids"] = {"current": _files.read_int(path, "pids.current"), "limit": limit}


CONTROLLER = PidsController()
