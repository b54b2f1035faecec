"""`cove cp`: files between a container and the host (or a tar stream), with Docker's rules.

    SRC is a file:  DEST missing -> written as DEST (its parent must exist; a DEST ending
                    in "/" must be an existing directory); DEST a file -> overwritten;
                    DEST a directory -> copied into it under SRC's name.
    SRC is a dir:   DEST missing -> made, with SRC's contents; DEST a file -> error;
                    DEST a directory -> SRC copied into it, or only its contents when SRC
                    ends with "/.".
    SRC "-":        a tar on stdin, extracted into the directory DEST.
    DEST "-":       a tar of SRC on stdout.

Paths inside the container are resolved inside its root (`cove.engine.rootfs_path`): no
link, absolute or made of `..`, leads to the host's files. A link that is SRC itself is
copied as a link unless `follow_link` (-L); links inside a copied tree are always copied as
links. Without `archive` (-a), files copied in belong to the container's root (0:0) and
files copied out to the caller; with it they keep their uid and gid.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from cove.engine.container_rootfs import RootView, container_root
from cove.engine.file_tree import CopyError, Entry, TarWriter, TreeReader, TreeWriter, tar_entries
from cove.engine.rootfs_path import lstat_in_root, open_in_root, real_path, split
from cove.errors import InvalidArgument

STREAM = "-"
HOST = "host"


@dataclass(frozen=True)
class Location:
    """One side of a copy: `container` "" is the host; `path` "-" is a tar stream."""

    container: str
    path: str

    @property
    def is_stream(self) -> bool:
        return not self.container and self.path == STREAM


def parse_location(text: str) -> Location:
    """Docker's CONTAINER:PATH split: an absolute path, or one whose part before ":" starts
    with ".", is a host path."""
    if text.startswith("/") or ":" not in text:
        return Location("", text)
    container, _, path = text.partition(":")
    if not container or container.startswith("."):
        return Location("", text)
    return Location(container, path)


@dataclass
class _Side:
    root_fd: int
    path: str  # as written (trailing "/" and "/." matter), absolute
    label: str  # for messages
    view: RootView | None = None

    def missing(self, path: str) -> CopyError:
        if self.view is None and self.label == HOST:
            return CopyError(f"no such file or directory: {path}")
        return CopyError(f"Could not find the file {path} in container {self.label}")


@dataclass(frozen=True)
class Copied:
    bytes: int
    files: int


def copy(
    root: str,
    source: Location,
    destination: Location,
    *,
    archive: bool = False,
    follow_link: bool = False,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
) -> Copied:
    if source.container and destination.container:
        raise InvalidArgument("copying between containers is not supported")
    if not source.container and not destination.container:
        raise InvalidArgument("must specify at least one container source")
    if source.is_stream and destination.is_stream:
        raise InvalidArgument('"-" can be only one of SRC or DEST')
    copy_in = bool(destination.container)
    if archive:

        def owner(info: tarfile.TarInfo) -> tuple[int, int]:
            return info.uid, info.gid
    elif copy_in:

        def owner(info: tarfile.TarInfo) -> tuple[int, int]:
            return 0, 0
    else:
        uid, gid = os.geteuid(), os.getegid()

        def owner(info: tarfile.TarInfo) -> tuple[int, int]:
            return uid, gid

    counter = _Counter()
    with contextlib.ExitStack() as stack:
        if source.is_stream:
            if stdin is None:
                raise InvalidArgument("no stdin to read a tar from")
            dest = stack.enter_context(_open_side(root, destination))
            base = _extraction_dir(dest)
            writer = TreeWriter(dest.root_fd, base, "", owner)
            _pump(tar_entries(stdin), writer, counter)
            return counter.result()
        src = stack.enter_context(_open_side(root, source))
        fd, info, top = _open_source(src, follow_link)
        stack.callback(os.close, fd)
        allowed = src.view.allowed_devices if src.view is not None else frozenset()
        entries = TreeReader(allowed).entries(fd)
        if destination.is_stream:
            if stdout is None:
                raise InvalidArgument("no stdout to write a tar to")
            tar = TarWriter(stdout, top)
            _pump(entries, tar, counter)
            return counter.result()
        dest = stack.enter_context(_open_side(root, destination))
        base, name = _destination(dest, stat.S_ISDIR(info.st_mode), top)
        tree = TreeWriter(dest.root_fd, base, name, owner)
        _pump(entries, tree, counter)
        return counter.result()


class _Counter:
    def __init__(self) -> None:
        self.bytes = 0
        self.files = 0

    def count(self, entry: Entry) -> None:
        self.files += 1
        if entry.info.isreg():
            self.bytes += entry.info.size

    def result(self) -> Copied:
        return Copied(self.bytes, self.files)


def _pump(entries: Iterator[Entry], sink: TarWriter | TreeWriter, counter: _Counter) -> None:
    try:
        for entry in entries:
            sink.add(entry)
            counter.count(entry)
    except OSError as exc:
        raise CopyError(f"copy failed: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError, tarfile.TarError):
            sink.close()


@contextlib.contextmanager
def _open_side(root: str, location: Location) -> Iterator[_Side]:
    if not location.container:
        path = location.path
        absolute = os.path.join(os.getcwd(), path) if not path.startswith("/") else path
        fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield _Side(fd, absolute, HOST)
        finally:
            os.close(fd)
        return
    from cove.engine.containers import ContainerService

    service = ContainerService(root)
    record = service.get(location.container)
    path = location.path if location.path.startswith("/") else "/" + location.path
    with container_root(root, service.store, record) as view:
        yield _Side(view.fd, path, view.label, view)


def _wants_dir(path: str) -> tuple[bool, bool]:
    """(ends with "/.": the contents only; ends with "/" or "/.": must be a directory)."""
    contents = path == "." or path.endswith("/.")
    return contents, contents or path.endswith("/")


def _open_source(side: _Side, follow_link: bool) -> tuple[int, os.stat_result, str]:
    """An O_PATH fd of the source, its stat, and the name its copy gets ("" for the
    contents only)."""
    contents, must_be_dir = _wants_dir(side.path)
    try:
        fd = open_in_root(side.root_fd, side.path, os.O_PATH, follow=follow_link or must_be_dir)
    except FileNotFoundError:
        raise side.missing(side.path) from None
    except NotADirectoryError:
        raise CopyError(f"not a directory: {side.path}") from None
    except OSError as exc:
        raise CopyError(f"cannot open {side.path}: {exc.strerror}") from None
    info = os.fstat(fd)
    if must_be_dir and not stat.S_ISDIR(info.st_mode):
        os.close(fd)
        raise CopyError(f"not a directory: {side.path}")
    parts = split(side.path)
    top = "" if contents or not parts or parts[-1] == ".." else parts[-1]
    return fd, info, top


def _extraction_dir(side: _Side) -> str:
    info = lstat_in_root(side.root_fd, side.path, follow=True)
    if info is None:
        raise side.missing(side.path)
    if not stat.S_ISDIR(info.st_mode):
        raise CopyError(f"extraction point is not a directory: {side.path}")
    return side.path


def _destination(side: _Side, source_is_dir: bool, top: str) -> tuple[str, str]:
    """(directory to write in, name of the copy's top there: "" for the contents)."""
    info = lstat_in_root(side.root_fd, side.path, follow=True)
    if info is not None and stat.S_ISDIR(info.st_mode):
        return side.path, top
    if info is not None:
        if source_is_dir:
            raise CopyError(f"cannot copy a directory to a file: {side.path}")
        if side.path.endswith("/"):
            raise CopyError(f"not a directory: {side.path}")
        resolved = real_path(side.root_fd, side.path)
        parent, name = posixpath.split(resolved)
        return parent, name
    if side.path.endswith("/") and not source_is_dir:
        raise CopyError(f"destination directory {side.path} must exist")
    parts = split(side.path)
    if not parts or parts[-1] == "..":
        raise CopyError(f"invalid destination {side.path}")
    parent = "/" + "/".join(parts[:-1])
    parent_info = lstat_in_root(side.root_fd, parent, follow=True)
    if parent_info is None:
        raise side.missing(parent)
    if not stat.S_ISDIR(parent_info.st_mode):
        raise CopyError(f"not a directory: {parent}")
    return parent, parts[-1]
