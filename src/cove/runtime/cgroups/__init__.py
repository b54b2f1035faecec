"""Control groups: one manager interface over cgroup v1, v2 and hybrid hosts.

This module places a container's processes in their own cgroup in every hierarchy,
lists them and removes the cgroup; the resource controllers build on it.
"""

from __future__ import annotations

import errno
import os
import time

from cove.errors import CgroupError
from cove.runtime.cgroups.layout import V2, Layout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

DEFAULT_PARENT = "/cove"


def cgroup_relpath(cgroups_path: str, container_id: str) -> str:
    """The container's cgroup path relative to each hierarchy's root."""
    if not cgroups_path:
        return f"{DEFAULT_PARENT}/{container_id}"
    if ":" in cgroups_path and not cgroups_path.startswith("/"):
        # systemd's "slice:prefix:name" form: kept as a plain path under the slice.
        slice_name, prefix, name = [*cgroups_path.split(":"), "", ""][:3]
        leaf = f"{prefix}-{name}" if prefix else name
        return "/" + "/".join(part for part in (slice_name, leaf) if part)
    return "/" + cgroups_path.strip("/")


class CgroupManager:
    """The container's cgroup directories, one per hierarchy (v1) or one (v2).

    `owned` is False when the leaf cgroup existed before (a cgroupsPath shared with other
    containers, as in a pod): it is joined and limited, but never removed.
    """

    def __init__(self, paths: dict[str, str], owned: bool = True) -> None:
        # hierarchy mountpoint -> absolute cgroup directory
        self.paths = paths
        self.owned = owned

    @classmethod
    def for_container(cls, layout: Layout, relpath: str) -> CgroupManager:
        # On hybrid hosts the cgroup2 mount is joined too, so tools reading it see us.
        return cls({h.mountpoint: h.mountpoint + relpath for h in layout.hierarchies})

    def apply(self, resources: LinuxResources, layout: Layout) -> list[str]:
        """Write the limits through each controller; returns warnings for limits this host
        cannot enforce where the spec allows that (network class and priorities)."""
        handled: set[str] = set()
        if layout.mode == V2:
            from cove.runtime.cgroups import v2

            unified = layout.unified
            assert unified is not None
            path = self.paths[unified.mountpoint]
            handled = v2.enable_controllers(unified.mountpoint, path, set(v2.CONTROLLERS))
            for name, controller in v2.CONTROLLERS.items():
                if name in handled or name in ("unified", "devices", "freezer"):
                    controller.apply(path, resources)
            handled |= {"unified", "devices", "freezer"}
        else:
            from cove.runtime.cgroups import v1

            for hierarchy in layout.hierarchies:
                if hierarchy.version != 1 or hierarchy.mountpoint not in self.paths:
                    continue
                for name in hierarchy.options:
                    v1_controller = v1.CONTROLLERS.get(name)
                    if v1_controller is not None:
                        v1_controller.apply(self.paths[hierarchy.mountpoint], resources)
                        handled.add(name)
        return _unenforced(resources, handled, layout.mode)

    def _controller_path(self, layout: Layout, v1_name: str) -> tuple[int, str] | None:
        """(version, directory) where a controller lives: v1 first, as hybrid hosts use."""
        for hierarchy in layout.hierarchies:
            if hierarchy.version == 1 and v1_name in hierarchy.options:
                path = self.paths.get(hierarchy.mountpoint)
                if path is not None:
                    return 1, path
        unified = layout.unified
        if unified is not None and unified.mountpoint in self.paths:
            return 2, self.paths[unified.mountpoint]
        return None

    def freeze(self, layout: Layout) -> None:
        found = self._controller_path(layout, "freezer")
        if found is None:
            raise CgroupError("pause: this host has no freezer (cgroup v1) nor cgroup.freeze")
        version, path = found
        if version == 1:
            from cove.runtime.cgroups.v1 import freezer
        else:
            from cove.runtime.cgroups.v2 import freezer  # type: ignore[no-redef]
        freezer.freeze(path)

    def thaw(self, layout: Layout) -> None:
        found = self._controller_path(layout, "freezer")
        if found is None:
            return
        version, path = found
        if version == 1:
            from cove.runtime.cgroups.v1 import freezer
        else:
            from cove.runtime.cgroups.v2 import freezer  # type: ignore[no-redef]
        freezer.thaw(path)

    def stats(self, layout: Layout) -> dict[str, Any]:
        """Figures in runc's `events --stats` shape."""
        data: dict[str, Any] = {}
        if layout.mode == V2:
            from cove.runtime.cgroups import v2

            unified = layout.unified
            assert unified is not None
            for controller in v2.CONTROLLERS.values():
                controller.stats(self.paths[unified.mountpoint], data)
            return data
        from cove.runtime.cgroups import v1

        for hierarchy in layout.hierarchies:
            path = self.paths.get(hierarchy.mountpoint)
            if hierarchy.version != 1 or path is None:
                continue
            for name in hierarchy.options:
                v1_controller = v1.CONTROLLERS.get(name)
                if v1_controller is not None:
                    v1_controller.stats(path, data)
        return data

    def oom_kills(self, layout: Layout) -> int:
        """How many processes the OOM killer has killed in the container so far."""
        found = self._controller_path(layout, "memory")
        if found is None:
            return 0
        version, path = found
        if version == 1:
            from cove.runtime.cgroups.v1 import memory

            return memory.oom_count(path)
        from cove.runtime.cgroups.v2 import memory as memory2

        return memory2.oom_kill_count(path)

    def delegated(self) -> bool:
        """May we create the cgroups? (Always as root; for others only if delegated.)"""
        for path in self.paths.values():
            parent = path
            while not os.path.isdir(parent):
                parent = os.path.dirname(parent)
            if not os.access(parent, os.W_OK):
                return False
        return True

    def exists(self) -> bool:
        """True when the container's cgroup is already there (to join, not to own)."""
        return all(os.path.isdir(path) for path in self.paths.values())

    def create(self) -> None:
        for mountpoint, path in self.paths.items():
            try:
                _makedirs_inheriting_cpuset(mountpoint, path)
            except OSError as exc:
                raise CgroupError(f"cannot create cgroup {path}: {exc.strerror}") from None

    def join(self, pid: int) -> None:
        for path in self.paths.values():
            try:
                with open(os.path.join(path, "cgroup.procs"), "w") as procs:
                    procs.write(str(pid))
            except OSError as exc:
                raise CgroupError(
                    f"cannot add pid {pid} to cgroup {path}: {exc.strerror}"
                ) from None

    def pids(self) -> list[int]:
        for path in self.paths.values():
            try:
                with open(os.path.join(path, "cgroup.procs")) as procs:
                    return [int(line) for line in procs.read().split()]
            except FileNotFoundError:
                continue
        return []

    def destroy(self, timeout: float = 5.0) -> None:
        """Remove every directory; a cgroup that still has tasks is retried until timeout."""
        if not self.owned:
            return
        deadline = time.monotonic() + timeout
        for path in self.paths.values():
            while True:
                try:
                    _remove_tree(path)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(f"cannot remove cgroup {path}: {exc.strerror}") from None
                    time.sleep(0.01)


