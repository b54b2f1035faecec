"""cgroup v1 controllers, one module each (see cove.runtime.cgroups.controller).

CONTROLLERS maps the kernel's name of each controller to its module's CONTROLLER. Extra
entry points: freezer.freeze / thaw / is_frozen (pause, resume), memory.oom_count, and
devices.DEFAULT_ALLOWED_DEVICES (the device rules every container gets, as runc's).
"""

from __future__ import annotations

from cove.runtime.cgroups.v1 import (
    blkio,
    cpu,
    cpuacct,
    cpuset,
    devices,
    freezer,
    hugetlb,
    memory,
    net_cls,
    net_prio,
    pids,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.runtime.cgroups.controller import Controller

CONTROLLERS: dict[str, Controller] = {
    "memory": memory.CONTROLLER,
    "cpu": cpu.CONTROLLER,
    "cpuacct": cpuacct.CONTROLLER,
    "cpuset": cpuset.CONTROLLER,
    "pids": pids.CONTROLLER,
    "blkio": blkio.CONTROLLER,
    "hugetlb": hugetlb.CONTROLLER,
    "net_cls": net_cls.CONTROLLER,
    "net_prio": net_prio.CONTROLLER,
    "devices": devices.CONTROLLER,
    "freezer": freezer.CONTROLLER,
}
