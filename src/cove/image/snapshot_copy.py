"""How `cove.image.snapshot.CopySnapshotter` builds a snapshot: layer dirs (with overlay
whiteouts and opaque dirs, as `cove.image.layer.apply_layer` writes them) merged, bottom
first, into one directory tree. Files are copied (copy_file_range), or hard-linked when
asked; hard links within a layer stay hard links.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat

_OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _remove_at(dir_fd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def _copy_xattrs(src: int | str, dst: int | str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=isinstance(src, int))
    except OSError:
        return
    for name in names:
        if name.startswith(_OVERLAY_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(src, name, follow_symlinks=isinstance(src, int))
            os.setxattr(dst, name, value, follow_symlinks=isinstance(dst, int))
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES):
                raise


def _set_meta(fd: int, st: os.stat_result) -> None:
    if os.geteuid() == 0:
        os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    os.utime(fd, ns=(st.st_mtime_ns, st.st_mtime_ns))


def _copy_data(src: int, dst: int, size: int) -> None:
    offset = 0
    try:
        while offset < size:
            done = os.copy_file_range(src, dst, size - offset)
            if done == 0:
                break
            offset += done
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    os.lseek(src, offset, os.SEEK_SET)
    os.lseek(dst, offset, os.SEEK_SET)
    while chunk := os.read(src, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(dst, view) :]


class _Merger:
    def __init__(self, dest_fd: int, hardlink: bool) -> None:
        self.dest = dest_fd
        self.hardlink = hardlink
        self.links: dict[tuple[int, int], str] = {}  # first copy, relative to dest

    def merge(self, src_fd: int, dst_fd: int, prefix: str = "") -> None:
        with os.scandir(src_fd) as it:
            names = sorted((e.name for e in it), key=os.fsencode)
        for name in names:
            st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISCHR(mode) and st.st_rdev == 0:  # whiteout
                _remove_at(dst_fd, name)
            elif stat.S_ISDIR(mode):
                self._directory(src_fd, dst_fd, name, st, prefix + name + "/")
            elif stat.S_ISSOCK(mode):
                continue
            else:
                _remove_at(dst_fd, name)
                self._other(src_fd, dst_fd, name, st, prefix + name)

    def _directory(
        self, src_fd: int, dst_fd: int, name: str, st: os.stat_result, prefix: str
    ) -> None:
        src = os.open(name, _O_DIR, dir_fd=src_fd)
        try:
            try:
                opaque = os.getxattr(src, "trusted.overlay.opaque") == b"y"
            except OSError:
                opaque = False
            try:
                existing = os.stat(name, dir_fd=dst_fd, follow_symlinks=False)
                keep = stat.S_ISDIR(existing.st_mode) and not opaque
            except FileNotFoundError:
                keep = None
            if keep is False:
                _remove_at(dst_fd, name)
            if not keep:
                os.mkdir(name, 0o700, dir_fd=dst_fd)
            dst = os.open(name, _O_DIR, dir_fd=dst_fd)
            try:
                self.merge(src, dst, prefix)
                _copy_xattrs(src, dst)
                _set_meta(dst, st)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def _other(self, src_fd: int, dst_fd: int, name: str, st: os.stat_result, path: str) -> None:
        mode = st.st_mode
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key) if st.st_nlink > 1 else None
            if first is not None:  # a hard link within the layer stays one
                os.link(first, name, src_dir_fd=self.dest, dst_dir_fd=dst_fd)
                return
            if self.hardlink:
                try:
                    os.link(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                    return
                except OSError as exc:
                    if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                        raise
            src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                dst = os.open(name, flags, 0o600, dir_fd=dst_fd)
                try:
                    _copy_data(src, dst, st.st_size)
                    _copy_xattrs(src, dst)
                    _set_meta(dst, st)
                finally:
                    os.close(dst)
            finally:
                os.close(src)
            if st.st_nlink > 1:
                self.links[key] = path
            return
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src_fd), name, dir_fd=dst_fd)
        else:
            os.mknod(name, mode, st.st_rdev, dir_fd=dst_fd)
            os.chmod(name, stat.S_IMODE(mode), dir_fd=dst_fd)
        if os.geteuid() == 0:
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_fd, follow_symlinks=False)
        os.utime(name, ns=(st.st_mtime_ns, st.st_mtime_ns), dir_fd=dst_fd, follow_symlinks=False)


def _merge_layer(layer: str, dest: str, hardlink: bool) -> None:
    """Applies one layer dir (overlay whiteouts and opaque dirs) on top of `dest`."""
    src = os.open(layer, _O_DIR)
    dst = os.open(dest, _O_DIR)
    try:
        _Merger(dst, hardlink).merge(src, dst)
        _copy_xattrs(src, dst)
        _set_meta(dst, os.fstat(src))
    finally:
        os.close(src)
        os.close(dst)


def merge_layers(layers: list[str], dest: str) -> None:
    """The merged tree of layer dirs (bottom first) copied into the empty folder `dest`."""
    for layer in layers:
        _merge_layer(layer, dest, hardlink=False)
