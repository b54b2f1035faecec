"""Writing the members of a layer tar under one directory, safely (see `cove.image.layer`).

How extraction stays inside the layer directory:
- names are normalised lexically (leading "/" stripped, "." dropped, ".." resolved); a ".."
  that climbs above the layer root is rejected;
- every file system call is made relative to a file descriptor of the layer root, and the
  extractor knows which relative paths are real directories it created or checked itself
  (`_Extractor.dirs`). A parent that is not known is checked with lstat, one component at a
  time: a symlink or a non-directory in the way is rejected, never followed. The last
  component is created with O_CREAT|O_EXCL|O_NOFOLLOW (or mkdir/symlink/mknod/link, which
  never follow it either);
- hard links must name an entry extracted earlier in the same layer (and still there);
- character and block devices are skipped (with a note) unless `allow_devices=True`; a
  character device 0/0 is an overlay whiteout and is always allowed;
- PAX xattrs are applied except the overlay's own (trusted.overlay.*, user.overlay.*),
  which a layer must not forge; refusals by the file system become notes.

Whiteouts become overlayfs whiteouts: ".wh.NAME" -> character device 0/0 named NAME,
".wh..wh..opq" -> xattr trusted.overlay.opaque=y on its directory, other ".wh..wh.*" are
ignored. As the OCI image spec says, a whiteout hides only lower layers: an entry of the
same layer under that name wins (a directory then becomes opaque).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from typing import Any

from cove.errors import LayerError, LayerRejected
from cove.image.layer_format import (
    _ALLOWED_XATTR_PREFIXES,
    _O_DIR,
    _O_FILE,
    _OVERLAY_XATTR_PREFIXES,
    OPAQUE_XATTR,
    WHITEOUT_META_PREFIX,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
)
from cove.image.tar_reader import (
    _BLK,
    _CHR,
    _DIR,
    _FIFO,
    _HARDLINK,
    _REGULAR_TYPES,
    _SYMLINK,
    _Entry,
    _TarReader,
)

# --- paths -------------------------------------------------------------------------------


def _normalise(name: str, layer: str) -> str:
    """The relative path of a tar name inside the layer root ("" is the root itself)."""
    parts: list[str] = []
    for part in name.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            if not parts:
                raise LayerRejected(f"layer {layer}: entry {name!r} escapes the layer root")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _umask() -> int:
    """The process umask, read without changing it (Linux >= 4.7); 0o777 if unknown."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777  # forces an explicit fchmod for every file


# --- extraction --------------------------------------------------------------------------


