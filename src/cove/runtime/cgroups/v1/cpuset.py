"""cpuset (v1): the CPUs and memory nodes the cgroup's tasks may use.

Spec field    kernel file (cgroup-v1/cpusets.rst)
cpu.cpus      cpuset.cpus     a list such as "0-3,6"
cpu.mems      cpuset.mems

A new cpuset cgroup starts with both lists empty and takes no task until they are set;
the manager fills them from the parent when it creates the directory, so a spec without
cpus/mems still works. The stats are runc's "cpuset" figures.
"""

from __future__ import annotations

from cove.errors import CgroupError
from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

FIELD = "linux.resources.cpu"

# runc's "cpuset" stats keys, one per flag file cpuset.<key>.
_FLAGS = (
    "cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
    "memory_spread_page", "memory_spread_slab", "memory_pressure", "sched_load_balance",
    "sched_relax_domain_level",
)  # fmt: skip


class CpusetController:
    name = "cpuset"

    def apply(self, path: str, resources: LinuxResources) -> None:
        cpu = resources.cpu
        if cpu is None:
            return
        if cpu.cpus:
            _files.write(path, "cpuset.cpus", cpu.cpus, f"{FIELD}.cpus")
        if cpu.mems:
            _files.write(path, "cpuset.mems", cpu.mems, f"{FIELD}.mems")

    def stats(self, path: str, data: dict[str, Any]) -> None:
        cpuset: dict[str, Any] = {
            "cpus": _list(path, "cpuset.cpus"),
            "mems": _list(path, "cpuset.mems"),
        }
        for key in _FLAGS:
            cpuset[key] = _files.read_int(path, f"cpuset.{key}")
        data["cpuset"] = cpuset


CONTROLLER = CpusetController()


def _list(path: str, name: str) -> list[int]:
    text = _files.read(path, name) or ""
    try:
        return _files.parse_list(text)
    except ValueError:
        raise CgroupError(f"cannot read {path}/{name}: not a list, got {text.strip()!r}") from None