# Which v1 controller enforces which resource group (v2 names in the second slot).
_ENFORCERS = (
    ("memory", ("memory",), "memory"),
    ("cpu", ("cpu", "cpuset"), "cpu"),
    ("pids_limit", ("pids",), "pids"),
    ("block_io", ("blkio", "io"), "blockIO"),
    ("hugepage_limits", ("hugetlb",), "hugepageLimits"),
)


def _unenforced(resources: LinuxResources, handled: set[str], mode: str) -> list[str]:
    """Refuse limits nothing on this host can enforce; warn about the optional ones."""
    for attribute, controllers, field in _ENFORCERS:
        value = getattr(resources, attribute)
        if value not in (None, ()) and not handled & set(controllers):
            raise CgroupError(
                f"linux.resources.{field}: no {'/'.join(controllers)} controller on this host"
            )
    warnings = []
    if resources.network_class_id is not None and "net_cls" not in handled:
        warnings.append("linux.resources.network.classID: no net_cls controller here; ignored")
    if resources.network_priorities and "net_prio" not in handled:
        warnings.append("linux.resources.network.priorities: no net_prio controller; ignored")
    if resources.unified and mode != V2:
        raise CgroupError(f"linux.resources.unified: needs a cgroup v2 host (this one is {mode})")
    return warnings


def _remove_tree(path: str) -> None:
    # Children first: a container may have made sub-cgroups of its own.
    for entry in os.scandir(path):
        if entry.is_dir(follow_symlinks=False):
            _remove_tree(entry.path)
    os.rmdir(path)


def _makedirs_inheriting_cpuset(mountpoint: str, path: str) -> None:
    current = mountpoint
    for part in path[len(mountpoint) :].strip("/").split("/"):
        parent, current = current, os.path.join(current, part)
        try:
            os.mkdir(current, 0o755)
        except FileExistsError:
            continue
        # A new v1 cpuset cgroup starts with no cpus and no mems, so joining it would fail.
        for name in ("cpuset.cpus", "cpuset.mems"):
            child_file = os.path.join(current, name)
            if not os.path.exists(child_file):
                break
            with open(child_file) as child:
                if child.read().strip():
                    continue
            with open(os.path.join(parent, name)) as src, open(child_file, "w") as dst:
                dst.write(src.read().strip())
