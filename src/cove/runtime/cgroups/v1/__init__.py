"""cgroup v1 controllers, one module each (see cove.runtime.cgroups.controller).

CONTROLLERS maps the kernel's name of each controller to its module's CONTROLLER. Extra
entry points: freezer.freeze / thaw / is_frozen (pause, resume), memory.oom_count, and
devices.DEFAULT_ALLOWED_DEVICES (the device rules every container gets, as runc's).

The controllers load when CONTROLLERS is first read, so a caller that needs one module
(the freezer's thaw at every delete) loads only that one.
"""

from __future__ import annotations

from cove.runtime.cgroups.controller import load_registry, registry_attribute

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.runtime.cgroups.controller import Controller

    CONTROLLERS: dict[str, Controller]

# kernel name -> module of this package (the order controllers are applied in)
_MODULES = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "hugetlb", "net_cls",
            "net_prio", "devices", "freezer")  # fmt: skip


def controllers() -> dict[str, Controller]:
    """CONTROLLERS: its modules load on the first call (a caller that needs one module,
    as the freezer's thaw at every delete, loads only that one)."""
    return load_registry(__name__, _MODULES, globals())  # type: ignore[no-any-return]


def __getattr__(name: str) -> object:
    return registry_attribute(__name__, name, controllers)
