"""The pids controller on cgroup v2: pids.max."""

from __future__ import annotations

from cove.runtime.cgroups.v2 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources


class _PidsController:
    name = "pids"

    def apply(self, path: str, resources: LinuxResources) -> None:
        limit = resources.pids_limit
        if limit is not None:
            # <= 0 means unlimited, as the OCI spec and runc have it.
            text = "max" if limit <= 0 else str(limit)
            _files.write(path, "pids.max", text, "linux.resources.pids.limit")

    def stats(self, path: str, data: dict[str, Any]) -> None:
        current = _files.read_number(path, "pids.current")
        if current is None:
            return
        limit = (_files.read(path, "pids.max") or "max").strip()
        # runc reports an unlimited pids.max as 0.
        data["pids"] = {"current": current, "limit": 0 if limit == "max" else int(limit)}


CONTROLLER = _PidsController()
