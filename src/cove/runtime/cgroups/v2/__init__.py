"""cgroup v2 controllers, one module each (see cove.runtime.cgroups.controller).

CONTROLLERS maps each name to its controller. "devices" (an eBPF program), "freezer"
(cgroup.freeze) and "unified" (raw key/values) are not kernel controllers: they are never
listed in cgroup.controllers and need no enabling. "unified" comes last, so its raw values
override the converted ones.
"""

from __future__ import annotations

import os

from cove.errors import CgroupError
from cove.runtime.cgroups.controller import load_registry, registry_attribute
from cove.runtime.cgroups.v2 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Collection

    from cove.runtime.cgroups.controller import Controller

    CONTROLLERS: dict[str, Controller]

# name -> module of this package; "unified" last (its raw values override the converted)
_MODULES = ("cpuset", "cpu", "memory", "pids", "io", "hugetlb", "devices", "freezer", "unified")


def controllers() -> dict[str, Controller]:
    """CONTROLLERS: its modules load on the first call (a caller that needs one module,
    as the freezer's thaw at every delete, loads only that one)."""
    return load_registry(__name__, _MODULES, globals())  # type: ignore[no-any-return]


def __getattr__(name: str) -> object:
    return registry_attribute(__name__, name, controllers)


def _words(path: str, name: str) -> set[str]:
    file = os.path.join(path, name)
    try:
        with open(file) as handle:
            return set(handle.read().split())
    except OSError as exc:
        raise CgroupError(f"cannot read {file}: {exc.strerror}") from None


def enable_controllers(
    root_mountpoint: str, path: str, names: Collection[str], required: Collection[str] = ()
) -> set[str]:
    """Enable `names` for the cgroup `path`: "+name" into cgroup.subtree_control of every
    ancestor from the mount root down to path's parent. Returns the names usable in `path`.

    A controller the kernel does not offer (not in cgroup.controllers) or refuses to enable
    (a write error: for instance "cpu" while real-time tasks sit in a cgroup it would
    cover) is skipped, unless it is in `required`: then CgroupError says why."""
    root = os.path.normpath(root_mountpoint)
    relative = os.path.relpath(os.path.normpath(path), root)
    if relative.split(os.sep)[0] == "..":
        raise CgroupError(f"cgroup {path} is not under the cgroup2 mount {root_mountpoint}")
    if relative == ".":
        return set(names) & _words(root, "cgroup.controllers")
    ancestors = [root]
    for part in relative.split(os.sep)[:-1]:
        ancestors.append(os.path.join(ancestors[-1], part))
    wanted = set(names)
    for ancestor in ancestors:
        available = _words(ancestor, "cgroup.controllers")
        enabled = _words(ancestor, "cgroup.subtree_control")
        control = os.path.join(ancestor, "cgroup.subtree_control")
        for name in sorted(wanted - enabled):
            if name not in available:
                reason = f"not offered in {ancestor}/cgroup.controllers"
            else:
                try:
                    _files.write_raw(control, f"+{name}")
                    continue
                except OSError as exc:
                    reason = f"cannot write +{name} to {control}: {exc.strerror}"
            if name in required:
                raise CgroupError(f"cgroup v2 controller {name} is needed but {reason}")
            wanted.discard(name)
    return wanted
