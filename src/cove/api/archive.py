"""`docker cp`: HEAD, GET and PUT /containers/{id}/archive?path=.

HEAD stats a path inside the container, GET gives it as a tar, PUT extracts a tar into a
directory of the container. Both answer with X-Docker-Container-Path-Stat: base64 of
{name, size, mode (Go's os.FileMode bits), mtime, linkTarget}, which the CLI reads to
decide how to copy.

Paths are resolved inside the container's root (`cove.engine.rootfs_path`, openat2
RESOLVE_IN_ROOT): links in the path are followed as the container would see them, never
out to the host's files; a final link is not followed (GET gives the link itself; the
CLI's -L asks again for linkTarget). A stopped container's snapshot is mounted for the
time of the copy (`cove.engine.container_rootfs`).

PUT spools the request body to a file (on disk, never whole in memory), checks all of it,
and only then extracts it. It refuses, with 400 and nothing written, a tar that climbs
out of the extraction directory: names or hard links with `..` above it, relative
symlinks that point above it (Docker's rule), entries written through a symlink the same
tar made (the classic zip-slip), and device nodes. Absolute names are
taken as relative to the directory and absolute symlink targets are kept as they are, as
Docker does: inside the container they resolve in its root, and cove never follows them
on the host. `noOverwriteDirNonDir` refuses to replace a directory with a non-directory or
the other way round; without `copyUIDGID` the files belong to the container's root.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, cast

from aiohttp import web

from cove.api.context import Engine, Services, engine_of
from cove.api.errors import ApiError, BadParameter, NotFound
from cove.api.hijack import ThreadFeed
from cove.api.query import query_bool
from cove.api.routing import Routes
from cove.errors import NoSuchContainer

if TYPE_CHECKING:
    from cove.engine.container_rootfs import RootView
    from cove.engine.file_tree import Entry
    from cove.engine.state import ContainerRecord

routes = Routes()

STAT_HEADER = "X-Docker-Container-Path-Stat"
_CHUNK = 256 * 1024

# Go's os.FileMode type bits
_GO_DIR, _GO_SYMLINK, _GO_DEVICE, _GO_PIPE, _GO_SOCKET = 1 << 31, 1 << 27, 1 << 26, 1 << 25, 1 << 24
_GO_SETUID, _GO_SETGID, _GO_CHARDEV, _GO_STICKY = 1 << 23, 1 << 22, 1 << 21, 1 << 20


class ReadOnlyRoot(ApiError):
    status = 403


def go_file_mode(st_mode: int) -> int:
    """A stat mode as Go's os.FileMode (what the docker CLI decodes)."""
    mode = st_mode & 0o777
    if stat.S_ISDIR(st_mode):
        mode |= _GO_DIR
    elif stat.S_ISLNK(st_mode):
        mode |= _GO_SYMLINK
    elif stat.S_ISFIFO(st_mode):
        mode |= _GO_PIPE
    elif stat.S_ISSOCK(st_mode):
        mode |= _GO_SOCKET
    elif stat.S_ISBLK(st_mode):
        mode |= _GO_DEVICE
    elif stat.S_ISCHR(st_mode):
        mode |= _GO_DEVICE | _GO_CHARDEV
    if st_mode & stat.S_ISUID:
        mode |= _GO_SETUID
    if st_mode & stat.S_ISGID:
        mode |= _GO_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= _GO_STICKY
    return mode


