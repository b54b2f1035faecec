"""The build context of POST /build: its directory under `ROOT/tmp/build-contexts/`,
the tar of the request body (or of a loopback `remote` URL) extracted into it safely, and
the Dockerfile and ignore files resolved inside it; see `cove.api.build`."""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import os
import secrets
import shutil
import stat
import tarfile
import zlib
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from aiohttp import web

from cove.api.errors import BadParameter, NotImplementedHere

if TYPE_CHECKING:
    from cove.engine.build_git import GitSource

CONTEXTS_DIR = "build-contexts"  # under ROOT/tmp
READ_CHUNK = 1 << 20
REMOTE_TIMEOUT_S = 60.0
MAX_REMOTE_DOCKERFILE = 4 << 20


# --- the context directory -------------------------------------------------------------


def contexts_dir(root: str) -> str:
    return os.path.join(root, "tmp", CONTEXTS_DIR)


def new_context_dir(root: str) -> str:
    """A fresh directory for one build's context (`PID-TOKEN`), after removing those of
    servers that are gone."""
    parent = contexts_dir(root)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    remove_stale(parent)
    path = os.path.join(parent, f"{os.getpid()}-{secrets.token_hex(8)}")
    os.mkdir(path, 0o700)
    return path


def remove_stale(parent: str) -> list[str]:
    """Remove the context directories whose server process no longer exists."""
    removed: list[str] = []
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return removed
    for name in names:
        pid_text = name.split("-", 1)[0]
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        remove_tree(os.path.join(parent, name))
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


# --- extracting the context ------------------------------------------------------------


def _owner(info: tarfile.TarInfo) -> tuple[int, int]:
    if os.geteuid() == 0:
        return info.uid, info.gid
    return os.geteuid(), os.getegid()  # (unprivileged: the unit tests)


class _ContextGuard:
    """The checks `relative_name` and `TreeWriter` do not make: absolute names, special
    files, and writes through a symlink the same archive made."""

    def __init__(self) -> None:
        self.links: set[str] = set()

    def check(self, info: tarfile.TarInfo, raw_name: str) -> None:
        if raw_name.startswith("/"):
            raise BadParameter(f"invalid build context: refusing tar entry {raw_name!r}: "
                               "absolute names are not allowed")  # fmt: skip
        if info.ischr() or info.isblk() or info.isfifo():
            kind = "a FIFO" if info.isfifo() else "a device node"
            raise BadParameter(
                f"invalid build context: refusing tar entry {raw_name!r}: it is {kind}"
            )
        names = [info.name, info.linkname] if info.islnk() else [info.name]
        for name in names:
            parts = name.split("/")
            for end in range(1, len(parts)):
                if "/".join(parts[:end]) in self.links:
                    raise BadParameter(
                        f"invalid build context: refusing tar entry {raw_name!r}: it goes "
                        f"through the symlink {'/'.join(parts[:end])!r} the same archive made"
                    )
        if info.issym():
            self.links.add(info.name)
        else:
            self.links.discard(info.name)


def extract_context(stream: IO[bytes], dest: str) -> int:
    """Extract the tar read from `stream` into the directory `dest`; the number of
    entries. BadParameter for a hostile or unreadable archive."""
    from cove.engine.file_tree import CopyError, Entry, TreeWriter, relative_name

    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    writer = TreeWriter(root_fd, "/", "", _owner)
    guard = _ContextGuard()
    count = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for info in tar:
                raw_name = info.name
                info.name = relative_name(raw_name)
                if info.islnk():
                    info.linkname = relative_name(info.linkname)
                if not info.name:
                    continue  # "./": the context directory itself
                guard.check(info, raw_name)
                data = tar.extractfile(info) if info.isreg() else None
                writer.add(Entry(info, data))
                count += 1
    except CopyError as exc:
        raise BadParameter(f"invalid build context: {exc}") from None
    except tarfile.ReadError as exc:
        if "empty file" in str(exc):
            raise BadParameter(
                "no build context: send the context as a tar archive in the body"
            ) from None
        raise BadParameter(f"the build context is not a readable tar archive: {exc}") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError, ValueError) as exc:
        raise BadParameter(f"the build context is not a readable tar archive: {exc}") from None
    finally:
        try:
            writer.close()
        finally:
            os.close(root_fd)
    return count


