"""Device nodes and the standard /dev symlinks inside a container's /dev."""

from __future__ import annotations

import os
import stat

from cove.errors import RootfsError
from cove.oci.runtime_spec import Device
from cove.runtime.rootpath import ensure_mountpoint, resolve_in_root
from cove.sys.constants import MS_BIND

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.sys import Syscalls

# The devices every container gets, as runc gives them.
DEFAULT_DEVICES = (
    Device(type="c", path="/dev/null", major=1, minor=3, file_mode=0o666, uid=0, gid=0),
    Device(type="c", path="/dev/zero", major=1, minor=5, file_mode=0o666, uid=0, gid=0),
    Device(type="c", path="/dev/full", major=1, minor=7, file_mode=0o666, uid=0, gid=0),
    Device(type="c", path="/dev/random", major=1, minor=8, file_mode=0o666, uid=0, gid=0),
    Device(type="c", path="/dev/urandom", major=1, minor=9, file_mode=0o666, uid=0, gid=0),
    Device(type="c", path="/dev/tty", major=5, minor=0, file_mode=0o666, uid=0, gid=0),
)

DEV_SYMLINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
)

_TYPE_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def create_devices(
    sys: Syscalls, rootfs: str, devices: tuple[Device, ...], bind_from_host: bool
) -> None:
    """Create each device node; in a user namespace mknod is denied, so bind the host's."""
    for device in devices:
        # The folder is resolved inside the rootfs; the node's own name never is followed
        # (an existing link there, like /dev/ptmx -> pts/ptmx, is replaced, not written through).
        parent, name = os.path.split(device.path)
        target = os.path.join(resolve_in_root(rootfs, parent), name)
        if bind_from_host and device.type != "p":
            if os.path.islink(target):
                os.unlink(target)
            ensure_mountpoint(rootfs, target, is_file=True)
            sys.mount(device.path, target, "bind", MS_BIND)
            continue
        ensure_mountpoint(rootfs, os.path.dirname(target), is_file=False)
        if os.path.lexists(target):
            os.unlink(target)
        mode = (device.file_mode if device.file_mode is not None else 0o666) & 0o7777
        try:
            os.mknod(target, mode | _TYPE_BITS[device.type], os.makedev(device.major, device.minor))
            os.chmod(target, mode)  # mknod applies the umask
            os.chown(target, device.uid or 0, device.gid or 0)
        except OSError as exc:
            raise RootfsError(f"cannot create device {device.path}: {exc.strerror}") from None


def create_dev_symlinks(rootfs: str) -> None:
    """The standard links; existing entries are kept, except /dev/ptmx, which must lead to
    the container's own devpts instance (a host ptmx node there would open the host's)."""
    for target, link in DEV_SYMLINKS:
        # Resolve the folder only: the link itself may exist (and point anywhere).
        parent, name = os.path.split(link)
        host_link = os.path.join(resolve_in_root(rootfs, parent), name)
        if link == "/dev/ptmx" and os.path.lexists(host_link) and not os.path.islink(host_link):
            os.unlink(host_link)
        if os.path.lexists(host_link):
            continue
        os.symlink(target, host_link)