class _Extractor:
    """Writes tar members under one directory fd; see the module docstring for the rules."""

    def __init__(self, root_fd: int, root_path: str, layer: str, allow_devices: bool) -> None:
        self.root = root_fd
        self.root_path = root_path
        self.layer = layer
        self.allow_devices = allow_devices
        self.as_root = os.geteuid() == 0
        self.uid = os.geteuid()
        self.gid = os.getegid()
        self.umask = _umask()
        self.dirs: set[str] = {""}  # real directories, ours or checked, ancestors included
        self.files: set[str] = set()  # non-directories extracted (hard link targets)
        self.whiteouts: set[str] = set()
        self.skipped: set[str] = set()  # device nodes not created (links to them skipped too)
        self.dir_meta: dict[str, _Entry] = {}  # applied at the end
        self.notes: list[str] = []
        self.disk_usage = 0
        self._warned_owner = False

    # errors

    def _reject(self, path: str, why: str) -> LayerRejected:
        return LayerRejected(f"layer {self.layer}: entry {path!r} {why}")

    def _oserror(self, path: str, exc: OSError) -> LayerError:
        return LayerError(f"layer {self.layer}: {path!r}: {exc.strerror or exc}")

    # directories

    def _ensure_dirs(self, path: str, entry: str) -> None:
        """Makes every component of `path` a real directory (never following a link)."""
        parts = path.split("/")
        prefix = ""
        for part in parts:
            prefix = f"{prefix}/{part}" if prefix else part
            if prefix in self.dirs:
                continue
            try:
                os.mkdir(prefix, 0o755, dir_fd=self.root)
                os.chmod(prefix, 0o755, dir_fd=self.root)  # whatever the umask
            except FileExistsError:
                st = os.stat(prefix, dir_fd=self.root, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise self._reject(entry, f"goes through symlink {prefix!r}") from None
                if prefix in self.whiteouts:
                    # a whiteout then entries below it, in one layer: an opaque dir
                    self._remove(prefix)
                    os.mkdir(prefix, 0o755, dir_fd=self.root)
                    os.chmod(prefix, 0o755, dir_fd=self.root)
                    self._set_opaque(prefix)
                elif not stat.S_ISDIR(st.st_mode):
                    raise self._reject(entry, f"is under non-directory {prefix!r}") from None
            self.dirs.add(prefix)

    def _parent(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        if parent not in self.dirs:
            self._ensure_dirs(parent, path)

    def _set_opaque(self, path: str) -> None:
        fd = self.root if path == "" else os.open(path, _O_DIR, dir_fd=self.root)
        try:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        finally:
            if fd != self.root:
                os.close(fd)

    def _remove(self, path: str) -> None:
        """Removes whatever is at `path` (a directory with its content) and forgets it."""
        st = os.stat(path, dir_fd=self.root, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, dir_fd=self.root)
            below = path + "/"
            self.dirs = {d for d in self.dirs if d != path and not d.startswith(below)}
            self.files = {f for f in self.files if not f.startswith(below)}
            self.whiteouts = {w for w in self.whiteouts if not w.startswith(below)}
            for key in [k for k in self.dir_meta if k == path or k.startswith(below)]:
                del self.dir_meta[key]
        else:
            os.unlink(path, dir_fd=self.root)
            self.files.discard(path)
            self.whiteouts.discard(path)

    # metadata

    def _chown(self, target: int | str, uid: int, gid: int) -> None:
        if not self.as_root:
            if not self._warned_owner:
                self._warned_owner = True
                self.notes.append("ownership not preserved: not running as root")
            return
        if isinstance(target, int):
            os.fchown(target, uid, gid)
        else:
            os.chown(target, uid, gid, dir_fd=self.root, follow_symlinks=False)

    def _xattrs(self, member: _Entry, path: str, target: int | str) -> None:
        for name, raw in (member.xattrs or {}).items():
            if name.startswith(_OVERLAY_XATTR_PREFIXES) or not name.startswith(
                _ALLOWED_XATTR_PREFIXES
            ):
                self.notes.append(f"xattr {name} of {path!r} ignored")
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, raw)
                else:
                    proc = f"/proc/self/fd/{self.root}/{target}"
                    os.setxattr(proc, name, raw, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES, errno.EINVAL):
                    raise
                self.notes.append(f"xattr {name} of {path!r} not set: {exc.strerror}")

    # members

    def _create(
        self, path: str, make: Any, *args: Any, is_dir: bool = False, **kwargs: Any
    ) -> bool:
        """Runs make(*args); if the name is taken, the later entry wins (tar's rule).

        Returns False when an existing directory is kept for a directory entry.
        """
        try:
            make(*args, **kwargs)
            return True
        except FileExistsError:
            pass
        st = os.stat(path, dir_fd=self.root, follow_symlinks=False)
        if is_dir and stat.S_ISDIR(st.st_mode):
            return False
        was_whiteout = path in self.whiteouts
        self._remove(path)
        make(*args, **kwargs)
        if is_dir and was_whiteout:
            self._set_opaque(path)
        return True

    def regular(self, member: _Entry, path: str, tar: _TarReader) -> None:
        mode = member.mode & 0o7777
        try:  # created with its final mode when the umask allows: saves an fchmod
            fd = os.open(path, _O_FILE, mode & 0o777, dir_fd=self.root)
        except FileExistsError:
            self._remove_existing(path)
            fd = os.open(path, _O_FILE, mode & 0o777, dir_fd=self.root)
        try:
            sparse = member.sparse
            if sparse is None:
                tar.copy_to(fd, member.size)
            else:
                for offset, size in sparse:
                    if offset < 0 or size < 0:
                        raise self._reject(path, "has a negative sparse run")
                    os.lseek(fd, offset, os.SEEK_SET)
                    tar.copy_to(fd, size)
                os.ftruncate(fd, member.size)
            if member.uid != self.uid or member.gid != self.gid:
                self._chown(fd, member.uid, member.gid)
                os.fchmod(fd, mode)  # chown cleared setuid/setgid
            elif mode & ~self.umask != mode or mode & 0o7000:
                os.fchmod(fd, mode)
            if member.xattrs:
                self._xattrs(member, path, fd)
            mtime = member.mtime
            os.utime(fd, ns=(mtime, mtime))
            self.disk_usage += os.fstat(fd).st_blocks * 512
        finally:
            os.close(fd)
        self.files.add(path)

    def _remove_existing(self, path: str) -> None:
        """A later non-directory entry replaces whatever has its name."""
        self._remove(path)

    def directory(self, member: _Entry, path: str) -> None:
        if path == "":
            self.dir_meta[""] = member
            return
        self._create(path, os.mkdir, path, 0o700, is_dir=True, dir_fd=self.root)
        self.dirs.add(path)
        self.dir_meta[path] = member

    def symlink(self, member: _Entry, path: str) -> None:
        self._create(path, os.symlink, member.linkname, path, dir_fd=self.root)
        self._finish_path(member, path, chmod=False)
        self.files.add(path)

    def hardlink(self, member: _Entry, path: str) -> None:
        target = _normalise(member.linkname, self.layer)
        if target in self.skipped:
            self.notes.append(f"hard link {path!r} to skipped {target!r} skipped")
            self.skipped.add(path)
            return
        if target == path or target not in self.files:
            raise self._reject(
                path, f"is a hard link to {member.linkname!r}, not extracted before it"
            )
        self._create(
            path,
            os.link,
            target,
            path,
            src_dir_fd=self.root,
            dst_dir_fd=self.root,
            follow_symlinks=False,
        )
        self.files.add(path)

    def special(self, member: _Entry, path: str) -> None:
        if member.type == _FIFO:
            self._create(path, os.mkfifo, path, 0o600, dir_fd=self.root)
        else:
            is_whiteout = member.type == _CHR and member.devmajor == 0 and member.devminor == 0
            if not is_whiteout and not self.allow_devices:
                self.notes.append(f"device node {path!r} skipped")
                self.skipped.add(path)
                return
            kind = stat.S_IFCHR if member.type == _CHR else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            self._create(path, os.mknod, path, kind | 0o600, device, dir_fd=self.root)
        self._finish_path(member, path, chmod=True)
        self.files.add(path)

    def whiteout(self, member: _Entry, path: str) -> None:
        parent, _, base = path.rpartition("/")
        if base == WHITEOUT_OPAQUE:
            self._set_opaque(parent)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise self._reject(path, "is not a valid whiteout")
        target = f"{parent}/{name}" if parent else name
        try:
            os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=self.root)
        except FileExistsError:
            # the same layer has the entry: it wins over the whiteout (which only hides
            # lower layers); a directory then hides the lower one entirely.
            st = os.stat(target, dir_fd=self.root, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._set_opaque(target)
            return
        self._chown(target, member.uid, member.gid)
        mtime = member.mtime
        os.utime(target, ns=(mtime, mtime), dir_fd=self.root, follow_symlinks=False)
        self.whiteouts.add(target)

    def _finish_path(self, member: _Entry, path: str, chmod: bool) -> None:
        self._chown(path, member.uid, member.gid)
        if chmod:  # fifo or device just created by us: following the name is fine
            os.chmod(path, member.mode & 0o7777, dir_fd=self.root)
        if member.xattrs:
            self._xattrs(member, path, path)
        mtime = member.mtime
        os.utime(path, ns=(mtime, mtime), dir_fd=self.root, follow_symlinks=False)

    def finish(self) -> None:
        """Directory metadata last: writing children would change their mtimes."""
        for path in sorted(self.dirs, key=len, reverse=True):
            fd = self.root if path == "" else os.open(path, _O_DIR, dir_fd=self.root)
            try:
                member = self.dir_meta.get(path)
                if member is not None:
                    self._chown(fd, member.uid, member.gid)
                    os.fchmod(fd, member.mode & 0o7777)
                    if member.xattrs:
                        self._xattrs(member, path, fd)
                    mtime = member.mtime
                    os.utime(fd, ns=(mtime, mtime))
                self.disk_usage += os.fstat(fd).st_blocks * 512
            finally:
                if fd != self.root:
                    os.close(fd)


def _extract_all(tar: _TarReader, ex: _Extractor, layer: str) -> int:
    entries = 0
    dirs = ex.dirs
    while (member := tar.next()) is not None:
        entries += 1
        path = _normalise(member.name, layer)
        parent, _, base = path.rpartition("/")
        kind = member.type
        try:
            if parent not in dirs and path != "":
                ex._parent(path)
            if base.startswith(WHITEOUT_PREFIX):
                ex.whiteout(member, path)
            elif kind in _REGULAR_TYPES:
                if path == "":
                    raise ex._reject(member.name, "is a file at the layer root")
                ex.regular(member, path, tar)
            elif kind == _DIR:
                ex.directory(member, path)
            elif path == "":
                raise ex._reject(member.name, "replaces the layer root")
            elif kind == _SYMLINK:
                ex.symlink(member, path)
            elif kind == _HARDLINK:
                ex.hardlink(member, path)
            elif kind == _FIFO or kind == _CHR or kind == _BLK:
                ex.special(member, path)
            else:
                ex.notes.append(f"entry {path!r} of unknown type {kind!r} skipped")
        except OSError as exc:
            raise ex._oserror(path, exc) from exc
    return entries
