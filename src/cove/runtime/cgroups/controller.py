"""The interface every cgroup controller module implements, for v1 and for v2.

One module per controller under cgroups/v1/ and cgroups/v2/. Each exposes a module-level
`CONTROLLER` object with:

  name       the controller as the kernel names it: "memory", "cpu", "pids", "blkio"
             (v1) / "io" (v2), "devices", "freezer", "hugetlb", "cpuset", "cpuacct",
             "net_cls", "net_prio"; v2 modules may also be "unified" (raw key/values)
  apply(path, resources)
             write the fields of `resources` this controller owns into the cgroup
             directory `path`; fields that are None are left alone (so `update` can
             change one limit); a value the kernel refuses raises CgroupError naming the
             spec field and the value, e.g. "linux.resources.memory.limit: cannot set
             1048576 in /sys/fs/cgroup/memory/cove/x: Device or resource busy"
  stats(path, data)
             add this controller's figures to `data`, a dict in runc's `events --stats`
             JSON shape ("memory", "cpu", "pids", "blkio", "hugetlb" keys)

The registries `cove.runtime.cgroups.v1.CONTROLLERS` and `...v2.CONTROLLERS` map names to
these objects. The manager (cove.runtime.cgroups) decides which apply where: on v1 and
hybrid hosts each hierarchy's mounted controllers, on v2 hosts all of them on the one
unified directory (after enabling them in the parents' cgroup.subtree_control).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from cove.oci.resources import LinuxResources

    class Controller(Protocol):
        name: str

        def apply(self, path: str, resources: LinuxResources) -> None: ...

        def stats(self, path: str, data: dict[str, Any]) -> None: ...


def load_registry(package: str, modules: tuple[str, ...], namespace: dict[str, Any]) -> Any:
    """A version package's CONTROLLERS ({name: its module's CONTROLLER}), its `modules` loaded
    now and the dict kept in the package's `namespace` (later reads find it there)."""
    from importlib import import_module

    found = {name: import_module(f"{package}.{name}").CONTROLLER for name in modules}
    namespace["CONTROLLERS"] = found
    return found


def registry_attribute(package: str, name: str, load: Callable[[], Any]) -> Any:
    """A version package's module __getattr__: CONTROLLERS is loaded on its first read."""
    if name != "CONTROLLERS":
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return load()