def _mtime(info: os.stat_result) -> str:
    seconds, fraction = divmod(info.st_mtime_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def path_stat(path: str, info: os.stat_result, link_target: str) -> dict[str, Any]:
    """Docker's ContainerPathStat of `path` (name as Go's filepath.Base of it)."""
    stripped = path.rstrip("/")
    name = posixpath.basename(stripped) if stripped else "/"
    return {"name": name, "size": info.st_size, "mode": go_file_mode(info.st_mode),
            "mtime": _mtime(info), "linkTarget": link_target}  # fmt: skip


def stat_header(document: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()


def _path_param(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise BadParameter("Path cannot be empty")
    return path if path.startswith("/") else "/" + path


@contextmanager
def _root_of(s: Services, term: str) -> Iterator[RootView]:
    from cove.engine.container_rootfs import container_root

    try:
        record = s.containers.get(term)
    except NoSuchContainer:
        raise NotFound(f"No such container: {term}") from None
    with container_root(s.root, s.containers.store, record) as view:
        yield view


def _missing(view: RootView, path: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {view.label}")


def _open(view: RootView, path: str) -> tuple[int, os.stat_result, str, dict[str, Any]]:
    """An O_PATH fd of `path` (a final link itself unless the path ends in "/"), its stat,
    the name its tar entries go under ("." for the contents of "DIR/."), its path stat."""
    from cove.engine.file_tree import CopyError
    from cove.engine.rootfs_path import open_in_root, real_path, split

    contents = path == "/" or path.endswith("/.")
    must_be_dir = contents or path.endswith("/")
    try:
        fd = open_in_root(view.fd, path, os.O_PATH, follow=must_be_dir)
    except FileNotFoundError:
        raise _missing(view, path) from None
    except NotADirectoryError:
        raise CopyError(f"not a directory: {path}") from None
    except OSError as exc:
        raise CopyError(f"cannot open {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if must_be_dir and not stat.S_ISDIR(info.st_mode):
            raise CopyError(f"not a directory: {path}")
        link = real_path(view.fd, path) if stat.S_ISLNK(info.st_mode) else ""
    except BaseException:
        os.close(fd)
        raise
    parts = split(path)
    top = "." if contents or not parts or parts[-1] == ".." else parts[-1]
    return fd, info, top, path_stat(path, info, link)


def _emit(engine: Engine, action: str, record: ContainerRecord, path: str) -> None:
    from cove.engine import events

    engine_root = engine.root
    future = asyncio.ensure_future(
        engine.run(lambda: events.emit(engine_root, action, record, path=path))
    )
    _BACKGROUND.add(future)
    future.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Future[None]] = set()


# --- HEAD and GET ----------------------------------------------------------------------------


@routes.head("/containers/{id}/archive")
async def stat_path(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    path = _path_param(request)

    def action(s: Services) -> dict[str, Any]:
        with _root_of(s, term) as view:
            fd, _, _, document = _open(view, path)
            os.close(fd)
            return document

    document = await engine_of(request).call(action)
    return web.Response(status=200, headers={STAT_HEADER: stat_header(document),
                                             "Content-Type": "application/json"})  # fmt: skip


class _FeedWriter:
    """A file object for the tar writer: its bytes go to the feed in chunks."""

    def __init__(self, feed: ThreadFeed[tuple[str, Any]]) -> None:
        self.feed = feed
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        if len(self.buffer) >= _CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self.feed.put(("data", bytes(self.buffer)))
            self.buffer.clear()


@routes.get("/containers/{id}/archive")
async def get_archive(request: web.Request) -> web.StreamResponse:
    from cove.engine.file_tree import TarWriter, TreeReader

    term = request.match_info["id"]
    path = _path_param(request)
    engine = engine_of(request)
    feed: ThreadFeed[tuple[str, Any]] = ThreadFeed(limit=8)

    def produce(out: ThreadFeed[tuple[str, Any]]) -> None:
        s = Services(engine.root)  # this thread's own (the store's connection is per thread)
        with _root_of(s, term) as view:
            fd, _, top, document = _open(view, path)
            try:
                out.put(("stat", (document, view.record)))
                writer = _FeedWriter(out)
                tar = TarWriter(cast(IO[bytes], writer), top)
                try:
                    for entry in TreeReader(view.allowed_devices).entries(fd):
                        tar.add(entry)
                finally:
                    tar.close()
                writer.flush()
            finally:
                os.close(fd)

    feed.run(produce, "archive-get")
    response: web.StreamResponse | None = None
    try:
        async for kind, value in feed:
            if kind == "stat":
                document, record = value
                response = web.StreamResponse(status=200)
                response.content_type = "application/x-tar"
                response.headers[STAT_HEADER] = stat_header(document)
                await response.prepare(request)
                _emit(engine, "archive-path", record, path)
            elif response is not None:
                await response.write(value)
    finally:
        feed.stop()
    assert response is not None
    await response.write_eof()
    return response


# --- PUT -------------------------------------------------------------------------------------


class _Body:
    """The request body as a blocking file object for a worker thread (read in pieces from
    the event loop: nothing is held whole)."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self.content = request.content
        self.loop = loop

    def read(self, size: int = -1) -> bytes:
        wanted = size if size > 0 else 1 << 16
        future = asyncio.run_coroutine_threadsafe(self.content.read(wanted), self.loop)
        return future.result()


class _Guard:
    """The checks on an uploaded tar's entries (see the module docstring): `check` in a
    first pass over the whole tar, before anything is written; `check_overwrite` as each
    entry is written (it looks at what is there)."""

    def __init__(self, root_fd: int, base: str, no_overwrite_dir_non_dir: bool) -> None:
        self.root_fd = root_fd
        self.base = base
        self.no_overwrite = no_overwrite_dir_non_dir
        self.links: set[str] = set()  # symlinks this tar makes (relative names)

    def check(self, entry: Entry) -> None:
        from cove.engine.file_tree import CopyError
        from cove.engine.rootfs_path import split

        info = entry.info
        name = info.name
        if info.ischr() or info.isblk():
            raise CopyError(f"refusing tar entry {name!r}: device files are not copied in")
        self._not_through_links(name)
        if info.islnk():
            self._not_through_links(info.linkname)
        if info.issym():
            target = info.linkname
            if not target.startswith("/"):
                depth = len(split(posixpath.dirname(name)))
                for part in split(target):
                    depth += -1 if part == ".." else 1
                    if depth < 0:
                        raise CopyError(f"refusing tar entry {name!r}: its link {target!r} "
                                        "points outside the destination")  # fmt: skip
            self.links.add(name)
        else:
            self.links.discard(name)

    def check_overwrite(self, entry: Entry) -> None:
        from cove.engine.file_tree import CopyError
        from cove.engine.rootfs_path import lstat_in_root

        info = entry.info
        if not self.no_overwrite or not info.name:
            return
        current = lstat_in_root(self.root_fd, posixpath.join(self.base, info.name))
        if current is None:
            return
        is_dir = stat.S_ISDIR(current.st_mode)
        if is_dir and not info.isdir():
            raise CopyError(f"cannot overwrite directory {info.name!r} with non-directory")
        if not is_dir and info.isdir():
            raise CopyError(f"cannot overwrite non-directory {info.name!r} with directory")

    def _not_through_links(self, name: str) -> None:
        from cove.engine.file_tree import CopyError

        parts = name.split("/")
        for end in range(1, len(parts)):
            prefix = "/".join(parts[:end])
            if prefix in self.links:
                raise CopyError(f"refusing tar entry {name!r}: it goes through the link "
                                f"{prefix!r} the same archive made")  # fmt: skip


def _read_only(view: RootView, base_fd_device: int) -> bool:
    """The container's root is read-only and `base` is on it (not on a volume)."""
    from pathlib import Path

    try:
        spec = json.loads((Path(view.record.bundle) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    if not (spec.get("root") or {}).get("readonly"):
        return False
    return os.fstat(view.fd).st_dev == base_fd_device


def _extract(
    s: Services, term: str, path: str, body: _Body, *, keep_owner: bool, no_overwrite: bool
) -> ContainerRecord:
    """Spool the upload to a file (on disk, not in memory), check all of it, then write it
    into the container: a refused tar changes nothing."""
    import shutil
    import tempfile

    from cove.engine.file_tree import CopyError, TreeWriter, tar_entries
    from cove.engine.rootfs_path import open_in_root, real_path

    with _root_of(s, term) as view:
        try:
            fd = open_in_root(view.fd, path, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            raise _missing(view, path) from None
        except NotADirectoryError:
            raise CopyError("extraction point is not a directory") from None
        try:
            if _read_only(view, os.fstat(fd).st_dev):
                raise ReadOnlyRoot("container rootfs is marked read-only")
        finally:
            os.close(fd)
        base = real_path(view.fd, path)
        guard = _Guard(view.fd, base, no_overwrite)

        def owner(info: tarfile.TarInfo) -> tuple[int, int]:
            return (info.uid, info.gid) if keep_owner else (0, 0)

        with tempfile.TemporaryFile(dir=s.root, prefix="upload-") as spool:
            shutil.copyfileobj(body, spool, _CHUNK)
            spool.seek(0)
            for entry in tar_entries(spool):  # the first pass: the whole tar is checked
                guard.check(entry)
            spool.seek(0)
            writer = TreeWriter(view.fd, base, "", owner)
            try:
                for entry in tar_entries(spool):
                    guard.check_overwrite(entry)
                    writer.add(entry)
            except OSError as exc:
                raise CopyError(f"copy failed: {exc.strerror or exc}") from None
            finally:
                writer.close()
        return view.record


@routes.put("/containers/{id}/archive")
async def put_archive(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    path = _path_param(request)
    no_overwrite = query_bool(request, "noOverwriteDirNonDir")
    keep_owner = query_bool(request, "copyUIDGID")
    engine = engine_of(request)
    body = _Body(request, asyncio.get_running_loop())
    record = await engine.call(lambda s: _extract(s, term, path, body, keep_owner=keep_owner,
                                                  no_overwrite=no_overwrite))  # fmt: skip
    _emit(engine, "extract-to-dir", record, path)
    return web.Response(status=200)