def resolve_dockerfile(context_dir: str, given: str) -> str:
    """The Dockerfile's path as the engine should open it: `given` (by default Dockerfile,
    else Containerfile) resolved inside the context, its links too (never out of it: a
    `Dockerfile -> /etc/passwd` names the context's etc/passwd), relative to it.
    BadParameter, in dockerd's words, when that is not a file of the context."""
    from cove.engine.rootfs_path import open_in_root, real_path

    default = given in ("", "Dockerfile", "./Dockerfile")
    candidates = ["Dockerfile", "Containerfile"] if default else [given]
    root_fd = os.open(context_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for candidate in candidates:
            try:
                resolved = real_path(root_fd, candidate).lstrip("/")
                fd = open_in_root(root_fd, resolved, os.O_PATH, follow=False)
            except OSError:
                continue
            try:
                if resolved and stat.S_ISREG(os.fstat(fd).st_mode):
                    return resolved
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
    raise BadParameter(f"Cannot locate specified Dockerfile: {given or 'Dockerfile'}")


def confine_ignore_files(context_dir: str, dockerfile: str) -> list[str]:
    """The engine reads the ignore file by its path in the context: one that is a symlink
    (an API client's context may hold `.dockerignore -> /etc/shadow`) is replaced by a
    copy of its target resolved inside the context, as dockerd reads it, or removed when
    that is not a file of the context. Returns the names changed."""
    from cove.engine.rootfs_path import open_in_root, real_path

    names = [".dockerignore", ".containerignore", "Dockerfile.dockerignore",
             "Containerfile.dockerignore"]  # fmt: skip
    if dockerfile:
        names.append(f"{dockerfile}.dockerignore")
    changed = []
    root_fd = os.open(context_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in dict.fromkeys(names):
            path = os.path.join(context_dir, name)
            if not os.path.islink(path):
                continue
            data = None
            with contextlib.suppress(OSError):
                target = real_path(root_fd, name).lstrip("/")
                fd = open_in_root(root_fd, target, os.O_RDONLY | os.O_NONBLOCK)
                with os.fdopen(fd, "rb") as file:
                    if stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                        data = file.read()
            os.unlink(path)
            if data is not None:
                with open(path, "xb") as out:
                    out.write(data)
            changed.append(name)
    finally:
        os.close(root_fd)
    return changed


class BodyStream(io.RawIOBase):
    """The request body as a blocking raw file for a worker thread; wrap it in a
    BufferedReader (each read asks the event loop for what has arrived)."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self._content = request.content
        self._loop = loop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        future = asyncio.run_coroutine_threadsafe(self._content.read(len(view)), self._loop)
        data = future.result()
        view[: len(data)] = data
        return len(data)


# --- remote contexts -------------------------------------------------------------------


def fetch_remote(url: str, context_dir: str) -> str | None:
    """Fetch `url` (checked by `check_remote`: http on loopback); a tar is extracted into
    `context_dir` (None is returned), anything else is the Dockerfile's text."""
    import http.client

    from cove.engine.build_git import parse_git_url

    check_remote(url)
    source = parse_git_url(url)
    if source is not None:
        _fetch_git(source, context_dir)
        return None
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    connection = http.client.HTTPConnection(host, parts.port or 80, timeout=REMOTE_TIMEOUT_S)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            connection.request("GET", path, headers={"User-Agent": "cove-build"})
            response = connection.getresponse()
        except OSError as exc:
            raise BadParameter(f"cannot fetch the remote context {url}: {exc}") from None
        if response.status != 200:
            raise BadParameter(
                f"cannot fetch the remote context {url}: {response.status} {response.reason}"
                + (" (redirects are not followed)" if 300 <= response.status < 400 else "")
            )
        buffered = io.BufferedReader(cast(Any, response), READ_CHUNK)
        head = buffered.peek(512)[:512]
        if _is_archive(head):
            extract_context(buffered, context_dir)
            return None
        text = buffered.read(MAX_REMOTE_DOCKERFILE + 1)
        if len(text) > MAX_REMOTE_DOCKERFILE:
            raise BadParameter(f"the remote Dockerfile {url} is larger than "
                               f"{MAX_REMOTE_DOCKERFILE} bytes")  # fmt: skip
        return text.decode("utf-8", errors="replace")
    finally:
        connection.close()


def _fetch_git(source: GitSource, context_dir: str) -> None:
    """Check the repository out beside `context_dir`, then make its context folder (the
    fragment's subfolder, or all of it) `context_dir`."""
    from cove.engine.build_git import clone
    from cove.errors import BuildError

    checkout = context_dir + ".checkout"
    os.mkdir(checkout, 0o700)
    try:
        try:
            folder = clone(source, checkout)
        except BuildError as exc:
            raise BadParameter(str(exc)) from None
        os.rmdir(context_dir)
        os.rename(folder, context_dir)
    finally:
        shutil.rmtree(checkout, ignore_errors=True)


def _is_archive(head: bytes) -> bool:
    magic = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
    return head.startswith(magic) or head[257:262] == b"ustar"


def check_remote(url: str) -> None:
    """501 for what cove does not fetch; nothing here touches the network."""
    from cove.engine.build_git import parse_git_url

    source = parse_git_url(url)
    if source is not None:
        if not _loopback(source.host):
            raise NotImplementedHere(
                f"cove serve fetches git build contexts only from a loopback address, not "
                f"from {source.host or url}: clone it and send the folder as the body instead"
            )
        return
    if url.lower().startswith("ssh://"):
        raise NotImplementedHere(f"remote build contexts by ssh are not supported: {url}")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise NotImplementedHere(
            f"remote build contexts are fetched only by plain http from this machine "
            f"(http://127.0.0.1/...): {url!r} is not; send the context as the body instead"
        )
    if not _loopback(parts.hostname):
        raise NotImplementedHere(
            f"cove serve fetches remote build contexts only from a loopback address, not "
            f"from {parts.hostname}: download it and send it as the body instead"
        )


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: never looked up
