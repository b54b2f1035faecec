"""POST /build: the legacy builder's protocol (what `DOCKER_BUILDKIT=0 docker build` and
docker-py's `images.build` speak), over `cove.engine.build.BuildService`.

The request
    The body is the build context as a tar (plain, gzip, bzip2 or xz). It is streamed into
    a fresh directory under `ROOT/tmp/build-contexts/` (never held in memory) and extracted
    safely: a name with `..` that climbs out of the directory, an absolute name, a device
    node or FIFO, or an entry written through a symlink the same tar made is refused (400),
    and every write is resolved inside the directory (`cove.engine.file_tree.TreeWriter`).
    The Dockerfile and the ignore files are then resolved inside the context, their
    symlinks too (as dockerd reads them), so the engine never reads a host file for them.
    The query is dockerd's: dockerfile, t (repeatable), buildargs and labels (JSON maps),
    target, nocache, pull, networkmode (default/bridge, host, none), q, platform (this
    machine's only), rm/forcerm (accepted: cove never keeps a build's containers), remote,
    version (1; BuildKit's 2 is refused). X-Registry-Config is accepted and not used (FROM
    images are pulled as `cove pull` pulls them, with the engine's stored logins).
    Resource options (memory, cpu*, shmsize, ulimits, extrahosts, ...) are not applied: a
    non-default one is named in a warning line at the top of the stream.

    `remote` (a URL instead of a body): cove fetches it only from a loopback address (a
    literal 127.0.0.0/8 or ::1 address, or `localhost`), by plain http, without following
    redirects, so a build request can never make cove serve reach the network (501
    otherwise, before any connection or name lookup). A tar answer is the context;
    anything else is the Dockerfile itself (with an empty context), as dockerd decides.
    Git URLs: 501 (clone the repository and send it as the context).

The response
    Errors found before the first step (a bad query, a hostile context, a Dockerfile that
    does not parse, an unknown target) are an HTTP status with `{"message"}`. Once the
    first step has started the answer is 200 with a stream of JSON messages, as dockerd's:
    `{"stream": "Step 1/5 : FROM busybox\\n"}`, `{"stream": " ---> Using cache\\n"}`,
    `{"stream": " ---> 1a2b3c4d5e6f\\n"}` (the step's image, 12 hex digits), the RUN output
    as it comes, then `{"aux": {"ID": "sha256:..."}}`, `Successfully built ID` and one
    `Successfully tagged NAME` per tag; a failure is the last message,
    `{"errorDetail": {"message": M}, "error": M}`. With `q=1` the messages are held back
    and the answer is only `{"stream": "sha256:...\\n"}` (on a failure: the held messages,
    then the error), as dockerd does.

Threads
    The build is blocking and long: it runs on one of the engine's worker threads. The
    reporter it calls (`StreamReporter`) hands each line to the event loop
    (`loop.call_soon_threadsafe` into an asyncio queue), and blocks the build thread while
    more than `PENDING_LIMIT` bytes wait for a slow client.

Cancellation and clean-up
    As dockerd does, a build is cancelled when its client goes away (the connection is
    checked every `POLL_S` seconds, and each failed write notices it) or the server shuts
    down: the reporter then raises `BuildCancelled` at its next call (the next line of a
    RUN step's output, or the next step), and the engine removes its partial containers
    and layers as for any failure. A RUN step that prints nothing runs to its end first:
    the reporter is the only way into the engine's build. The context directory is
    removed by the build thread once the build has ended, whatever the outcome;
    directories of a server that died (`kill -9`) are removed by the next build.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import ipaddress
import json
import logging
import os
import secrets
import shutil
import stat
import tarfile
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, cast
from urllib.parse import urlsplit

from aiohttp import web

from cove import errors
from cove.api.context import engine_of
from cove.api.errors import BadParameter, NotImplementedHere
from cove.api.hijack import stream_flag
from cove.api.routing import Routes, request_version

routes = Routes()
log = logging.getLogger("cove.api")

CONTEXTS_DIR = "build-contexts"  # under ROOT/tmp
POLL_S = 0.5  # how often a waiting handler checks that its client is still there
PENDING_LIMIT = 4 << 20  # bytes of output waiting for the client before the build waits
READ_CHUNK = 1 << 20
REMOTE_TIMEOUT_S = 60.0
MAX_REMOTE_DOCKERFILE = 4 << 20
_LINE, _DONE, _FAILED = "line", "done", "failed"

# Options dockerd applies to the build's containers that cove's builder does not take:
# name -> the values a client sends when the option is not used.
_UNUSED_OPTIONS: dict[str, tuple[str, ...]] = {
    "memory": ("", "0"),
    "memswap": ("", "0"),
    "cpushares": ("", "0"),
    "cpusetcpus": ("",),
    "cpusetmems": ("",),
    "cpuperiod": ("", "0"),
    "cpuquota": ("", "0"),
    "shmsize": ("", "0"),
    "cgroupparent": ("",),
    "ulimits": ("", "null", "[]"),
    "extrahosts": ("",),
    "cachefrom": ("", "null", "[]"),
    "isolation": ("", "default"),
}


class BuildCancelled(errors.BuildError):
    """The client of a build went away (or the server is stopping): the build stops at its
    next step."""


# --- the query -------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildOptions:
    """The query of POST /build, checked."""

    dockerfile: str = ""
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    no_cache: bool = False
    pull: bool = False
    network: str = "default"
    labels: Mapping[str, str] = field(default_factory=dict)
    quiet: bool = False
    remote: str = ""
    aux: bool = True  # {"aux": {"ID"}} (API 1.30 and later)
    warnings: tuple[str, ...] = ()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def _bool(query: Mapping[str, str], name: str) -> bool:
    value = query.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadParameter(f"invalid boolean value {query[name]!r} for query parameter {name}")


def _json_map(text: str, what: str, allow_null: bool) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise BadParameter(f"error reading {what}: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadParameter(f"error reading {what}: want a JSON object of strings")
    for key, item in value.items():
        if not isinstance(item, str) and not (allow_null and item is None):
            raise BadParameter(f"error reading {what}: the value of {key!r} is not a string")
    return value


def _network(mode: str) -> str:
    if mode in ("", "default", "bridge"):
        return "default"
    if mode in ("host", "none"):
        return mode
    raise NotImplementedHere(
        f"network mode {mode!r} is not supported for builds: RUN steps use the default "
        "network (default, bridge), host or none"
    )


def _check_platform(text: str) -> None:
    from cove.image.platform import host_platform, parse_platform

    if not text.strip():
        return
    wanted = parse_platform(text)  # InvalidArgument: 400
    host = host_platform()
    if not wanted.matches(host):
        raise NotImplementedHere(
            f"cove builds images for this machine's platform only ({host}), not {wanted}"
        )


def _check_remote(url: str) -> None:
    """501 for what cove does not fetch; nothing here touches the network."""
    lowered = url.lower()
    if lowered.startswith(("git://", "git@", "github.com/", "ssh://")) or lowered.split("#", 1)[
        0
    ].endswith(".git"):
        raise NotImplementedHere(
            f"building from a git repository ({url}) is not supported: clone it and send "
            "the directory as the build context"
        )
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


def parse_options(
    query: Mapping[str, str], tags: list[str], version: tuple[int, int]
) -> BuildOptions:
    """The query as the builder takes it; BadParameter (400) or NotImplementedHere (501)."""
    from cove.image.reference import parse_reference

    builder = query.get("version", "").strip()
    if builder not in ("", "1"):
        raise BadParameter(
            f"builder version {builder!r} is not supported: cove serve has the legacy builder "
            "only (version=1; DOCKER_BUILDKIT=0 for the docker CLI)"
        )
    if _bool(query, "squash"):
        raise BadParameter("squash is only supported with experimental mode")
    if query.get("session", "").strip():
        raise BadParameter("build sessions are not supported: cove serve has the legacy builder")
    for tag in tags:
        reference = parse_reference(tag)  # InvalidReference: 400
        if reference.digest is not None:
            raise BadParameter(f"refusing to create a tag with a digest reference: {tag}")
    _check_platform(query.get("platform", ""))
    remote = query.get("remote", "").strip()
    if remote:
        _check_remote(remote)
    build_args = {key: value for key, value in
                  _json_map(query.get("buildargs", ""), "build args", True).items()
                  if value is not None}  # fmt: skip
    warnings = tuple(
        f"[Warning] the build option {name}={query[name]} is not supported by cove and is ignored\n"
        for name, defaults in _UNUSED_OPTIONS.items()
        if query.get(name, "").strip() not in defaults
    )
    return BuildOptions(
        dockerfile=query.get("dockerfile", ""),
        tags=tuple(tags),
        build_args=build_args,
        target=query.get("target", "") or None,
        no_cache=_bool(query, "nocache"),
        pull=_bool(query, "pull"),
        network=_network(query.get("networkmode", "").strip()),
        labels=_json_map(query.get("labels", ""), "labels", False),
        quiet=_bool(query, "q"),
        remote=remote,
        aux=version >= (1, 30),
        warnings=warnings,
    )


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
    """Fetch `url` (checked by `_check_remote`: http on loopback); a tar is extracted into
    `context_dir` (None is returned), anything else is the Dockerfile's text."""
    import http.client

    _check_remote(url)
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


