"""COPY and ADD: Docker's rules for where things go, written into a mounted image.

- A directory source copies its contents; a file goes to DEST, or into DEST when DEST ends
  with "/" or is a directory already; several sources need a DEST ending with "/".
  A relative DEST is taken from the WORKDIR. `--parents` keeps each source's path.
- Files belong to 0:0, or to `--chown` (names looked up in the image's /etc/passwd and
  /etc/group; a user without a group gets its uid as gid, as Docker's documentation says);
  permission bits are the source's, or `--chmod`. Directories made on the way are 0755.
- ADD unpacks a local tar archive (plain, gzip, bzip2, xz) at DEST, through cove's safe
  layer extraction, keeping its owners unless `--chown`; a URL is downloaded to a file of
  mode 0600. Heredocs make files (0644).
- Everything is written through directory fds inside the image's root: the image's own
  symlinks on the way to DEST are followed inside that root only.

mtimes: copied files get the build's timestamp (0 by default), so a layer never depends on
when the context was checked out; an archive's members keep theirs (the layer clamps them).
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import IO, cast

from cove.engine.build_sources import (
    Source,
    SourceRoot,
    archive_compression,
    content_hash,
    download,
    is_url,
    single_entries,
    url_file_name,
)
from cove.engine.file_tree import Entry
from cove.engine.rootfs_path import open_in_root, split
from cove.engine.users import parse_group, parse_passwd, read_image_file
from cove.errors import DockerfileError
from cove.image.build.ignore import IgnoreRules
from cove.image.build.instructions import Add, Copy

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class CopyJob:
    """A COPY/ADD with its sources resolved: what `perform` writes."""

    keyword: str
    sources: list[Source]
    dest: str  # absolute; a trailing "/" kept
    root: SourceRoot | None
    chown: str | None
    chmod: int | None
    parents: bool
    excludes: IgnoreRules | None
    content: str  # the content hash (the cache key's part)

    @property
    def created_by(self) -> str:
        """Docker's history text: `COPY file:HASH in /dest `."""
        if len(self.sources) == 1:
            kind = "dir" if self.sources[0].is_dir else "file"
        else:
            kind = "multi"
        return f"{self.keyword} {kind}:{self.content} in {self.dest} "


def destination(dest: str, workdir: str) -> str:
    """DEST made absolute against the WORKDIR, its trailing slash kept."""
    slash = dest.endswith("/") or dest in (".", "..") or dest.endswith(("/.", "/.."))
    path = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    path = posixpath.normpath(path)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    return path.rstrip("/") + "/" if slash and path != "/" else path


def parse_chmod(value: str | None, keyword: str, file: str, line: int) -> int | None:
    if value is None:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o7777:
        raise DockerfileError(f"{keyword} --chmod={value}: expected an octal mode such as 755",
                              file=file, line=line)  # fmt: skip
    return mode


def prepare(
    instruction: Copy | Add,
    *,
    root: SourceRoot | None,
    workdir: str,
    download_dir: str,
    file: str,
) -> CopyJob:
    """Resolve the sources of `instruction` (expanded); DockerfileError names the line."""
    keyword, line = instruction.keyword, instruction.line
    sources: list[Source] = []
    for written in instruction.sources:
        if written.startswith(("git@", "git://")) or (is_url(written) and ".git" in written):
            raise DockerfileError(f"{keyword} {written}: git sources are not supported",
                                  file=file, line=line)  # fmt: skip
        if isinstance(instruction, Add) and is_url(written):
            path = download(written, download_dir, checksum=instruction.checksum, file=file,
                            line=line)  # fmt: skip
            name = url_file_name(written)
            if not name and not instruction.dest.endswith("/"):
                name = posixpath.basename(instruction.dest)
            if not name:
                raise DockerfileError(f"ADD {written}: cannot tell a file name from the URL",
                                      file=file, line=line)  # fmt: skip
            sources.append(Source(written, name=name, file=path, mode=0o600))
            continue
        assert root is not None
        for source in root.resolve(written, keyword=keyword, file=file, line=line):
            if (
                isinstance(instruction, Add)
                and instruction.unpack is not False
                and root.context
                and not source.is_dir
                and archive_compression(os.path.join(root.path, source.rel)) is not None
            ):
                source = Source(source.label, source.rel, False, source.name, archive=True)
            sources.append(source)
    for doc in instruction.heredocs:
        data = doc.content.encode("utf-8", "surrogateescape")
        sources.append(Source(f"<<{doc.name}", name=doc.name, data=data, mode=0o644))
    if not sources:
        raise DockerfileError(f"{keyword}: no source files were specified", file=file, line=line)
    dest = destination(instruction.dest, workdir)
    if len(sources) > 1 and not dest.endswith("/"):
        raise DockerfileError(
            f"{keyword}: with more than one source the destination must be a directory and "
            f"end with a / ({instruction.dest})", file=file, line=line,
        )  # fmt: skip
    excludes = IgnoreRules.from_patterns(instruction.excludes) if instruction.excludes else None
    parents = isinstance(instruction, Copy) and instruction.parents
    content = content_hash(root, sources, excludes)
    return CopyJob(keyword, sources, dest, root, instruction.chown,
                   parse_chmod(instruction.chmod, keyword, file, line), parents, excludes,
                   content)  # fmt: skip


