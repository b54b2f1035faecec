"""Container routes: create, inspect, top, changes, export. (list is `containers_list`;
start, stop, ..., wait, delete and prune are `containers_lifecycle`; attach and resize are
`containers_attach`, logs `containers_logs`, stats `containers_stats`; exec and archive
have their own modules.)

Translation only: the engine's ContainerService does the work, on a worker thread
(`Engine.call`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cove.api.containers_create import platform_of, translate
from cove.api.containers_list import sizes
from cove.api.containers_target import call
from cove.api.context import Services, engine_of
from cove.api.errors import BadParameter, NotFound
from cove.api.query import json_body, query_bool
from cove.api.routing import Routes
from cove.engine.state_names import NAME_PATTERN
from cove.errors import CoveError, InvalidArgument, NoSuchImage

if TYPE_CHECKING:
    from cove.engine.state import ContainerRecord

routes = Routes()


def _familiar(image: str) -> str:
    """busybox -> busybox:latest (Docker's "No such image" names the tag)."""
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return image + ":latest"


# --- create ------------------------------------------------------------------------------------


@routes.post("/containers/create")
async def create(request: web.Request) -> web.Response:
    name = request.query.get("name", "")
    wanted_os, wanted_arch = platform_of(request.query.get("platform", ""))
    if wanted_os and wanted_os != "linux":
        raise BadParameter(f"platform {request.query['platform']!r} is not supported: cove runs "
                           "linux containers")  # fmt: skip
    if name and not NAME_PATTERN.match(name):
        raise BadParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                           "are allowed")  # fmt: skip
    body = await json_body(request)
    if body is None:
        raise BadParameter("Config cannot be empty in order to create a container")
    wanted = translate(body)
    warnings = list(wanted.warnings)

    def action(s: Services) -> str:
        if wanted_arch:
            found = s.images.inspect(wanted.image)
            if str(found.get("Architecture") or "") != wanted_arch:
                raise NotFound(
                    f"image with reference {wanted.image} was found but does not match the "
                    f"specified platform: wanted {request.query['platform']}, actual: "
                    f"{found.get('Os')}/{found.get('Architecture')}"
                )
        record = s.containers.create(wanted.image, wanted.options, wanted.settings, name=name,
                                     runtime=wanted.runtime, warn=warnings.append,
                                     console_size=wanted.console_size)  # fmt: skip
        return record.id

    try:
        container_id = await engine_of(request).call(action)
    except NoSuchImage:
        raise NotFound(f"No such image: {_familiar(wanted.image)}") from None
    except InvalidArgument as exc:
        if str(exc).startswith("no command specified"):  # specgen's words: dockerd's are these
            raise BadParameter("No command specified") from None
        raise
    return web.json_response({"Id": container_id, "Warnings": warnings}, status=201)


# --- reading -----------------------------------------------------------------------------------


