"""Container root filesystems made from an image's layer directories.

`OverlaySnapshotter` stacks the layer dirs (as `cove.image.layer.apply_layer` writes them,
with overlay whiteouts) under a per-snapshot upper dir:

    <root>/snapshots/<key>/upper     the container's writes
    <root>/snapshots/<key>/work      overlayfs work dir
    <root>/snapshots/<key>/merged    the default mount point
    <root>/snapshots/<key>/l/<n>     short links to the layers (only when needed, see below)
    <root>/snapshots/<key>/snapshot.json   kind, layers, mount targets

The lowerdir option length: mount(2) copies at most one page (4096 bytes) of options, so
many layers with long absolute paths do not fit. When the absolute form is too long (or a
path holds a character overlayfs would parse: ',', ':', '\\'), prepare() makes one
symlink per layer, `l/0`, `l/1`, ... (top layer first), and the mount is done from the
snapshot dir with relative options: "lowerdir=l/0:l/1:...,upperdir=upper,workdir=work"
(Mount.cwd tells where). overlayfs resolves the paths (following those links) at mount
time, so the links are not needed afterwards; they stay for the next mount. The chdir is
done under a lock and the previous working directory is restored with fchdir; it briefly
changes the cwd of the whole process, which callers in threaded processes must know
(nothing in cove relies on the cwd). This keeps up to overlayfs' own limit of 500 layers.

Every overlay mount of a snapshot has the snapshot dir as its source, so `remove` finds
them all in /proc/self/mountinfo (whatever the target) and detaches them before deleting
anything: a removed snapshot never leaves a mount behind.

`CopySnapshotter` is the fallback for file systems where overlayfs cannot be mounted (an
overlay root, some network file systems): the layers are merged, bottom first, into
`<root>/snapshots/<key>/fs`, applying whiteouts and opaque dirs, and mounted with a bind
mount. Files are copied (copy_file_range) by default: hard links into the layer store
would let the container modify the image's files in place. `hardlink=True` links instead
(only for snapshots that are never written, e.g. read-only rootfs or inspection).

`choose_snapshotter(root)` probes an overlay mount in a temporary dir under root and picks.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cove.errors import SnapshotError, SyscallFailed
from cove.image.snapshot_copy import _OVERLAY_XATTR_PREFIXES as _OVERLAY_XATTR_PREFIXES
from cove.image.snapshot_copy import _copy_data as _copy_data
from cove.image.snapshot_copy import _copy_xattrs as _copy_xattrs
from cove.image.snapshot_copy import _merge_layer as _merge_layer
from cove.image.snapshot_copy import _Merger as _Merger
from cove.image.snapshot_copy import _remove_at as _remove_at
from cove.image.snapshot_copy import _set_meta as _set_meta
from cove.sys.constants import MNT_DETACH, MS_BIND, MS_REC

_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_META = "snapshot.json"
_OVERLAY_SPECIAL = (",", ":", "\\", "\n")
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CWD_LOCK = threading.Lock()
_MAX_LAYERS = 500  # overlayfs' own limit on lower layers


class Syscalls(Protocol):
    """The part of cove.sys this module uses (LinuxSyscalls or RecordingSyscalls)."""

    def mount(self, source: str, target: str, fstype: str, flags: int, data: str = "") -> None: ...

    def umount2(self, target: str, flags: int = 0) -> None: ...


@dataclass(frozen=True)
class Mount:
    """How to mount a snapshot: an OCI-style mount description.

    For overlay, `options` are the overlay options (lowerdir top layer first); when `cwd`
    is set they are relative to it and the mount must be made from that directory.
    """

    type: str  # "overlay" or "bind"
    source: str
    options: tuple[str, ...]
    cwd: str | None = None
    lowerdirs: tuple[str, ...] = ()  # absolute, top layer first
    upperdir: str = ""
    workdir: str = ""

    @property
    def data(self) -> str:
        """The mount(2) data string (bind mounts have none)."""
        if self.type == "bind":
            return ""
        return ",".join(self.options)


@dataclass(frozen=True)
class Usage:
    size: int  # bytes allocated (st_blocks), hard links counted once
    inodes: int


def _default_syscalls() -> Syscalls:
    from cove.sys.linux import LinuxSyscalls

    return LinuxSyscalls()


def _unescape_mountinfo(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _write_json(path: str, value: object) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(value, out, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class _Snapshotter:
    kind = ""

    def __init__(
        self,
        root: str | os.PathLike[str],
        syscalls: Syscalls | None = None,
        *,
        mountinfo: str = "/proc/self/mountinfo",
    ) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.sys = syscalls if syscalls is not None else _default_syscalls()
        self.mountinfo = mountinfo

    # paths and metadata

    def path(self, key: str) -> str:
        if not _KEY.fullmatch(key):
            raise SnapshotError(f"invalid snapshot key {key!r}")
        return os.path.join(self.root, "snapshots", key)

    def _meta(self, key: str) -> dict[str, object]:
        snap = self.path(key)
        try:
            with open(os.path.join(snap, _META), encoding="utf-8") as meta:
                value = json.load(meta)
        except FileNotFoundError:
            raise SnapshotError(f"snapshot {key!r} does not exist") from None
        except (OSError, ValueError) as exc:
            raise SnapshotError(f"snapshot {key!r}: unreadable {_META}: {exc}") from exc
        if not isinstance(value, dict) or value.get("kind") != self.kind:
            raise SnapshotError(f"snapshot {key!r} is not a {self.kind} snapshot")
        return value

    def _lowers(self, meta: dict[str, object]) -> list[str]:
        lowers = meta.get("lowers")
        if not isinstance(lowers, list):
            raise SnapshotError(f"snapshot metadata without layers: {meta!r}")
        return [str(d) for d in lowers]

    def _record_target(self, key: str, target: str) -> None:
        meta = self._meta(key)
        targets = meta.setdefault("targets", [])
        assert isinstance(targets, list)
        if target not in targets:
            targets.append(target)
            _write_json(os.path.join(self.path(key), _META), meta)

    def _create(self, key: str, lower_dirs: Sequence[str | os.PathLike[str]]) -> list[str]:
        snap = self.path(key)
        lowers = [os.path.abspath(os.fspath(d)) for d in lower_dirs]
        if len(lowers) > _MAX_LAYERS:
            raise SnapshotError(f"snapshot {key!r}: {len(lowers)} layers, at most {_MAX_LAYERS}")
        for lower in lowers:
            if not os.path.isdir(lower):
                raise SnapshotError(f"snapshot {key!r}: layer dir {lower} does not exist")
        os.makedirs(os.path.dirname(snap), exist_ok=True)
        try:
            os.mkdir(snap, 0o700)
        except FileExistsError:
            raise SnapshotError(f"snapshot {key!r} already exists") from None
        return lowers

    # mounts

    def mounted(self, key: str) -> list[str]:
        """Mount points (deepest first) that belong to the snapshot."""
        snap = self.path(key)
        try:
            recorded = self._meta(key).get("targets")
        except SnapshotError:
            recorded = None
        targets = {str(t) for t in recorded} if isinstance(recorded, list) else set()
        found = []
        for mount_point, source in self._mount_table():
            if (
                source == snap
                or mount_point in targets
                or mount_point == snap
                or mount_point.startswith(snap + "/")
            ):
                found.append(mount_point)
        return sorted(set(found), key=len, reverse=True)

    def _mount_table(self) -> list[tuple[str, str]]:
        table = []
        try:
            with open(self.mountinfo, encoding="utf-8", errors="surrogateescape") as info:
                for line in info:
                    fields = line.split()
                    if " - " not in line or len(fields) < 5:
                        continue
                    after = line.split(" - ", 1)[1].split()
                    source = after[1] if len(after) > 1 else ""
                    table.append((_unescape_mountinfo(fields[4]), _unescape_mountinfo(source)))
        except OSError as exc:
            raise SnapshotError(f"cannot read {self.mountinfo}: {exc.strerror}") from exc
        return table

    def unmount(self, target: str | os.PathLike[str]) -> None:
        """Unmounts `target`; detaches it if busy; nothing if it is not a mount point."""
        path = os.path.abspath(os.fspath(target))
        try:
            self.sys.umount2(path, 0)
        except SyscallFailed as exc:
            if exc.errno in (errno.EINVAL, errno.ENOENT):
                return
            if exc.errno != errno.EBUSY:
                raise SnapshotError(f"cannot unmount {path}: {exc.strerror}") from exc
            try:
                self.sys.umount2(path, MNT_DETACH)
            except SyscallFailed as exc2:
                raise SnapshotError(f"cannot detach {path}: {exc2.strerror}") from exc2

    def remove(self, key: str) -> None:
        """Unmounts (detaching if busy) every mount of the snapshot, then deletes it.

        Removing a snapshot that does not exist does nothing.
        """
        snap = self.path(key)
        if not os.path.lexists(snap):
            return
        for _ in range(8):  # stacked mounts on one target need one pass each
            points = self.mounted(key)
            if not points:
                break
            for point in points:
                try:
                    self.sys.umount2(point, MNT_DETACH)
                except SyscallFailed as exc:
                    if exc.errno not in (errno.EINVAL, errno.ENOENT):
                        raise SnapshotError(
                            f"snapshot {key!r}: cannot detach {point}: {exc.strerror}"
                        ) from exc
        else:
            raise SnapshotError(f"snapshot {key!r}: still mounted at {self.mounted(key)}")
        try:
            shutil.rmtree(snap)
        except OSError as exc:
            raise SnapshotError(f"snapshot {key!r}: cannot remove {snap}: {exc}") from exc

    def usage(self, key: str) -> Usage:
        return _usage(self._data_dir(key))

    def _data_dir(self, key: str) -> str:
        raise NotImplementedError


class OverlaySnapshotter(_Snapshotter):
    """Snapshots as overlayfs mounts of the layer dirs plus a per-snapshot upper dir."""

    kind = "overlay"

    def prepare(self, key: str, lower_dirs: Sequence[str | os.PathLike[str]]) -> Mount:
        """Creates the snapshot dirs; `lower_dirs` top layer first. Does not mount."""
        lowers = self._create(key, lower_dirs)
        snap = self.path(key)
        try:
            for name, mode in (("upper", 0o755), ("work", 0o700), ("merged", 0o755)):
                os.mkdir(os.path.join(snap, name), mode)
            if not lowers:  # overlayfs needs a lower dir: an empty one
                os.mkdir(os.path.join(snap, "empty"), 0o755)
                lowers = [os.path.join(snap, "empty")]
            mount = self._describe(snap, lowers, create_links=True)
            _write_json(os.path.join(snap, _META), {"kind": self.kind, "lowers": lowers})
        except BaseException:
            shutil.rmtree(snap, ignore_errors=True)
            raise
        return mount

    def describe(self, key: str) -> Mount:
        """The mount description of an existing snapshot."""
        return self._describe(self.path(key), self._lowers(self._meta(key)), create_links=False)

    def _describe(self, snap: str, lowers: list[str], *, create_links: bool) -> Mount:
        upper = os.path.join(snap, "upper")
        work = os.path.join(snap, "work")
        options = (f"lowerdir={':'.join(lowers)}", f"upperdir={upper}", f"workdir={work}")
        data = ",".join(options)
        limit = os.sysconf("SC_PAGE_SIZE") - 1
        paths = [*lowers, upper, work]
        if len(data) <= limit and not any(c in p for p in paths for c in _OVERLAY_SPECIAL):
            return Mount("overlay", snap, options, None, tuple(lowers), upper, work)
        links = os.path.join(snap, "l")
        if create_links:
            os.mkdir(links, 0o700)
            for index, lower in enumerate(lowers):
                os.symlink(lower, os.path.join(links, str(index)))
        relative = ":".join(f"l/{index}" for index in range(len(lowers)))
        options = (f"lowerdir={relative}", "upperdir=upper", "workdir=work")
        if len(",".join(options)) > limit:
            raise SnapshotError(f"snapshot {snap}: overlay options too long even with links")
        return Mount("overlay", snap, options, snap, tuple(lowers), upper, work)

    def mount(self, key: str, target: str | os.PathLike[str] | None = None) -> str:
        """Mounts the snapshot on `target` (default: its merged dir); returns the target."""
        mount = self.describe(key)
        path = os.path.join(self.path(key), "merged") if target is None else os.fspath(target)
        path = os.path.abspath(path)
        self._record_target(key, path)
        mount_overlay(self.sys, mount, path)
        return path

    def _data_dir(self, key: str) -> str:
        self._meta(key)
        return os.path.join(self.path(key), "upper")


def mount_overlay(syscalls: Syscalls, mount: Mount, target: str) -> None:
    """Mounts an overlay `Mount` on `target` (absolute), from `mount.cwd` when set."""
    try:
        if mount.cwd is None:
            syscalls.mount(mount.source, target, "overlay", 0, mount.data)
            return
        with _CWD_LOCK:
            saved = os.open(".", _O_DIR)
            try:
                os.chdir(mount.cwd)
                syscalls.mount(mount.source, target, "overlay", 0, mount.data)
            finally:
                os.fchdir(saved)
                os.close(saved)
    except SyscallFailed as exc:
        raise SnapshotError(f"cannot mount overlay {mount.source} on {target}: {exc}") from exc


class CopySnapshotter(_Snapshotter):
    """Snapshots as merged copies of the layers, bind-mounted (no overlayfs needed)."""

    kind = "copy"

    def __init__(
        self,
        root: str | os.PathLike[str],
        syscalls: Syscalls | None = None,
        *,
        hardlink: bool = False,
        mountinfo: str = "/proc/self/mountinfo",
    ) -> None:
        super().__init__(root, syscalls, mountinfo=mountinfo)
        self.hardlink = hardlink

    def prepare(self, key: str, lower_dirs: Sequence[str | os.PathLike[str]]) -> Mount:
        """Merges the layers (`lower_dirs` top first) into the snapshot's fs dir."""
        lowers = self._create(key, lower_dirs)
        snap = self.path(key)
        fs = os.path.join(snap, "fs")
        try:
            os.mkdir(fs, 0o755)
            os.mkdir(os.path.join(snap, "merged"), 0o755)
            for lower in reversed(lowers):
                _merge_layer(lower, fs, self.hardlink)
            _write_json(os.path.join(snap, _META), {"kind": self.kind, "lowers": lowers})
        except OSError as exc:
            shutil.rmtree(snap, ignore_errors=True)
            raise SnapshotError(f"snapshot {key!r}: cannot copy layers: {exc}") from exc
        except BaseException:
            shutil.rmtree(snap, ignore_errors=True)
            raise
        return Mount("bind", fs, ("rbind", "rw"))

    def mount(self, key: str, target: str | os.PathLike[str] | None = None) -> str:
        self._meta(key)
        snap = self.path(key)
        path = os.path.join(snap, "merged") if target is None else os.fspath(target)
        path = os.path.abspath(path)
        self._record_target(key, path)
        try:
            self.sys.mount(os.path.join(snap, "fs"), path, "", MS_BIND | MS_REC)
        except SyscallFailed as exc:
            raise SnapshotError(f"cannot bind-mount snapshot {key!r} on {path}: {exc}") from exc
        return path

    def _data_dir(self, key: str) -> str:
        self._meta(key)
        return os.path.join(self.path(key), "fs")


