"""`diff_tar`: the layer tar of an overlay upper dir (for commit and the builder), the
reverse of `cove.image.layer.apply_layer`: a deterministic PAX tar, whiteouts and opaque dirs
converted back to ".wh." entries.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, BinaryIO

from cove.errors import LayerError
from cove.image.layer_format import (
    _ALLOWED_XATTR_PREFIXES,
    _O_DIR,
    _O_READ,
    _OVERLAY_XATTR_PREFIXES,
    _PAX_XATTR,
    _TAR_BUFSIZE,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
)


@dataclass(frozen=True)
class DiffSummary:
    """What `diff_tar` wrote."""

    entries: int
    bytes: int
    diff_id: str


class _HashingWriter:
    def __init__(self, raw: IO[bytes] | BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self.hash.update(data)
        self.count += len(data)
        return len(data)


def diff_tar(
    lower_dirs: Sequence[str | os.PathLike[str]],
    upper_dir: str | os.PathLike[str],
    out_stream: IO[bytes] | BinaryIO,
    *,
    mtime_clamp: int | None = None,
) -> DiffSummary:
    """Writes the layer tar of an overlay upper dir to `out_stream` (uncompressed).

    Output is deterministic: depth-first walk in byte order of names (an opaque marker
    right after its directory), PAX format, no atime/ctime, empty user/group names,
    integer mtimes (clamped to `mtime_clamp` when given), hard links within the upper
    dir as link entries to the first path in that order. Whiteout devices become
    ".wh.NAME" entries, opaque dirs get ".wh..wh..opq". `lower_dirs` (top first) give the
    data of metacopy-only upper files; an overlay redirect is refused. Sockets are
    skipped. The upper dir itself is not an entry.
    """
    upper = os.fspath(upper_dir)
    lowers = [os.fspath(d) for d in lower_dirs]
    writer = _HashingWriter(out_stream)
    try:
        root_fd = os.open(upper, _O_DIR)
    except OSError as exc:
        raise LayerError(f"upper dir {upper}: {exc.strerror}") from exc
    differ = _Differ(upper, lowers, mtime_clamp)
    try:
        with tarfile.open(  # type: ignore[call-overload]
            fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_TAR_BUFSIZE
        ) as tar:
            differ.walk(tar, root_fd, "")
    except OSError as exc:
        raise LayerError(f"upper dir {upper}: {exc.strerror or exc}") from exc
    finally:
        os.close(root_fd)
    return DiffSummary(differ.entries, writer.count, f"sha256:{writer.hash.hexdigest()}")


class _Differ:
    def __init__(self, upper: str, lowers: list[str], mtime_clamp: int | None) -> None:
        self.upper = upper
        self.lowers = lowers
        self.clamp = mtime_clamp
        self.links: dict[tuple[int, int], str] = {}
        self.entries = 0

    def _info(self, name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid = st.st_uid
        info.gid = st.st_gid
        mtime = int(st.st_mtime)
        info.mtime = mtime if self.clamp is None else min(mtime, self.clamp)
        return info

    def _xattrs(self, target: int | str, info: tarfile.TarInfo) -> dict[str, bytes]:
        """Copies xattrs to PAX headers; returns the overlay's own ones by short name."""
        try:
            names = sorted(os.listxattr(target, follow_symlinks=isinstance(target, int)))
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EPERM):
                return {}
            raise
        overlay: dict[str, bytes] = {}
        headers: dict[str, str] = {}
        for name in names:
            if name.startswith(_OVERLAY_XATTR_PREFIXES):
                suffix = name.split(".overlay.", 1)[1]
                overlay[suffix] = os.getxattr(target, name, follow_symlinks=isinstance(target, int))
            elif name.startswith(_ALLOWED_XATTR_PREFIXES):
                value = os.getxattr(target, name, follow_symlinks=isinstance(target, int))
                headers[_PAX_XATTR + name] = value.decode("utf-8", "surrogateescape")
        if headers:
            info.pax_headers = headers
        return overlay

    def walk(self, tar: tarfile.TarFile, dir_fd: int, prefix: str) -> None:
        with os.scandir(dir_fd) as it:
            names = sorted((e.name for e in it), key=os.fsencode)
        for name in names:
            path = prefix + name
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                fd = os.open(name, _O_DIR, dir_fd=dir_fd)
                try:
                    info = self._info(path, st, tarfile.DIRTYPE)
                    overlay = self._xattrs(fd, info)
                    if "redirect" in overlay:
                        raise LayerError(f"upper dir {self.upper}: {path!r} is a redirect")
                    self._add(tar, info)
                    if overlay.get("opaque") == b"y":
                        marker = self._info(path + "/" + WHITEOUT_OPAQUE, st, tarfile.REGTYPE)
                        marker.mode = 0o644
                        self._add(tar, marker)
                    self.walk(tar, fd, path + "/")
                finally:
                    os.close(fd)
            elif stat.S_ISCHR(mode) and st.st_rdev == 0:
                parent = path.rpartition("/")[0]
                wh = f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name
                self._add(tar, self._info(wh, st, tarfile.REGTYPE))
            elif stat.S_ISREG(mode):
                self._regular(tar, dir_fd, name, path, st)
            elif stat.S_ISLNK(mode):
                info = self._info(path, st, tarfile.SYMTYPE)
                info.linkname = os.readlink(name, dir_fd=dir_fd)
                self._xattrs(f"/proc/self/fd/{dir_fd}/{name}", info)
                self._add(tar, info)
            elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                kind = (
                    tarfile.FIFOTYPE
                    if stat.S_ISFIFO(mode)
                    else tarfile.CHRTYPE
                    if stat.S_ISCHR(mode)
                    else tarfile.BLKTYPE
                )
                info = self._info(path, st, kind)
                info.devmajor = os.major(st.st_rdev)
                info.devminor = os.minor(st.st_rdev)
                self._add(tar, info)
            # sockets and others: not representable in a tar, skipped

    def _regular(
        self, tar: tarfile.TarFile, dir_fd: int, name: str, path: str, st: os.stat_result
    ) -> None:
        if st.st_nlink > 1:
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                info = self._info(path, st, tarfile.LNKTYPE)
                info.linkname = first
                self._add(tar, info)
                return
            self.links[(st.st_dev, st.st_ino)] = path
        fd = os.open(name, _O_READ, dir_fd=dir_fd)
        try:
            info = self._info(path, st, tarfile.REGTYPE)
            overlay = self._xattrs(fd, info)
            if "redirect" in overlay:
                raise LayerError(f"upper dir {self.upper}: {path!r} is a redirect")
            data_fd = fd
            metacopy = "metacopy" in overlay
            if metacopy:
                data_fd = self._lower_data(path)
            try:
                info.size = os.fstat(data_fd).st_size if metacopy else st.st_size
                with open(data_fd, "rb", closefd=False, buffering=0) as data:
                    tar.addfile(info, data)
            finally:
                if data_fd != fd:
                    os.close(data_fd)
        finally:
            os.close(fd)
        self.entries += 1

    def _lower_data(self, path: str) -> int:
        for lower in self.lowers:
            try:
                return os.open(os.path.join(lower, path), _O_READ)
            except FileNotFoundError:
                continue
        raise LayerError(f"upper dir {self.upper}: no lower data for metacopy file {path!r}")

    def _add(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        tar.addfile(info)
        self.entries += 1
