"""Part of `cove.engine.volumes`: what touches a volume's files and mounts. The local
driver's `-o type/device/o` as a mount(2) call, the mount table, and the copy of an
image's files into a new volume (owner, mode, times, symlinks, hard links, devices, fifos
and extended attributes, as far as the filesystems allow).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Mapping

from cove.errors import InvalidArgument, SyscallFailed, VolumeError
from cove.sys.constants import (
    MNT_DETACH,
    MS_BIND,
    MS_DIRSYNC,
    MS_LAZYTIME,
    MS_NOATIME,
    MS_NODEV,
    MS_NODIRATIME,
    MS_NOEXEC,
    MS_NOSUID,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_STRICTATIME,
    MS_SYNCHRONOUS,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.sys import Syscalls

OPTION_KEYS = ("type", "device", "o")
# an option -> the options it needs (Docker's local driver: type and device go together)
_REQUIRES = {"type": ("device",), "device": ("type",), "o": ("type", "device")}

# mount(8) words of `-o o=...` that are flags: (flag, set it?); the rest is filesystem data
_FLAGS: dict[str, tuple[int, bool]] = {
    "defaults": (0, False),
    "ro": (MS_RDONLY, True),
    "rw": (MS_RDONLY, False),
    "nosuid": (MS_NOSUID, True),
    "suid": (MS_NOSUID, False),
    "nodev": (MS_NODEV, True),
    "dev": (MS_NODEV, False),
    "noexec": (MS_NOEXEC, True),
    "exec": (MS_NOEXEC, False),
    "sync": (MS_SYNCHRONOUS, True),
    "async": (MS_SYNCHRONOUS, False),
    "dirsync": (MS_DIRSYNC, True),
    "noatime": (MS_NOATIME, True),
    "atime": (MS_NOATIME, False),
    "nodiratime": (MS_NODIRATIME, True),
    "diratime": (MS_NODIRATIME, False),
    "relatime": (MS_RELATIME, True),
    "norelatime": (MS_RELATIME, False),
    "strictatime": (MS_STRICTATIME, True),
    "lazytime": (MS_LAZYTIME, True),
    "bind": (MS_BIND, True),
    "rbind": (MS_BIND | MS_REC, True),
}


# --- the local driver's options --------------------------------------------------------------


def check_options(options: Mapping[str, str]) -> dict[str, str]:
    """`-o` of `volume create`, checked as Docker's local driver does."""
    for key in options:
        if key not in OPTION_KEYS:
            raise InvalidArgument(
                f"invalid volume option {key!r}: the local driver takes type, device and o"
            )
    for key, needed in _REQUIRES.items():
        for other in needed:
            if key in options and other not in options:
                raise InvalidArgument(f"invalid volume options: {key} requires {other}")
    if options.get("type") == "none":
        flags, _ = mount_flags(options.get("o", ""))
        if not flags & MS_BIND:
            raise InvalidArgument(
                "invalid volume options: type=none needs o=bind (or rbind) to bind a host folder"
            )
    return dict(options)


def mount_flags(text: str) -> tuple[int, str]:
    """`o=...` -> (mount flags, the filesystem's own options)."""
    flags = 0
    data = []
    for word in (w.strip() for w in text.split(",")):
        if not word:
            continue
        if word in _FLAGS:
            bit, on = _FLAGS[word]
            flags = flags | bit if on else flags & ~bit
        else:
            data.append(word)
    return flags, ",".join(data)


def bind_device(options: Mapping[str, str]) -> str | None:
    """The host folder of a `type=none o=bind device=...` volume; None for other volumes."""
    if not options.get("type"):
        return None
    flags, _ = mount_flags(options.get("o", ""))
    return options.get("device", "") if flags & MS_BIND else None


# --- mounts ---------------------------------------------------------------------------------


def _syscalls(syscalls: Syscalls | None) -> Syscalls:
    if syscalls is not None:
        return syscalls
    from cove.sys.linux import LinuxSyscalls

    return LinuxSyscalls()


