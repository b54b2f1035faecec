"""Images in and out: pull and import (POST /images/create), push, save (GET
/images/{name}/get, /images/get), load, and registry login (POST /auth).

Pull and push answer with Docker's JSON message stream (`{"status", "id",
"progressDetail"}` lines). What fails before the first event (no such repository or tag,
no such local image, refused credentials at the manifest) is an HTTP error status; what
fails after it is the stream's last line, `{"errorDetail": {"message"}, "error"}`, as
dockerd does once its 200 has gone out.

Bodies (load, import) are read as the engine asks for them, from the request stream on the
event loop (`BodyReader`), never held whole; save writes to the response as the engine
produces the archive (`ResponseWriter`), 1 MiB at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from cove.api.auth import auth_config, request_auth
from cove.api.context import engine_of
from cove.api.errors import BadParameter, NotFound, NotImplementedHere
from cove.api.query import json_object, query_bool
from cove.api.routing import Routes
from cove.errors import CoveError, RegistryNotFound
from cove.image.registry.progress import Progress, ProgressEvent

routes = Routes()
log = logging.getLogger("cove.api")

T = TypeVar("T")
NAME = "{name:.+}"
WRITE_CHUNK = 1 << 20
_DONE, _EVENT, _FAILED = "done", "event", "failed"


# --- the JSON message stream ---------------------------------------------------------------


def error_line(message: str) -> dict[str, Any]:
    return {"errorDetail": {"message": message}, "error": message}


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode() + b"\r\n"


def _coalesce(batch: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Drop a byte-count event that the next one (same layer, same status) overtakes."""
    kept = []
    for index, (kind, value) in enumerate(batch):
        if kind == _EVENT and "progressDetail" in value and index + 1 < len(batch):
            next_kind, following = batch[index + 1]
            if (next_kind == _EVENT and following.get("id") == value.get("id")
                    and following.get("status") == value.get("status")):  # fmt: skip
                continue
        kept.append((kind, value))
    return kept


async def progress_stream(
    request: web.Request,
    action: Callable[[Progress], T],
    finish: Callable[[T], list[dict[str, Any]]] | None = None,
) -> web.StreamResponse:
    """Run `action(progress)` on a worker thread and stream its events. An exception
    before the first event propagates (the error middleware gives it its status)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def report(event: ProgressEvent) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (_EVENT, event.to_json()))

    def work() -> None:
        try:
            result = action(report)
        except BaseException as exc:  # handed to the event loop
            loop.call_soon_threadsafe(queue.put_nowait, (_FAILED, exc))
            return
        loop.call_soon_threadsafe(queue.put_nowait, (_DONE, result))

    worker = asyncio.ensure_future(engine_of(request).run(work))
    kind, value = await queue.get()
    if kind == _FAILED:
        await worker
        raise value
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    batch = [(kind, value)]
    try:
        while True:
            while not queue.empty():
                batch.append(queue.get_nowait())
            out = bytearray()
            finished = False
            for kind, value in _coalesce(batch):
                if kind == _EVENT:
                    out += _encode(value)
                elif kind == _DONE:
                    for line in finish(value) if finish is not None else []:
                        out += _encode(line)
                    finished = True
                else:
                    if not isinstance(value, CoveError):
                        log.warning("%s %s: %r", request.method, request.path, value)
                    out += _encode(error_line(str(value) or type(value).__name__))
                    finished = True
            await response.write(bytes(out))
            if finished:
                break
            batch = [await queue.get()]
    except (ConnectionError, asyncio.CancelledError):
        log.info("%s %s: the client went away; the work goes on", request.method, request.path)
        raise
    await worker
    await response.write_eof()
    return response


# --- bodies and responses between the event loop and worker threads -------------------------


class BodyReader:
    """The request body as a blocking file for a worker thread: `read(n)` asks the event
    loop for the next bytes (n of them unless the body ends first)."""

    def __init__(self, request: web.Request, loop: asyncio.AbstractEventLoop) -> None:
        self._content = request.content
        self._loop = loop
        self.closed = False

    async def _read(self, size: int) -> bytes:
        if size < 0:
            return await self._content.read()
        chunks = []
        remaining = size
        while remaining > 0:
            chunk = await self._content.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def read(self, size: int = -1) -> bytes:
        return asyncio.run_coroutine_threadsafe(self._read(size), self._loop).result()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


class ResponseWriter:
    """A started response as a blocking file for a worker thread: bytes are handed to the
    event loop 1 MiB at a time (and at `flush`)."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._response = response
        self._loop = loop
        self._buffer = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._buffer += data
        if len(self._buffer) >= WRITE_CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            chunk, self._buffer = bytes(self._buffer), bytearray()
            asyncio.run_coroutine_threadsafe(self._response.write(chunk), self._loop).result()

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


# --- pull and import -----------------------------------------------------------------------


@routes.post("/images/create")
async def create_image(request: web.Request) -> web.StreamResponse:
    source = request.query.get("fromSrc", "")
    if source:
        return await import_image(request, source)
    image = request.query.get("fromImage", "")
    if not image:
        raise BadParameter("fromImage or fromSrc is required")
    reference = pull_reference(image, request.query.get("tag", ""))
    platform = request.query.get("platform", "") or None
    credentials = request_auth(request).credentials()
    root = engine_of(request).root

    def action(progress: Progress) -> Any:
        from cove.engine.image_transfer import pull

        try:
            return pull(root, reference, platform=platform, credentials=credentials,
                        progress=progress)  # fmt: skip
        except RegistryNotFound as exc:
            raise NotFound(pull_not_found(reference, exc)) from None

    return await progress_stream(request, action)


