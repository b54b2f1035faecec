"""The container's mount sequence, run by init inside its new mount namespace.

Order (each step a function, so the sequence reads as a list and tests can check it):
1. make `/` private (or linux.rootfsPropagation) so nothing propagates to the host;
2. bind the rootfs onto itself so it is a mount point pivot_root accepts;
3. the config's mounts in order, destinations resolved inside the rootfs;
4. /dev: default devices, linux.devices, standard symlinks (when /dev is mounted), and
   process.cwd when it is missing;
5. pivot_root (or chroot with MS_MOVE for --no-pivot) and detach the old root;
6. after the switch: sysctls, readonlyPaths, maskedPaths, and root.readonly last.
"""

from __future__ import annotations

import errno
import os

from cove.errors import RootfsError, SyscallFailed
from cove.runtime.cgroups import cgroup_relpath
from cove.runtime.cgroups.layout import Layout
from cove.runtime.config import ContainerConfig, MountEntry
from cove.runtime.devices import DEFAULT_DEVICES, create_dev_symlinks, create_devices
from cove.runtime.rootpath import ensure_mountpoint, make_parents, resolve_in_root
from cove.sys import constants as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from cove.sys import Syscalls

# Flags that survive a bind remount only if repeated (the kernel locks them in a userns).
_LOCKED_FLAGS = {
    os.ST_NOSUID: c.MS_NOSUID,
    os.ST_NODEV: c.MS_NODEV,
    os.ST_NOEXEC: c.MS_NOEXEC,
    os.ST_RDONLY: c.MS_RDONLY,
}


def prepare_rootfs(
    sys: Syscalls,
    config: ContainerConfig,
    cgroups: Layout | None,
    before_cgroup: Callable[[], None] | None = None,
) -> None:
    """Steps 1 to 4: everything done while the host's paths are still visible.

    `before_cgroup` runs before the first cgroup filesystem is mounted: init uses it to
    enter its cgroup namespace, which must exist by then.
    """
    try:
        sys.mount("", "/", "", config.rootfs_propagation)
    except SyscallFailed as exc:
        raise RootfsError(f"linux.rootfsPropagation: cannot apply it to /: {exc}") from None
    if config.rootfs_propagation & c.MS_SHARED:
        # pivot_root refuses a new root whose parent mount is shared.
        sys.mount("", _mountpoint_of(config.rootfs), "", c.MS_PRIVATE)
    try:
        sys.mount(config.rootfs, config.rootfs, "", c.MS_BIND | c.MS_REC)
    except SyscallFailed as exc:
        hint = ""
        if exc.errno == errno.EACCES and config.has_user_namespace:
            hint = (
                " (in a user namespace the container's root must be able to reach the "
                "rootfs: check the permissions of its parent folders)"
            )
        raise RootfsError(f"root.path: cannot use {config.rootfs}: {exc.strerror}{hint}") from None
    for entry in config.mounts:
        if before_cgroup is not None and entry.fstype in ("cgroup", "cgroup2"):
            before_cgroup()
        mount_entry(sys, config, entry, cgroups)
    if config.mounts_dev:
        create_devices(sys, config.rootfs, DEFAULT_DEVICES, config.has_user_namespace)
    create_devices(sys, config.rootfs, config.devices, config.has_user_namespace)
    if config.mounts_dev:
        # After the config's devices, as runc: /dev/ptmx ends up the devpts link.
        create_dev_symlinks(config.rootfs)
    # As runc: a missing working directory is created (inside the rootfs, as root).
    cwd = resolve_in_root(config.rootfs, config.process.cwd)
    if not os.path.lexists(cwd):
        make_parents(config.rootfs, cwd)


