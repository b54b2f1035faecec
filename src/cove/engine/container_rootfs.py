"""A container's files, from the host: a directory fd of its root filesystem for `cove cp`,
`cove export` and `cove commit`, whether it runs or not.

- Running (or paused), `live=True`: the root the container itself sees, through
  /proc/<init pid>/root, so its bind mounts and volumes are there too. The pid is checked to
  be the container's (its cgroup) through an fd of /proc/<pid>, so a recycled pid cannot
  give another process's root. Mount points of the container's own /proc, /sys, /dev are
  reported in `RootView.allowed_devices` as not to be descended (only user mounts are).
- Running, `live=False`: the overlay mount the engine made on the host (no volumes: what
  `docker export` gives).
- Stopped or created: the snapshot is mounted for the time of the operation (under the
  container's lock, so it cannot start meanwhile) and unmounted afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cove.engine.container_create import snapshot_key
from cove.engine.rootfs_path import open_in_root
from cove.engine.state import ContainerRecord, ContainerStore
from cove.errors import InvalidState
from cove.image.snapshot import choose_snapshotter

_SYSTEM_MOUNTS = ("/proc", "/sys", "/dev")


@dataclass(frozen=True)
class RootView:
    fd: int  # an O_PATH directory fd of the container's "/"
    record: ContainerRecord
    allowed_devices: frozenset[int] = frozenset()  # mounts a tree walk may enter

    @property
    def label(self) -> str:
        return self.record.name or self.record.short_id


def is_running(record: ContainerRecord) -> bool:
    return record.status in ("running", "paused")


@contextlib.contextmanager
def container_root(
    root: str, store: ContainerStore, record: ContainerRecord, *, live: bool = True
) -> Iterator[RootView]:
    """The container's root filesystem (see the module docstring); the caller brought
    `record` up to date (`ContainerService.get`)."""
    if not is_running(record):
        with store.lock(record.id):
            current = store.get(record.id)
            if not is_running(current):
                with _mounted(root, current) as view:
                    yield view
                return
        record = current  # it started meanwhile
    if live:
        fd = _live_root(record)
        try:
            yield RootView(fd, record, _user_mount_devices(fd, record))
        finally:
            os.close(fd)
        return
    fd = os.open(record.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield RootView(fd, record)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _mounted(root: str, record: ContainerRecord) -> Iterator[RootView]:
    snapshots = choose_snapshotter(root)
    key = snapshot_key(record.id)
    target = ""
    if not snapshots.mounted(key):
        target = snapshots.mount(key)
    path = record.rootfs or target or os.path.join(snapshots.path(key), "merged")
    try:
        fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield RootView(fd, record)
        finally:
            os.close(fd)
    finally:
        if target:
            snapshots.unmount(target)


def _cgroup_path(record: ContainerRecord) -> str:
    try:
        spec = json.loads((Path(record.bundle) / "config.json").read_text())
        return str(spec.get("linux", {}).get("cgroupsPath") or f"/cove/{record.id}")
    except (OSError, ValueError):
        return f"/cove/{record.id}"


def _live_root(record: ContainerRecord) -> int:
    gone = InvalidState(f"container {record.short_id} is not running")
    if record.pid <= 0:
        raise gone
    try:
        proc = os.open(f"/proc/{record.pid}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise gone from None
    try:
        try:
            cgroup_fd = os.open("cgroup", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc)
            with os.fdopen(cgroup_fd) as cgroups:
                text = cgroups.read()
        except (FileNotFoundError, ProcessLookupError):
            raise gone from None
        wanted = _cgroup_path(record).strip("/")
        if wanted not in text and record.id not in text:
            raise gone  # the pid was recycled
        try:
            return os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
        except (FileNotFoundError, ProcessLookupError):
            raise gone from None
    finally:
        os.close(proc)


def _user_mount_devices(root_fd: int, record: ContainerRecord) -> frozenset[int]:
    """Devices of the container's bind, tmpfs and overlay mounts (its volumes, the host
    folders of a --from-host image), not of the system ones (/proc, /sys, /dev and below)."""
    try:
        spec = json.loads((Path(record.bundle) / "config.json").read_text())
    except (OSError, ValueError):
        return frozenset()
    devices = set()
    for mount in spec.get("mounts") or []:
        destination = str(mount.get("destination") or "")
        if any(destination == p or destination.startswith(p + "/") for p in _SYSTEM_MOUNTS):
            continue
        options = mount.get("options") or []
        kinds = ("bind", "tmpfs", "overlay")
        if mount.get("type") not in kinds and not {"bind", "rbind"} & set(options):
            continue
        try:
            fd = open_in_root(root_fd, destination, os.O_PATH)
        except OSError:
            continue
        try:
            devices.add(os.fstat(fd).st_dev)
        finally:
            os.close(fd)
    return frozenset(devices)
