"""File trees as streams of entries, for `cove cp` and `cove export`: read from a directory
(by fd, never following a link by name), from a tar, written to a tar or into a directory
(inside a root, as `cove.engine.rootfs_path` resolves paths).

An entry is a `tarfile.TarInfo` whose `name` is the path below the copy's top ("" for the
top itself), with its content (regular files) as an open stream. A hard link's `linkname`
is the relative path of the first entry of that inode.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, BinaryIO, Protocol

from cove.engine.rootfs_path import open_in_root, split
from cove.errors import CoveError

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TAR_BUFSIZE = 64 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass
class Entry:
    info: tarfile.TarInfo
    data: Readable | None = None


class CopyError(CoveError):
    """A file cannot be read or written while copying."""


# --- reading a directory ---------------------------------------------------------------


@dataclass
class TreeReader:
    """Entries of the tree at an fd (an O_PATH fd is fine). Does not descend into another
    file system unless its device is in `allowed_devices` (a running container's volumes;
    its /proc, /sys and /dev are not copied)."""

    allowed_devices: frozenset[int] = frozenset()
    _links: dict[tuple[int, int], str] = field(default_factory=dict)

    def entries(self, fd: int) -> Iterator[Entry]:
        info = os.fstat(fd)
        if stat.S_ISLNK(info.st_mode):
            entry = _info("", info, tarfile.SYMTYPE)
            entry.linkname = os.readlink("", dir_fd=fd)
            yield Entry(entry)
        elif stat.S_ISDIR(info.st_mode):
            dir_fd = os.open(".", _O_DIR & ~os.O_NOFOLLOW, dir_fd=fd)
            try:
                yield Entry(_info("", info, tarfile.DIRTYPE))
                yield from self._children(dir_fd, "", info.st_dev)
            finally:
                os.close(dir_fd)
        else:
            yield from self._leaf(fd, "", "", info, by_fd=True)

    def _children(self, dir_fd: int, prefix: str, device: int) -> Iterator[Entry]:
        with os.scandir(dir_fd) as listing:
            names = sorted((e.name for e in listing), key=os.fsencode)
        for name in names:
            rel = prefix + name
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we copy (a running container)
            if stat.S_ISDIR(info.st_mode):
                yield Entry(_info(rel, info, tarfile.DIRTYPE))
                if info.st_dev != device and info.st_dev not in self.allowed_devices:
                    continue  # a mount point (proc, sysfs, devices): kept empty
                try:
                    child = os.open(name, _O_DIR, dir_fd=dir_fd)
                except FileNotFoundError:
                    continue
                try:
                    yield from self._children(child, rel + "/", info.st_dev)
                finally:
                    os.close(child)
            else:
                yield from self._leaf(dir_fd, name, rel, info, by_fd=False)

    def _leaf(
        self, dir_fd: int, name: str, rel: str, info: os.stat_result, *, by_fd: bool
    ) -> Iterator[Entry]:
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            entry = _info(rel, info, tarfile.SYMTYPE)
            entry.linkname = os.readlink(name, dir_fd=dir_fd)
            yield Entry(entry)
        elif stat.S_ISREG(mode):
            key = (info.st_dev, info.st_ino)
            if info.st_nlink > 1 and key in self._links:
                entry = _info(rel, info, tarfile.LNKTYPE)
                entry.linkname = self._links[key]
                yield Entry(entry)
                return
            if info.st_nlink > 1:
                self._links[key] = rel
            if by_fd:
                fd = os.open(f"/proc/self/fd/{dir_fd}", os.O_RDONLY | os.O_CLOEXEC)
            else:
                try:
                    fd = os.open(name, _O_READ, dir_fd=dir_fd)
                except FileNotFoundError:
                    return
            with os.fdopen(fd, "rb") as data:
                current = os.fstat(fd)
                entry = _info(rel, current, tarfile.REGTYPE)
                entry.size = current.st_size
                yield Entry(entry, _Exactly(data, current.st_size))
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = (tarfile.FIFOTYPE if stat.S_ISFIFO(mode)
                    else tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE)  # fmt: skip
            entry = _info(rel, info, kind)
            if kind != tarfile.FIFOTYPE:
                entry.devmajor, entry.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
            yield Entry(entry)
        # sockets: not representable in a tar, skipped (as docker does)


class _Exactly:
    """A file's content cut or padded to the size announced in its header (a running
    container may change it while it is copied)."""

    def __init__(self, raw: BinaryIO, size: int) -> None:
        self.raw = raw
        self.left = size

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        want = self.left if size < 0 else min(size, self.left)
        data = self.raw.read(want)
        if not data:
            data = b"\0" * want
        self.left -= len(data)
        return data


def _info(rel: str, info: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    entry = tarfile.TarInfo(rel)
    entry.type = kind
    entry.mode = stat.S_IMODE(info.st_mode)
    entry.uid = info.st_uid
    entry.gid = info.st_gid
    entry.mtime = int(info.st_mtime)
    entry.uname = entry.gname = ""
    return entry


# --- reading a tar ---------------------------------------------------------------------


def tar_entries(stream: IO[bytes]) -> Iterator[Entry]:
    """The entries of a tar stream (any compression tarfile reads), names made relative
    and normalised; a name that climbs out (`..`) is refused."""
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                member.name = relative_name(member.name)
                if member.islnk():
                    member.linkname = relative_name(member.linkname)
                data = tar.extractfile(member) if member.isreg() else None
                yield Entry(member, data)
    except tarfile.TarError as exc:
        raise CopyError(f"cannot read the tar stream: {exc}") from None


def relative_name(name: str) -> str:
    normal = posixpath.normpath("/" + name).lstrip("/")
    if any(part == ".." for part in name.split("/")) and not _stays_below(name):
        raise CopyError(f"refusing tar entry {name!r}: it points outside the destination")
    return "" if normal in (".", "") else normal


def _stays_below(name: str) -> bool:
    depth = 0
    for part in split(name):
        depth += -1 if part == ".." else 1
        if depth < 0:
            return False
    return True


# --- writing a tar ---------------------------------------------------------------------


class TarWriter:
    """Entries into a tar stream, each name under `top` (the root entry is skipped when
    `top` is "")."""

    def __init__(self, stream: IO[bytes], top: str) -> None:
        self.top = top
        self.tar = tarfile.open(
            fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_TAR_BUFSIZE
        )

    def _name(self, rel: str) -> str:
        return posixpath.join(self.top, rel) if rel else self.top

    def add(self, entry: Entry) -> None:
        info = entry.info
        name = self._name(info.name)
        if not name:
            return
        info.name = name
        if info.islnk():
            info.linkname = self._name(info.linkname)
        self.tar.addfile(info, entry.data)

    def close(self) -> None:
        self.tar.close()


# --- writing into a directory ----------------------------------------------------------


Owner = Callable[[tarfile.TarInfo], tuple[int, int]]


class TreeWriter:
    """Entries written below `base` (a path resolved inside the root `root_fd`, so that no
    link leads out of it), each at `base/top/name`; the root entry (name "") becomes
    `base/top` itself, or is skipped when `top` is "". Existing files are replaced, except
    that a directory over a directory merges. `owner` gives the uid and gid to set."""

    def __init__(self, root_fd: int, base: str, top: str, owner: Owner) -> None:
        self.root_fd = root_fd
        self.base = base
        self.top = top
        self.owner = owner
        self._dirs: dict[str, int] = {}
        self._times: list[tuple[str, float]] = []

    def _path(self, rel: str) -> str:
        return (
            posixpath.join(self.base, self.top, rel) if rel else posixpath.join(self.base, self.top)
        )

    def _parent(self, path: str) -> tuple[int, str]:
        parent, _, name = path.rstrip("/").rpartition("/")
        if not name or name == "..":
            raise CopyError(f"cannot write to {path!r}")
        return self._dir(parent), name

    def _dir(self, path: str) -> int:
        """An fd of the directory `path` (inside the root); missing ones below `base` are
        made (a tar need not list every parent)."""
        fd = self._dirs.get(path)
        if fd is not None:
            return fd
        try:
            fd = open_in_root(self.root_fd, path or "/", os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            below_base = len(split(path)) > len(split(self.base))
            if not below_base:
                raise CopyError(f"no such directory: {path or '/'}") from None
            parent, _, name = path.rpartition("/")
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=self._dir(parent))
            fd = open_in_root(self.root_fd, path, os.O_PATH | os.O_DIRECTORY)
        except NotADirectoryError:
            raise CopyError(f"not a directory: {path}") from None
        self._dirs[path] = fd
        return fd

    def add(self, entry: Entry) -> None:
        info = entry.info
        if not info.name and not self.top:
            return
        if len(self._dirs) > 64:
            self._close_dirs()  # (only here: no fd of ours is in use)
        path = self._path(info.name)
        parent, name = self._parent(path)
        uid, gid = self.owner(info)
        try:
            if info.isdir():
                self._mkdir(parent, name, info, uid, gid, path)
            elif info.isreg():
                self._replace(parent, name)
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, 0o600, dir_fd=parent)  # fmt: skip
                with os.fdopen(fd, "wb") as out:
                    if entry.data is not None:
                        shutil.copyfileobj(entry.data, out, 1 << 20)
                    out.flush()  # before the times: a later flush would set mtime again
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, info.mode & 0o7777)
                    os.utime(fd, (info.mtime, info.mtime))
            elif info.issym():
                self._replace(parent, name)
                os.symlink(info.linkname, name, dir_fd=parent)
                os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
                os.utime(name, (info.mtime, info.mtime), dir_fd=parent, follow_symlinks=False)
            elif info.islnk():
                target_parent, target_name = self._parent(self._path(info.linkname))
                self._replace(parent, name)
                os.link(target_name, name, src_dir_fd=target_parent, dst_dir_fd=parent,
                        follow_symlinks=False)  # fmt: skip
            elif info.isfifo() or info.ischr() or info.isblk():
                kind = (stat.S_IFIFO if info.isfifo()
                        else stat.S_IFCHR if info.ischr() else stat.S_IFBLK)  # fmt: skip
                self._replace(parent, name)
                os.mknod(name, kind | 0o600, os.makedev(info.devmajor, info.devminor),
                         dir_fd=parent)  # fmt: skip
                self._node_meta(parent, name, info, uid, gid)
        except CopyError:
            raise
        except OSError as exc:
            raise CopyError(f"cannot write {path}: {exc.strerror}") from None

    def _mkdir(
        self, parent: int, name: str, info: tarfile.TarInfo, uid: int, gid: int, path: str
    ) -> None:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            current = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(current.st_mode):
                self._replace(parent, name)
                os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _O_DIR, dir_fd=parent)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, info.mode & 0o7777)
        finally:
            os.close(fd)
        self._times.append((path, info.mtime))

    def _node_meta(self, parent: int, name: str, info: tarfile.TarInfo, uid: int, gid: int) -> None:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                return  # swapped for a link meanwhile: leave it
            os.chown(f"/proc/self/fd/{fd}", uid, gid)
            os.chmod(f"/proc/self/fd/{fd}", info.mode & 0o7777)
        finally:
            os.close(fd)
        os.utime(name, (info.mtime, info.mtime), dir_fd=parent, follow_symlinks=False)

    @staticmethod
    def _replace(parent: int, name: str) -> None:
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            shutil.rmtree(name, dir_fd=parent)
        except OSError as exc:
            if exc.errno != errno.EPERM:  # EPERM: unlink of a directory on some systems
                raise
            shutil.rmtree(name, dir_fd=parent)

    def close(self) -> None:
        """Directory times last (writing into a directory changes its mtime)."""
        self._close_dirs()
        for path, mtime in reversed(self._times):
            with contextlib.suppress(OSError):
                fd = open_in_root(self.root_fd, path, os.O_RDONLY | os.O_DIRECTORY,
                                  follow=False)  # fmt: skip
                try:
                    os.utime(fd, (mtime, mtime))
                finally:
                    os.close(fd)

    def _close_dirs(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