def mount_entry(
    sys: Syscalls, config: ContainerConfig, entry: MountEntry, cgroups: Layout | None
) -> None:
    target = resolve_in_root(config.rootfs, entry.destination)
    if entry.fstype == "cgroup" or entry.fstype == "cgroup2":
        _mount_cgroup(sys, config, entry, target, cgroups)
        return
    if entry.is_bind:
        ensure_mountpoint(config.rootfs, target, is_file=not os.path.isdir(entry.source))
        _bind(sys, entry.source, target, entry.flags)
    else:
        ensure_mountpoint(config.rootfs, target, is_file=False)
        try:
            sys.mount(entry.source or entry.fstype, target, entry.fstype, entry.flags, entry.data)
        except SyscallFailed as exc:
            if entry.fstype != "sysfs" or exc.errno != errno.EPERM:
                raise RootfsError(f"mount {entry.destination}: {exc}") from None
            # sysfs cannot be mounted in a user namespace without its own network namespace.
            _bind(sys, "/sys", target, c.MS_BIND | c.MS_REC | (entry.flags & ~c.MS_BIND))
    for propagation in entry.propagation:
        sys.mount("", target, "", propagation)


def _bind(sys: Syscalls, source: str, target: str, flags: int) -> None:
    bind_flags = c.MS_BIND | (flags & c.MS_REC)
    try:
        sys.mount(source, target, "", bind_flags)
        extra = flags & ~(c.MS_BIND | c.MS_REC | c.MS_REMOUNT)
        if extra:
            # Per-mount flags on a bind mount only take effect through a remount.
            sys.mount("", target, "", c.MS_BIND | c.MS_REMOUNT | extra | _locked_flags(target))
    except SyscallFailed as exc:
        raise RootfsError(f"bind mount {source} on {target}: {exc}") from None


def _locked_flags(path: str) -> int:
    try:
        vfs_flags = os.statvfs(path).f_flag
    except OSError:
        return 0
    return sum(flag for st, flag in _LOCKED_FLAGS.items() if vfs_flags & st and st != os.ST_RDONLY)


def _mount_cgroup(
    sys: Syscalls,
    config: ContainerConfig,
    entry: MountEntry,
    target: str,
    layout: Layout | None,
) -> None:
    """A cgroup filesystem showing the container's own cgroup (with a cgroup namespace)."""
    ensure_mountpoint(config.rootfs, target, is_file=False)
    flags = entry.flags & ~c.MS_RDONLY
    own_namespace = bool(config.new_namespaces & c.CLONE_NEWCGROUP)
    if layout is None or not layout.hierarchies:
        raise RootfsError(f"mount {entry.destination}: the host has no cgroup hierarchy")
    try:
        if not own_namespace:
            _bind_own_cgroups(sys, config, layout, target, entry.flags)
            return
        if layout.mode == "v2":
            sys.mount("cgroup2", target, "cgroup2", entry.flags)
            return
        sys.mount("tmpfs", target, "tmpfs", flags, "mode=755")
    except SyscallFailed as exc:
        raise RootfsError(f"mount {entry.destination}: {exc}") from None
    try:
        _mount_v1_hierarchies(sys, layout, target, entry.flags)
    except SyscallFailed as exc:
        if exc.errno != errno.EPERM or not config.has_user_namespace:
            raise RootfsError(f"mount {entry.destination}: {exc}") from None
        # A user namespace may not mount v1 hierarchies: show the host's, read-only.
        sys.umount2(target, c.MNT_DETACH)
        _bind(sys, "/sys/fs/cgroup", target, c.MS_BIND | c.MS_REC | entry.flags)


def _bind_own_cgroups(
    sys: Syscalls, config: ContainerConfig, layout: Layout, target: str, flags: int
) -> None:
    """Without a cgroup namespace (Docker's default on v1 and hybrid hosts): each hierarchy
    shows the container's own cgroup folder, as runc does, not the host's whole tree."""
    relpath = cgroup_relpath(config.cgroups_path, config.id)
    if layout.mode == "v2":
        unified = layout.hierarchies[0].mountpoint
        own = unified + relpath
        _bind(sys, own if os.path.isdir(own) else unified, target, c.MS_BIND | c.MS_REC | flags)
        return
    sys.mount("tmpfs", target, "tmpfs", flags & ~c.MS_RDONLY, "mode=755")
    for hierarchy in layout.hierarchies:
        sub = os.path.join(target, os.path.basename(hierarchy.mountpoint))
        os.makedirs(sub, exist_ok=True)
        own = hierarchy.mountpoint + relpath
        # No cgroup of its own (rootless, not delegated): the host's hierarchy, read-only.
        _bind(sys, own if os.path.isdir(own) else hierarchy.mountpoint, sub,
              c.MS_BIND | c.MS_REC | flags)  # fmt: skip
    if flags & c.MS_RDONLY:
        sys.mount("", target, "", c.MS_REMOUNT | (flags & ~c.MS_RDONLY) | c.MS_RDONLY, "mode=755")