def mount_volume(
    name: str, options: Mapping[str, str], target: str, syscalls: Syscalls | None = None
) -> None:
    """Mount what `options` describe on `target` (the volume's _data)."""
    sys = _syscalls(syscalls)
    kind, device = options.get("type", ""), options.get("device", "")
    flags, data = mount_flags(options.get("o", ""))
    what = f"type={kind} device={device} o={options.get('o', '')}"
    try:
        if flags & MS_BIND:
            if not os.path.isdir(device):
                raise VolumeError(
                    f"cannot mount volume {name} ({what}): the device {device} is not a folder"
                )
            sys.mount(device, target, "", flags & (MS_BIND | MS_REC))
            rest = flags & ~(MS_BIND | MS_REC)
            if rest:
                try:
                    sys.mount("", target, "", MS_REMOUNT | MS_BIND | rest)
                except SyscallFailed:
                    sys.umount2(target, MNT_DETACH)
                    raise
        else:
            sys.mount(device, target, kind, flags, data)
    except SyscallFailed as exc:
        raise VolumeError(
            f"cannot mount volume {name} ({what}) on {target}: {exc.strerror}"
        ) from None


def unmount_all(
    name: str, path: str, syscalls: Syscalls | None = None, mountinfo: str = "/proc/self/mountinfo"
) -> None:
    """Unmount everything at or under `path`, deepest first (detached when busy)."""
    sys = _syscalls(syscalls)
    for point in mounts_under(path, mountinfo):
        try:
            sys.umount2(point, 0)
        except SyscallFailed as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                continue
            try:
                sys.umount2(point, MNT_DETACH)
            except SyscallFailed as again:
                raise VolumeError(
                    f"cannot unmount {point} of volume {name}: {again.strerror}"
                ) from None


def mounts_under(path: str, mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Mount points at or under `path` (deepest first)."""
    path = os.path.normpath(path)
    found = []
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as table:
            for line in table:
                fields = line.split()
                if len(fields) < 5:
                    continue
                point = _unescape(fields[4])
                if point == path or point.startswith(path.rstrip("/") + "/"):
                    found.append(point)
    except OSError as exc:
        raise VolumeError(f"cannot read {mountinfo}: {exc.strerror}") from None
    return sorted(set(found), key=len, reverse=True)


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as \\ooo."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


# --- sizes and the image's content -----------------------------------------------------------


def tree_size(path: str) -> int:
    """Bytes of the files under `path` (hard links once), as Docker counts reclaimed space."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def is_empty(path: str) -> bool:
    with os.scandir(path) as entries:
        return next(entries, None) is None


def copy_image_content(rootfs: str, destination: str, target: str) -> bool:
    """Copy what the image has at `destination` (a folder, resolved inside `rootfs`) into the
    empty folder `target`, which also takes the folder's owner and mode (Docker's
    copyOwnership). False when there is nothing to copy (no such folder in the image)."""
    from cove.runtime.rootpath import resolve_in_root

    source = resolve_in_root(rootfs, destination)
    try:
        info = os.lstat(source)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise VolumeError(f"cannot read {destination} of the image: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        return False
    try:
        links: dict[tuple[int, int], str] = {}
        with os.scandir(source) as entries:
            for entry in entries:
                _copy(entry.path, os.path.join(target, entry.name), links)
        os.chown(target, info.st_uid, info.st_gid)
        os.chmod(target, stat.S_IMODE(info.st_mode))
    except OSError as exc:
        raise VolumeError(
            f"cannot copy {destination} of the image into the volume at {target}: "
            f"{exc.strerror or exc} ({exc.filename or ''})"
        ) from None
    return True


def _copy(source: str, target: str, links: dict[tuple[int, int], str]) -> None:
    info = os.lstat(source)
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        os.mkdir(target, 0o700)
        with os.scandir(source) as entries:
            for entry in entries:
                _copy(entry.path, os.path.join(target, entry.name), links)
    elif stat.S_ISREG(mode):
        key = (info.st_dev, info.st_ino)
        if info.st_nlink > 1 and key in links:
            os.link(links[key], target)
            return
        links[key] = target
        shutil.copyfile(source, target, follow_symlinks=False)
    elif stat.S_ISLNK(mode):
        os.symlink(os.readlink(source), target)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        os.mknod(target, mode, info.st_rdev)
    elif stat.S_ISFIFO(mode):
        os.mkfifo(target, stat.S_IMODE(mode))
    else:
        return  # a socket: it means nothing without its process
    _copy_metadata(source, target, info)


def _copy_metadata(source: str, target: str, info: os.stat_result) -> None:
    os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
    link = stat.S_ISLNK(info.st_mode)
    if not link:
        os.chmod(target, stat.S_IMODE(info.st_mode))  # after chown, which clears set-id bits
    try:
        names = os.listxattr(source, follow_symlinks=False)
    except OSError:
        names = []
    for name in names:
        try:
            value = os.getxattr(source, name, follow_symlinks=False)
            os.setxattr(target, name, value, follow_symlinks=False)
        except OSError:
            continue  # the filesystem or namespace does not take it: as cp -a, go on
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
