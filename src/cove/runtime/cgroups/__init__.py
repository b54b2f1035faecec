"""Control groups: one manager interface over cgroup v1, v2 and hybrid hosts.

This module places a container's processes in their own cgroup in every hierarchy,
lists them and removes the cgroup; the resource controllers build on it.
"""

from __future__ import annotations

import errno
import os
import time

from cove.errors import CgroupError
from cove.runtime.cgroups.layout import Layout

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
    """The container's cgroup directories, one per hierarchy (v1) or one (v2)."""

    def __init__(self, paths: dict[str, str]) -> None:
        # hierarchy mountpoint -> absolute cgroup directory
        self.paths = paths

    @classmethod
    def for_container(cls, layout: Layout, relpath: str) -> CgroupManager:
        # On hybrid hosts the cgroup2 mount is joined too, so tools reading it see us.
        return cls({h.mountpoint: h.mountpoint + relpath for h in layout.hierarchies})

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