def choose_snapshotter(
    root: str | os.PathLike[str], syscalls: Syscalls | None = None
) -> OverlaySnapshotter | CopySnapshotter:
    """An OverlaySnapshotter if an overlay mount works under `root`, else a CopySnapshotter.

    With the real system calls the answer is remembered in `<root>/snapshotter` (a probe
    mounts an overlay: a few milliseconds on every command otherwise); the snapshots under
    a root must all be of one kind anyway."""
    root_path = os.path.abspath(os.fspath(root))
    calls = syscalls if syscalls is not None else _default_syscalls()
    remembered = os.path.join(root_path, "snapshotter")
    kind = ""
    if syscalls is None:
        try:
            with open(remembered) as f:
                kind = f.read().strip()
        except OSError:
            kind = ""
    if kind not in ("overlay", "copy"):
        kind = "overlay" if _probe_overlay(root_path, calls) else "copy"
        if syscalls is None:
            # a unique name: threads of one process (parallel build stages) choose at once
            fd, tmp = tempfile.mkstemp(prefix="snapshotter.", suffix=".tmp", dir=root_path)
            with os.fdopen(fd, "w") as f:
                f.write(kind + "\n")
            os.replace(tmp, remembered)
    if kind == "overlay":
        return OverlaySnapshotter(root_path, calls)
    return CopySnapshotter(root_path, calls)


def _probe_overlay(root: str, calls: Syscalls) -> bool:
    os.makedirs(root, exist_ok=True)
    probe = tempfile.mkdtemp(prefix=".overlay-probe-", dir=root)
    merged = os.path.join(probe, "merged")
    try:
        for name in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(probe, name))
        with open(os.path.join(probe, "lower", "probe"), "w"):
            pass
        data = f"lowerdir={probe}/lower,upperdir={probe}/upper,workdir={probe}/work"
        try:
            calls.mount("overlay", merged, "overlay", 0, data)
        except SyscallFailed:
            return False
        try:
            return os.path.exists(os.path.join(merged, "probe"))
        finally:
            try:
                calls.umount2(merged, MNT_DETACH)
            except SyscallFailed:
                pass
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _usage(path: str) -> Usage:
    seen: set[tuple[int, int]] = set()
    size = 0
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(top, name))
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            size += st.st_blocks * 512
    return Usage(size, len(seen))