def _is_archive(head: bytes) -> bool:
    magic = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
    return head.startswith(magic) or head[257:262] == b"ustar"


# --- the build spec and the builder ------------------------------------------------------


@dataclass(frozen=True)
class BuildSpec:
    """What the engine is asked to build (BuildRequest's fields)."""

    context_dir: str
    dockerfile: str
    dockerfile_text: str | None
    options: BuildOptions


Builder = Callable[[str, BuildSpec, "StreamReporter"], str]
BUILDER: web.AppKey[Builder] = web.AppKey("cove_builder")  # tests put a fake here


def engine_build(root: str, spec: BuildSpec, reporter: StreamReporter) -> str:
    """The engine's build (`cove.engine.build.BuildService`)."""
    from cove.engine.build import BuildRequest, BuildService

    options = spec.options
    request = BuildRequest(
        context_dir=spec.context_dir,
        dockerfile=spec.dockerfile,
        dockerfile_text=spec.dockerfile_text,
        tags=options.tags,
        build_args=dict(options.build_args),
        target=options.target,
        no_cache=options.no_cache,
        pull=options.pull,
        network=options.network,
        labels=dict(options.labels),
    )
    return BuildService(root).build(request, reporter)


# --- the reporter: the build thread's calls as lines on the event loop --------------------