def _mount_v1_hierarchies(sys: Syscalls, layout: Layout, target: str, flags: int) -> None:
    for hierarchy in layout.hierarchies:
        sub = os.path.join(target, os.path.basename(hierarchy.mountpoint))
        os.makedirs(sub, exist_ok=True)
        fstype = "cgroup2" if hierarchy.version == 2 else "cgroup"
        sys.mount(fstype, sub, fstype, flags, hierarchy.fs_data)
        # A reused v1 superblock ignores the per-mount flags of mount(2): remount.
        sys.mount("", sub, "", c.MS_BIND | c.MS_REMOUNT | flags)
    if flags & c.MS_RDONLY:
        tmpfs_flags = flags & ~c.MS_RDONLY
        sys.mount("", target, "", c.MS_REMOUNT | tmpfs_flags | c.MS_RDONLY, "mode=755")


def _mountpoint_of(path: str) -> str:
    """The mount point that `path` lives on (the longest one that is a prefix)."""
    best = "/"
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(
                best
            ):
                best = point
    return best


def switch_root(sys: Syscalls, rootfs: str, no_pivot: bool, propagation: int = 0) -> None:
    """Step 5: make the rootfs `/` and drop every path to the host's filesystem; a shared
    rootfsPropagation is applied to the new `/` again (pivot_root needed it private)."""
    if no_pivot:
        os.chdir(rootfs)
        sys.mount(rootfs, "/", "", c.MS_MOVE)
        os.chroot(".")
        os.chdir("/")
        return
    # pivot_root(".", ".") stacks the old root under the new one at the same place;
    # the old root is then unmounted from there (no put_old directory is needed).
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(rootfs)
        sys.pivot_root(".", ".")
        os.fchdir(old_root)
        # Keep unmount events of the old root from reaching the host.
        sys.mount("", ".", "", c.MS_SLAVE | c.MS_REC)
        sys.umount2(".", c.MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")
    if propagation & c.MS_SHARED:
        sys.mount("", "/", "", propagation)


def finalize_rootfs(sys: Syscalls, config: ContainerConfig) -> None:
    """Step 6, inside the new root."""
    for key, value in config.sysctl.items():
        _write_sysctl(key, value)
    for path in config.readonly_paths:
        _make_readonly(sys, path)
    for path in config.masked_paths:
        _mask(sys, path)
    if config.readonly_root:
        sys.mount("", "/", "", c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | _locked_flags("/"))


def _write_sysctl(key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path, "w") as sysctl:
            sysctl.write(value)
    except OSError as exc:
        raise RootfsError(f"linux.sysctl: cannot set {key}={value!r}: {exc.strerror}") from None


def _make_readonly(sys: Syscalls, path: str) -> None:
    try:
        sys.mount(path, path, "", c.MS_BIND | c.MS_REC)
    except SyscallFailed as exc:
        if exc.errno == errno.ENOENT:
            return
        raise RootfsError(f"linux.readonlyPaths: {path}: {exc}") from None
    sys.mount("", path, "", c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | c.MS_REC | _locked_flags(path))


def _mask(sys: Syscalls, path: str) -> None:
    try:
        if os.path.isdir(path):
            sys.mount("tmpfs", path, "tmpfs", c.MS_RDONLY, "size=0k,mode=0555")
        else:
            sys.mount("/dev/null", path, "", c.MS_BIND)
    except SyscallFailed as exc:
        if exc.errno != errno.ENOENT:
            raise RootfsError(f"linux.maskedPaths: {path}: {exc}") from None
