"""cpuacct (v1): CPU time used by the cgroup's tasks; nothing to set.

cpuacct.usage and cpuacct.usage_percpu count nanoseconds; cpuacct.usage_all splits each
CPU's time into user and system; cpuacct.stat counts user and system time in USER_HZ
ticks, converted to nanoseconds here as runc does.
"""

from __future__ import annotations

import os

from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

NANOSECONDS_PER_SECOND = 1_000_000_000


class CpuacctController:
    name = "cpuacct"

    def apply(self, path: str, resources: LinuxResources) -> None:
        return None  # accounting only

    def stats(self, path: str, data: dict[str, Any]) -> None:
        ticks = _files.read_keyed(path, "cpuacct.stat")
        per_tick = NANOSECONDS_PER_SECOND // _clock_ticks()
        percpu_user, percpu_kernel = _usage_all(path)
        data.setdefault("cpu", {})["usage"] = {
            "total": _files.read_int(path, "cpuacct.usage"),
            "percpu": _files.read_ints(path, "cpuacct.usage_percpu"),
            "percpu_kernel": percpu_kernel,
            "percpu_user": percpu_user,
            "kernel": ticks.get("system", 0) * per_tick,
            "user": ticks.get("user", 0) * per_tick,
        }


CONTROLLER = CpuacctController()


def _clock_ticks() -> int:
    try:
        ticks = os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        ticks = -1
    return ticks if ticks > 0 else 100  # USER_HZ is 100 on every Linux architecture


def _usage_all(path: str) -> tuple[list[int], list[int]]:
    """Per-CPU (user, system) nanoseconds from cpuacct.usage_all, if the kernel has it."""
    text = _files.read(path, "cpuacct.usage_all")
    user: list[int] = []
    system: list[int] = []
    if text is None:
        return user, system
    for line in text.splitlines()[1:]:  # the first line is the header "cpu user system"
        fields = line.split()
        if len(fields) == 3:
            user.append(_files.parse_int(fields[1], path, "cpuacct.usage_all"))
            system.append(_files.parse_int(fields[2], path, "cpuacct.usage_all"))
    return user, system
