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
    A git URL (`cove.engine.build_git`, `#REF:FOLDER` too) is cloned when its host is a
    loopback address; other hosts are 501 (clone it and send the folder as the body).

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

Modules
    This one has the routes and runs the build; `build_options` checks the query,
    `build_context` receives the context (the body's tar or the remote URL) and resolves
    the Dockerfile in it, `build_stream` turns the reporter's calls into the JSON stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cove.api.build_context import (
    READ_CHUNK,
    BodyStream,
    confine_ignore_files,
    extract_context,
    fetch_remote,
    new_context_dir,
    remove_tree,
    resolve_dockerfile,
)
from cove.api.build_options import BuildOptions, parse_options
from cove.api.build_stream import DONE, FAILED, LINE, StreamReporter, StreamWriter
from cove.api.context import Services, engine_of
from cove.api.hijack import stream_flag
from cove.api.routing import Routes, request_version

if TYPE_CHECKING:
    from cove.engine.build_prune import BuildCachePruned

routes = Routes()
log = logging.getLogger("cove.api")


# --- the build spec and the builder ------------------------------------------------------


@dataclass(frozen=True)
class BuildSpec:
    """What the engine is asked to build (BuildRequest's fields)."""

    context_dir: str
    dockerfile: str
    dockerfile_text: str | None
    options: BuildOptions


Builder = Callable[[str, BuildSpec, StreamReporter], str]
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
        resources=options.resources,
    )
    return BuildService(root).build(request, reporter)


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
            reporter.put(LINE, warning)

        def work() -> None:
            outcome: tuple[str, Any]
            try:
                outcome = (DONE, builder(engine.root, spec, reporter))
            except BaseException as exc:  # handed to the event loop
                outcome = (FAILED, exc)
            finally:
                remove_tree(spec.context_dir)
            reporter.put(*outcome)

        worker = asyncio.ensure_future(engine.run(work))
        writer = StreamWriter(request, options, reporter)
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


@routes.post("/build/prune")
async def build_prune(request: web.Request) -> web.Response:
    """The build cache (`cove.engine.build_prune`): `all`, `keep-storage` (bytes) and the
    `until` filter, as dockerd takes them."""
    from cove.api.errors import BadParameter
    from cove.api.query import query_bool, query_int, request_filters, until_of

    filters = request_filters(request)
    until = until_of(filters)
    for value in filters.pop("dangling", []):  # what a prune removes is unused anyway
        if value.lower() not in ("true", "1", "false", "0"):
            raise BadParameter(f"invalid filter 'dangling={value}'")
    if filters:
        raise BadParameter(
            f"invalid filter '{sorted(filters)[0]}': /build/prune takes until and dangling"
        )
    everything = query_bool(request, "all")
    keep = query_int(request, "keep-storage", 0)
    if keep < 0:
        raise BadParameter(f"invalid keep-storage {keep}: it cannot be negative")

    def prune(s: Services) -> BuildCachePruned:
        from cove.engine.build_prune import prune_build_cache

        return prune_build_cache(s.root, all_cache=everything, until=until,
                                 keep_storage=keep)  # fmt: skip

    pruned = await engine_of(request).call(prune)
    return web.json_response({"CachesDeleted": pruned.deleted,
                              "SpaceReclaimed": pruned.reclaimed})  # fmt: skip