@routes.get("/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    with_size = query_bool(request, "size")

    def action(s: Services) -> dict[str, Any]:
        record = s.containers.get(term)
        data = _docker_inspect(s.containers.inspect(record.id))
        data["Config"]["Env"] = _config_env(s, record, data["Config"]["Env"])
        if with_size:
            data.update(sizes(s, s.containers.get(term), {}))
        return data

    return web.json_response(await call(request, action))


def _docker_inspect(document: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's inspect with what dockerd's has and the engine's lacks: Config.Env null
    when empty (Go's nil slice), HostConfig's Cgroup, CgroupnsMode (a private cgroup
    namespace on cgroup v2, as Docker's default) and ConsoleSize, and the short id among
    the Aliases of a user network (the engine's DNS answers it)."""
    data = dict(document)
    config = dict(data.get("Config") or {})
    config["Env"] = config.get("Env") or None
    data["Config"] = config
    host = dict(data.get("HostConfig") or {})
    host.setdefault("Cgroup", "")
    host.setdefault("CgroupnsMode", "private" if _cgroup_namespace() else "host")
    host.setdefault("ConsoleSize", [0, 0])
    data["HostConfig"] = host
    settings = dict(data.get("NetworkSettings") or {})
    networks = dict(settings.get("Networks") or {})
    short = str(data.get("Id") or "")[:12]
    for name, endpoint in networks.items():
        # a user network resolves the short id too: up to API 1.44, Aliases lists it
        if name not in ("bridge", "host", "none") and isinstance(endpoint, dict) and short:
            aliases = list(endpoint.get("Aliases") or [])
            networks[name] = {**endpoint, "Aliases": aliases + [short] * (short not in aliases)}
    if networks:
        data["NetworkSettings"] = {**settings, "Networks": networks}
    return data


def _config_env(s: Services, record: ContainerRecord, process_env: Any) -> list[str] | None:
    """Docker's Config.Env: the image's Env with the container's --env-file, then --env,
    merged in (not the process's environment, which the engine's inspect shows: PATH,
    HOSTNAME and HOME added); null when empty. The process's if the image is gone."""
    try:
        env = [str(e) for e in s.images.inspect(record.image_id)["Config"].get("Env") or []]
    except CoveError:
        return process_env or None
    for key in ("env_file", "env"):
        given = record.config.get(key)
        for entry in given if isinstance(given, list | tuple) else ():
            name = str(entry).split("=", 1)[0]  # replaced in place, else appended (Docker's)
            at = next((i for i, e in enumerate(env) if e.split("=", 1)[0] == name), None)
            if "=" not in str(entry):
                env = [e for e in env if e.split("=", 1)[0] != name]
            elif at is None:
                env.append(str(entry))
            else:
                env[at] = str(entry)
    return env or None


def _cgroup_namespace() -> bool:
    """The engine gives containers a private cgroup namespace on a cgroup v2 host only."""
    from pathlib import Path

    return Path("/sys/fs/cgroup/cgroup.controllers").exists()


@routes.get("/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    ps_args = request.query.get("ps_args", "").split()

    def action(s: Services) -> dict[str, Any]:
        from cove.engine.container_top import top as container_top

        titles, rows = container_top(s.root, s.containers.get(term), ps_args)
        return {"Titles": titles, "Processes": rows}

    return web.json_response(await call(request, action))


_CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}


@routes.get("/containers/{id}/changes")
async def changes(request: web.Request) -> web.Response:
    term = request.match_info["id"]

    def action(s: Services) -> list[dict[str, Any]]:
        from cove.engine.container_diff import container_changes

        record = s.containers.get(term)
        return [{"Path": path, "Kind": _CHANGE_KINDS[kind]}
                for kind, path in container_changes(s.root, record.id, record.bundle)]  # fmt: skip

    return web.json_response(await call(request, action))


class _LoopWriter:
    """A file object for a worker thread whose writes go to the event loop in chunks, at
    most `slots` chunks in flight (backpressure)."""

    CHUNK = 256 * 1024

    def __init__(self, loop: asyncio.AbstractEventLoop, slots: int = 8) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.slots = threading.Semaphore(slots)
        self.buffer = bytearray()
        self.broken = False

    def write(self, data: bytes) -> int:
        if self.broken:
            raise BrokenPipeError("the client went away")
        self.buffer += data
        if len(self.buffer) >= self.CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self._send(bytes(self.buffer))
            self.buffer.clear()

    def _send(self, chunk: bytes | None) -> None:
        self.slots.acquire()
        if self.broken and chunk is not None:
            raise BrokenPipeError("the client went away")
        self.loop.call_soon_threadsafe(self.queue.put_nowait, chunk)

    def close(self) -> None:
        """The end (a None chunk); called once, by the producer's wrapper."""
        self._send(None)

    def stop(self) -> None:
        """The reader gives up: unblock the writer for good."""
        self.broken = True
        for _ in range(64):
            self.slots.release()


@routes.get("/containers/{id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    term = request.match_info["id"]
    record_id = await call(request, lambda s: s.containers.get(term).id)
    writer = _LoopWriter(asyncio.get_running_loop())

    def produce() -> None:
        from cove.engine.container_export import export as export_container

        try:
            export_container(engine_of(request).root, record_id, writer)  # type: ignore[arg-type]
            writer.flush()
        finally:
            writer.close()

    response = web.StreamResponse(status=200)
    response.content_type = "application/x-tar"
    await response.prepare(request)
    job = asyncio.ensure_future(engine_of(request).run(produce))
    try:
        while True:
            chunk = await writer.queue.get()
            writer.slots.release()
            if chunk is None:
                break
            await response.write(chunk)
        await job  # its error, if any, cuts the stream short (the status is sent)
        await response.write_eof()
    except BaseException:
        writer.stop()
        raise
    return response