def pull_reference(image: str, tag: str) -> str:
    """fromImage and tag as dockerd joins them: the tag (which may be a digest) replaces
    the image's own."""
    if not tag:
        return image
    last = image.rsplit("/", 1)[-1]
    name = image.split("@", 1)[0]
    if ":" in last and "@" not in last:
        name = image.rsplit(":", 1)[0]
    return f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}"


def pull_not_found(reference: str, exc: RegistryNotFound) -> str:
    """dockerd's words for a missing repository (which docker-py raises ImageNotFound
    for) and for a missing tag."""
    from cove.image.reference import parse_reference

    ref = parse_reference(reference)
    if exc.code == "NAME_UNKNOWN":
        return (f"pull access denied for {ref.familiar_name()}, repository does not exist or "
                f"may require 'docker login': {str(exc).rsplit(': 404 ', 1)[-1]}")  # fmt: skip
    detail = str(exc).rsplit(": 404 ", 1)[-1]  # the registry's own words, when it said any
    return f"manifest for {ref.familiar()} not found: {detail}"


async def import_image(request: web.Request, source: str) -> web.StreamResponse:
    """POST /images/create?fromSrc=-: the body is a root filesystem tarball."""
    from cove.engine.image_transfer import import_image as import_from

    if source != "-":
        raise NotImplementedHere(
            "importing from a URL is not supported: send the tarball as the body (fromSrc=-)"
        )
    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "")
    reference = pull_reference(repo, tag) if repo else None
    changes = [change for change in request.query.getall("changes", []) if change.strip()]
    message = request.query.get("message", "")
    root = engine_of(request).root
    body = BodyReader(request, asyncio.get_running_loop())
    image_id = await engine_of(request).run(
        lambda: import_from(root, body, reference, changes, message)  # type: ignore[arg-type]
    )
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(_encode({"status": image_id}))
    await response.write_eof()
    return response


# --- push ----------------------------------------------------------------------------------


@routes.post(f"/images/{NAME}/push")
async def push_image(request: web.Request) -> web.StreamResponse:
    from cove.engine.image_transfer import push, push_targets

    name = request.match_info["name"]
    tag = request.query.get("tag", "")
    engine = engine_of(request)
    try:
        targets = await engine.run(push_targets, engine.root, name, tag)
    except CoveError as exc:
        if type(exc).__name__ == "NoSuchImage":
            shown = f"{name}:{tag}" if tag else name
            raise NotFound(f"An image does not exist locally with the tag: {shown}") from None
        raise
    credentials = request_auth(request).credentials()

    def action(progress: Progress) -> Any:
        return push(engine.root, targets, credentials=credentials, progress=progress)

    def finish(results: Any) -> list[dict[str, Any]]:
        return [{"progressDetail": {}, "aux": {"Tag": r.reference.tag, "Digest": str(r.digest),
                                               "Size": r.size}}
                for r in results]  # fmt: skip

    return await progress_stream(request, action, finish)


# --- save and load -------------------------------------------------------------------------


@routes.get(f"/images/{NAME}/get")
async def save_image(request: web.Request) -> web.StreamResponse:
    return await _save(request, [request.match_info["name"]])


@routes.get("/images/get")
async def save_images(request: web.Request) -> web.StreamResponse:
    names = [name for name in request.query.getall("names", []) if name]
    if not names:
        raise BadParameter("no image names given (?names=)")
    return await _save(request, names)


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    from cove.engine.image_transfer import check_save, save

    engine = engine_of(request)
    await engine.run(check_save, engine.root, names)
    response = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    writer = ResponseWriter(response, asyncio.get_running_loop())

    def write() -> None:
        save(engine.root, names, writer)  # type: ignore[arg-type]
        writer.flush()

    try:
        await engine.run(write)
    except (CoveError, OSError) as exc:
        # The 200 is out: end the connection without the last chunk, so the client sees
        # a broken transfer and not a short archive.
        log.warning("%s %s: the save failed after it started: %s", request.method,
                    request.path, exc)  # fmt: skip
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


@routes.post("/images/load")
async def load_images(request: web.Request) -> web.StreamResponse:
    from cove.engine.image_transfer import load

    query_bool(request, "quiet")  # checked; the output is the same either way
    engine = engine_of(request)
    body = BodyReader(request, asyncio.get_running_loop())
    try:
        lines = await engine.run(load, engine.root, body)
        out = b"".join(_encode({"stream": line + "\n"}) for line in lines)
    except CoveError as exc:
        # dockerd answers a load with 200 and puts its error in the stream (docker-py
        # raises ImageLoadError for it, the CLI prints it and fails)
        out = _encode(error_line(str(exc)))
        while await request.content.read(WRITE_CHUNK):
            pass  # what the client still sends: an unread body would stall it
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(out)
    await response.write_eof()
    return response


# --- login ---------------------------------------------------------------------------------


@routes.post("/auth")
async def login(request: web.Request) -> web.Response:
    from cove.engine.image_transfer import login as check_login

    config = auth_config(await json_object(request))
    if config.identity_token and not config.password:
        raise BadParameter("identity tokens are not supported: log in with a password")
    await engine_of(request).run(check_login, config.server, config.username, config.password)
    return web.json_response({"Status": "Login Succeeded", "IdentityToken": ""})