def resolve_chown(rootfs: str, spec: str, keyword: str, file: str, line: int) -> tuple[int, int]:
    """`--chown=user[:group]` with the names of the image at `rootfs`."""
    user, sep, group = spec.partition(":")

    def fail(why: str) -> DockerfileError:
        return DockerfileError(f"{keyword} --chown={spec}: {why}", file=file, line=line)

    if not user:
        raise fail("no user given")
    if user.isdigit():
        uid = int(user)
    else:
        text = read_image_file(rootfs, "/etc/passwd")
        found = [e.uid for e in parse_passwd(text or "") if e.name == user]
        if not found:
            raise fail(f"unable to find user {user!r} in the image's /etc/passwd")
        uid = found[0]
    if not sep or not group:
        return uid, uid
    if group.isdigit():
        return uid, int(group)
    text = read_image_file(rootfs, "/etc/group")
    groups = [e.gid for e in parse_group(text or "") if e.name == group]
    if not groups:
        raise fail(f"unable to find group {group!r} in the image's /etc/group")
    return uid, groups[0]


def make_dir(target: str, path: str, user: str, *, file: str, line: int) -> bool:
    """WORKDIR: make the folder `path` in the image mounted at `target` when it is not
    there, owned by the image's USER (root when it cannot be resolved). True if made."""
    root_fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        writer = _Writer(root_fd, (0, 0), None, 0, "WORKDIR", file, line)
        if writer.is_dir(path):
            return False
        if user:
            from cove.engine.users import resolve_user
            from cove.errors import CoveError

            try:
                found = resolve_user(target, user)
                writer.owner = (found.uid, found.gid)
            except CoveError:
                pass
        os.close(writer.ensure_dir(path))
        return True
    finally:
        os.close(root_fd)