def short_id(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


class StreamReporter:
    """The engine's BuildReporter: each call becomes a `{"stream"}` line handed to the event
    loop. Called on the build thread (and, for RUN output, maybe on a reader thread)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[tuple[str, Any]],
        stop: threading.Event,
        limit: int = PENDING_LIMIT,
    ) -> None:
        self._loop = loop
        self._queue = queue
        self.stop = stop
        self._limit = limit
        self._pending = 0
        self._flow = threading.Condition()
        self._lock = threading.RLock()  # (the engine calls one at a time; this is cheap)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._line_open = False  # output that did not end with a newline

    # called by the engine

    def step(self, number: int, total: int, stage: str, text: str) -> None:
        self._check()
        with self._lock:
            self._end_output()
            self._send(f"Step {number}/{total} : {text}\n")

    def cached(self) -> None:
        self._check()
        self._send(" ---> Using cache\n")

    def output(self, data: bytes) -> None:
        self._check()  # (the engine then removes the RUN container, killing it)
        with self._lock:
            text = self._decoder.decode(data)
            if text:
                self._line_open = not text.endswith("\n")
                self._send(text)

    def step_done(self, image_id: str) -> None:
        with self._lock:
            self._end_output()
            self._send(f" ---> {short_id(image_id)}\n")
        self._check()

    def note(self, message: str) -> None:
        with self._lock:
            self._end_output()
            self._send(message if message.endswith("\n") else message + "\n")

    # the plumbing

    def _check(self) -> None:
        if self.stop.is_set():
            raise BuildCancelled("the build was cancelled: its client went away")

    def _end_output(self) -> None:
        tail = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        if tail:
            self._send(tail)
            self._line_open = not tail.endswith("\n")
        if self._line_open:
            self._send("\n")
            self._line_open = False

    def _send(self, text: str) -> None:
        size = len(text)
        with self._flow:
            while self._pending > self._limit and not self.stop.is_set():
                self._flow.wait(POLL_S)
            self._pending += size
        self.put(_LINE, text)

    def put(self, kind: str, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is closed: the server is gone
            self.stop.set()

    def drained(self, size: int) -> None:
        """`size` characters have gone out to the client (on the event loop)."""
        with self._flow:
            self._pending -= size
            self._flow.notify_all()


# --- the handler -----------------------------------------------------------------------


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode() + b"\r\n"


def error_line(message: str) -> dict[str, Any]:
    return {"errorDetail": {"message": message}, "error": message}


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _drain_body(request: web.Request) -> None:
    """Read what the client still sends, so that it reads our error instead of a reset."""
    with contextlib.suppress(Exception):
        while await request.content.read(READ_CHUNK):
            pass


@routes.post("/build")
async def build(request: web.Request) -> web.StreamResponse:
    tags = [tag for tag in request.query.getall("t", []) if tag.strip()]
    options = parse_options(request.query, tags, request_version(request))
    engine = engine_of(request)
    loop = asyncio.get_running_loop()
    context_dir = await engine.run(new_context_dir, engine.root)
    handed_over = False
    try:
        dockerfile_text: str | None = None
        if options.remote:
            dockerfile_text = await engine.run(fetch_remote, options.remote, context_dir)
            await _drain_body(request)
        else:
            body = io.BufferedReader(BodyStream(request, loop), READ_CHUNK)
            try:
                await engine.run(extract_context, body, context_dir)
            except BaseException:
                await _drain_body(request)
                raise
        dockerfile = ""
        if dockerfile_text is None:
            dockerfile = await engine.run(resolve_dockerfile, context_dir, options.dockerfile)
        await engine.run(confine_ignore_files, context_dir, dockerfile)
        spec = BuildSpec(context_dir, dockerfile, dockerfile_text, options)
        handed_over = True
        return await stream_build(request, spec)
    finally:
        if not handed_over:
            await engine.run(remove_tree, context_dir)


async def stream_build(request: web.Request, spec: BuildSpec) -> web.StreamResponse:
    """Run the build on a worker thread and stream its lines (see the module docstring);
    the build thread removes `spec.context_dir` when the build has ended."""
    engine = engine_of(request)
    builder = request.app.get(BUILDER, engine_build)
    options = spec.options
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    with stream_flag(request, "build") as stop:
        reporter = StreamReporter(loop, queue, stop)
        for warning in options.warnings:
            reporter.put(_LINE, warning)

        def work() -> None:
            outcome: tuple[str, Any]
            try:
                outcome = (_DONE, builder(engine.root, spec, reporter))
            except BaseException as exc:  # handed to the event loop
                outcome = (_FAILED, exc)
            finally:
                remove_tree(spec.context_dir)
            reporter.put(*outcome)

        worker = asyncio.ensure_future(engine.run(work))
        writer = _StreamWriter(request, options, reporter)
        ended = False
        try:
            await writer.pump(queue)
            ended = not writer.client_gone
        finally:
            if not ended:  # the client went away (or the handler was cancelled)
                stop.set()
                worker.add_done_callback(_retrieve)
                if not worker.done():
                    log.info("%s %s: the client went away: the build is cancelled",
                             request.method, request.path)  # fmt: skip
        if ended:
            await worker  # its last act was to hand over the outcome: done at once
        return writer.response


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class _StreamWriter:
    """The event loop's side: lines from the queue to the client (held back with q=1)."""

    def __init__(self, request: web.Request, options: BuildOptions,
                 reporter: StreamReporter) -> None:  # fmt: skip
        self.request = request
        self.options = options
        self.reporter = reporter
        self.held: list[bytes] = []  # q=1: the messages dockerd keeps back
        self._response: web.StreamResponse | None = None
        self.client_gone = False

    @property
    def response(self) -> web.StreamResponse:
        return self._response if self._response is not None else web.Response(status=200)

    async def _next(self, queue: asyncio.Queue[tuple[str, Any]]) -> tuple[str, Any] | None:
        if _gone(self.request):
            self.client_gone = True
            return None
        while True:
            try:
                return await asyncio.wait_for(queue.get(), POLL_S)
            except TimeoutError:
                if _gone(self.request):
                    self.client_gone = True
                    return None

    async def _write(self, data: bytes) -> None:
        if self._response is None:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(self.request)
            self._response = response
        await self._response.write(data)

    async def pump(self, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        while True:
            event = await self._next(queue)
            if event is None:
                return
            batch = [event]
            while not queue.empty():
                batch.append(queue.get_nowait())
            out = bytearray()
            sent = 0
            finished = False
            for kind, value in batch:
                if kind == _LINE:
                    line = _encode({"stream": value})
                    sent += len(value)
                    if self.options.quiet:
                        self.held.append(line)
                    else:
                        out += line
                elif kind == _DONE:
                    out += self._success(value)
                    finished = True
                    break
                else:
                    if not out and not self.held and self._response is None:
                        raise value  # nothing sent yet: an HTTP error status
                    out += self._failure(value)
                    finished = True
                    break
            if out:
                try:
                    await self._write(bytes(out))
                except ConnectionError:
                    self.client_gone = True
                    return
            self.reporter.drained(sent)
            if finished:
                if self._response is not None:
                    with contextlib.suppress(ConnectionError):
                        await self._response.write_eof()
                return

    def _success(self, image_id: str) -> bytes:
        from cove.image.reference import parse_reference

        if self.options.quiet:
            return _encode({"stream": image_id + "\n"})
        out = bytearray()
        if self.options.aux:
            out += _encode({"aux": {"ID": image_id}})
        out += _encode({"stream": f"Successfully built {short_id(image_id)}\n"})
        for tag in self.options.tags:
            out += _encode({"stream": f"Successfully tagged {parse_reference(tag).familiar()}\n"})
        return bytes(out)

    def _failure(self, exc: BaseException) -> bytes:
        if not isinstance(exc, errors.CoveError):
            log.warning("%s %s: the build failed: %r", self.request.method, self.request.path,
                        exc)  # fmt: skip
        out = bytearray(b"".join(self.held))
        self.held.clear()
        out += _encode(error_line(failure_message(exc)))
        return bytes(out)


def failure_message(exc: BaseException) -> str:
    """The error line of a failed build: a failed RUN in dockerd's words (which scripts and
    docker-py's BuildError users match on), anything else as the engine says it."""
    if isinstance(exc, errors.StepFailed):
        command = " ".join(exc.command)
        return f"The command '{command}' returned a non-zero code: {exc.exit_code}"
    return str(exc) or type(exc).__name__


@routes.post("/build/prune")
async def build_prune(request: web.Request) -> web.Response:
    """No build cache to prune: Docker's answer for an empty cache."""
    return web.json_response({"CachesDeleted": [], "SpaceReclaimed": 0})