def perform(job: CopyJob, target: str, *, mtime: int, scratch_dir: str, file: str,
            line: int) -> None:  # fmt: skip
    """Write what `job` copies into the image mounted at `target`."""
    owner = (0, 0)
    if job.chown:
        owner = resolve_chown(target, job.chown, job.keyword, file, line)
    root_fd = os.open(target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        writer = _Writer(root_fd, owner, job.chmod, mtime, job.keyword, file, line)
        for source in job.sources:
            base = job.dest
            if job.parents and source.rel:
                parent_path = source.rel if source.is_dir else posixpath.dirname(source.rel)
                base = posixpath.join(job.dest, parent_path) + "/"
            if source.is_dir:
                _copy_tree(writer, job, source, base)
            elif source.archive:
                _unpack(writer, job, source, base, scratch_dir)
            else:
                path = base
                if base.endswith("/") or writer.is_dir(base):
                    path = posixpath.join(base, source.name)
                parent, name = writer.parent_of(path)
                entries = _entries(job, source)
                try:
                    writer.put(parent, name, next(entries), top=True)
                finally:
                    entries.close()
                    os.close(parent)
    finally:
        os.close(root_fd)


def _entries(job: CopyJob, source: Source) -> Generator[Entry, None, None]:
    if source.data is not None or source.file:
        return single_entries(source)
    assert job.root is not None
    return job.root.entries(source, job.excludes)


def _copy_tree(writer: _Writer, job: CopyJob, source: Source, base: str) -> None:
    assert job.root is not None
    top = writer.ensure_dir(base, 0o755 if job.chmod is None else job.chmod)
    try:
        writer.tree(top, job.root.entries(source, job.excludes))
    finally:
        os.close(top)


def _unpack(writer: _Writer, job: CopyJob, source: Source, base: str, scratch_dir: str) -> None:
    """ADD of a local archive: extracted safely into a scratch folder first (cove's layer
    extraction refuses hostile names and links), then merged into DEST."""
    from cove.image.layer import apply_layer

    assert job.root is not None
    path = os.path.join(job.root.path, source.rel)
    kind = archive_compression(path)
    staging = os.path.join(scratch_dir, f"add-{os.urandom(8).hex()}")
    try:
        with open(path, "rb") as raw:
            stream: IO[bytes] = raw
            if kind == "bzip2":
                import bz2

                stream = cast("IO[bytes]", bz2.BZ2File(raw))
            elif kind == "xz":
                import lzma

                stream = cast("IO[bytes]", lzma.LZMAFile(raw))
            apply_layer(stream, staging, name=f"ADD {source.label}")
        with SourceRoot(staging, context=False) as unpacked:
            top = writer.ensure_dir(base)
            try:
                writer.tree(top, unpacked.entries(Source(source.label, "", True)),
                            keep_owner=not job.chown, keep_times=True)  # fmt: skip
            finally:
                os.close(top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _Writer:
    """Entries written under the root fd of a mounted image."""

    def __init__(self, root_fd: int, owner: tuple[int, int], chmod: int | None, mtime: int,
                 keyword: str, file: str, line: int) -> None:  # fmt: skip
        self.root_fd = root_fd
        self.owner = owner
        self.chmod = chmod
        self.mtime = mtime
        self.keyword, self.file, self.line = keyword, file, line

    def fail(self, path: str, why: str) -> DockerfileError:
        return DockerfileError(f"{self.keyword}: cannot write {path}: {why}", file=self.file,
                               line=self.line)  # fmt: skip

    def is_dir(self, path: str) -> bool:
        try:
            fd = open_in_root(self.root_fd, path, os.O_PATH)
        except OSError:
            return False
        try:
            return stat.S_ISDIR(os.fstat(fd).st_mode)
        finally:
            os.close(fd)

    def ensure_dir(self, path: str, mode: int = 0o755) -> int:
        """An fd of the directory `path` in the root (the image's links on the way are
        followed inside the root), made (0755, the owner) with its missing parents; `mode`
        for `path` itself when it is made."""
        flags = os.O_RDONLY | os.O_DIRECTORY
        done: list[str] = []
        try:
            fd = open_in_root(self.root_fd, "/", flags)
        except OSError as exc:
            raise self.fail("/", exc.strerror or str(exc)) from None
        try:
            parts = split(path)
            for index, part in enumerate(parts):
                done.append(part)
                prefix = "/".join(done)
                try:
                    child = open_in_root(self.root_fd, prefix, flags)
                except FileNotFoundError:
                    os.mkdir(part, 0o700, dir_fd=fd)
                    os.chown(part, *self.owner, dir_fd=fd, follow_symlinks=False)
                    made = mode if index == len(parts) - 1 else 0o755
                    os.chmod(part, made, dir_fd=fd, follow_symlinks=False)
                    child = open_in_root(self.root_fd, prefix, flags)
                os.close(fd)
                fd = child
        except NotADirectoryError:
            os.close(fd)
            raise self.fail("/" + "/".join(done), "a file is in the way of a directory") from None
        except OSError as exc:
            os.close(fd)
            raise self.fail("/" + "/".join(done), exc.strerror or str(exc)) from None
        return fd

    def parent_of(self, path: str) -> tuple[int, str]:
        parent, _, name = path.rstrip("/").rpartition("/")
        if not name or name in (".", ".."):
            raise self.fail(path, "not a file name")
        return self.ensure_dir(parent or "/"), name

    def tree(self, top: int, entries: Iterable[Entry], *, keep_owner: bool = False,
             keep_times: bool = False) -> None:  # fmt: skip
        """A source directory's entries into the directory `top` (the source's own entry,
        named "", is skipped: the directory exists)."""
        stack: list[tuple[str, int]] = [("", top)]
        try:
            for entry in entries:
                name = entry.info.name
                if not name:
                    continue
                parent_rel, _, base = name.rpartition("/")
                while stack[-1][0] != parent_rel and len(stack) > 1:
                    os.close(stack.pop()[1])
                if stack[-1][0] != parent_rel:
                    continue  # its directory was left out (an excluded one)
                made = self.put(stack[-1][1], base, entry, keep_owner=keep_owner,
                                keep_times=keep_times, tree_top=top)  # fmt: skip
                if made is not None:
                    stack.append((name, made))
        finally:
            for _, fd in stack[1:]:
                os.close(fd)

    def put(self, parent: int, name: str, entry: Entry, *, top: bool = False,
            keep_owner: bool = False, keep_times: bool = False,
            tree_top: int | None = None) -> int | None:  # fmt: skip
        """Write one entry as `name` in the directory `parent`; returns an fd of it when
        it is a directory (for its children)."""
        info = entry.info
        uid, gid = (info.uid, info.gid) if keep_owner else self.owner
        mode = info.mode & 0o7777
        if self.chmod is not None and not info.issym():
            mode = self.chmod
        mtime = info.mtime if keep_times else self.mtime
        try:
            if info.isdir():
                return self._dir(parent, name, mode, uid, gid)
            if info.ischr() and info.devmajor == 0 and info.devminor == 0:
                return None  # a whiteout from an archive: nothing to add
            self._clear(parent, name, top)
            if info.isreg():
                fd = os.open(name, _O_NEW, 0o600, dir_fd=parent)
                with os.fdopen(fd, "wb") as out:
                    if entry.data is not None:
                        shutil.copyfileobj(cast("IO[bytes]", entry.data), out, 1 << 20)
                    out.flush()
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, mode)
                    os.utime(fd, (mtime, mtime))
            elif info.issym():
                os.symlink(info.linkname, name, dir_fd=parent)
                os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
                os.utime(name, (mtime, mtime), dir_fd=parent, follow_symlinks=False)
            elif info.islnk():
                where = tree_top if tree_top is not None else parent
                link_dir, _, link_name = info.linkname.rpartition("/")
                source_dir = os.open(link_dir or ".", _O_DIR, dir_fd=where)
                try:
                    os.link(link_name, name, src_dir_fd=source_dir, dst_dir_fd=parent,
                            follow_symlinks=False)  # fmt: skip
                finally:
                    os.close(source_dir)
            elif info.isfifo() or info.ischr() or info.isblk():
                kind = (stat.S_IFIFO if info.isfifo()
                        else stat.S_IFCHR if info.ischr() else stat.S_IFBLK)  # fmt: skip
                os.mknod(name, kind | 0o600, os.makedev(info.devmajor, info.devminor),
                         dir_fd=parent)  # fmt: skip
                os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
                os.chmod(name, mode, dir_fd=parent, follow_symlinks=False)
                os.utime(name, (mtime, mtime), dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise self.fail(name, exc.strerror or str(exc)) from None
        return None

    def _dir(self, parent: int, name: str, mode: int, uid: int, gid: int) -> int:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            current = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(current.st_mode):
                os.unlink(name, dir_fd=parent)  # a file or link where a directory goes
                os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _O_DIR, dir_fd=parent)
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        return fd

    def _clear(self, parent: int, name: str, top: bool) -> None:
        try:
            current = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(current.st_mode):
            if top:
                raise self.fail(name, "cannot overwrite a directory with a file")
            shutil.rmtree(name, dir_fd=parent)
        else:
            os.unlink(name, dir_fd=parent)
