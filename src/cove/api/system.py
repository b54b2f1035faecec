"""System routes: /_ping, /version, /info, /events, /system/df (POST /auth lives with the
images routes, in cove.api.images)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cove.api.context import Services, engine_of
from cove.api.errors import BadParameter
from cove.api.routing import API_VERSION, MIN_API_VERSION, Routes

if TYPE_CHECKING:
    from cove.engine.build_cache_mounts import CacheMount

routes = Routes()

# The keys of /events?filters= that dockerd accepts (cove records container events only:
# the other types never match, as on a Docker host without them).
EVENT_FILTERS = ("config", "container", "daemon", "event", "image", "label", "network", "node",
                 "plugin", "scope", "secret", "service", "type", "volume")  # fmt: skip
# How often a quiet event stream checks that its client is still there.
EVENTS_IDLE_CHECK = 1.0
DF_TYPES = ("container", "image", "volume", "build-cache")


def _ping_response(request: web.Request, body: bytes) -> web.Response:
    response = web.Response(body=body, content_type="text/plain", charset="utf-8")
    response.headers["Cache-Control"] = "no-cache, no-store, must-revalidate"
    response.headers["Pragma"] = "no-cache"
    response.headers["Builder-Version"] = "1"  # the legacy builder (/build)
    response.headers["Swarm"] = "inactive"
    return response


@routes.get("/_ping")
async def ping(request: web.Request) -> web.Response:
    return _ping_response(request, b"OK")


@routes.head("/_ping")
async def ping_head(request: web.Request) -> web.Response:
    return _ping_response(request, b"")


@routes.get("/version")
async def version(request: web.Request) -> web.Response:
    from cove import __version__

    uname = platform.uname()
    engine = {
        "Name": "Engine",
        "Version": __version__,
        "Details": {
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "Os": "linux",
            "Arch": _go_arch(uname.machine),
            "KernelVersion": uname.release,
            "Experimental": "false",
            "BuildTime": "",
        },
    }
    return web.json_response({
        "Platform": {"Name": "cove"},
        "Components": [engine],
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": f"python{platform.python_version()}",
        "Os": "linux",
        "Arch": _go_arch(uname.machine),
        "KernelVersion": os.uname().release,
        "BuildTime": "",
    })  # fmt: skip


def _go_arch(machine: str) -> str:
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(
        machine, machine
    )


# --- /info -----------------------------------------------------------------------------------


@routes.get("/info")
async def info(request: web.Request) -> web.Response:
    from cove.api.app import STREAMS
    from cove.engine.system_info import system_info

    listeners = len(request.app[STREAMS].get("events", ()))
    document = await engine_of(request).call(
        lambda s: system_info(s.root, s.containers, event_listeners=listeners)
    )
    return web.json_response(document)


# --- /events ---------------------------------------------------------------------------------


def event_filters(text: str) -> dict[str, list[str]]:
    """/events?filters=: Docker's JSON map (cove.api.query); keys outside EVENT_FILTERS are
    Docker's "invalid filter" (400)."""
    from cove.api.query import parse_filters

    filters = parse_filters(text)
    for key in filters:
        if key not in EVENT_FILTERS:
            raise BadParameter(f"invalid filter '{key}'")
    return filters


def parse_time(value: str | None, name: str) -> int:
    """`since`/`until` of /events: UNIX seconds with an optional fraction, as the clients
    send them (RFC 3339 and durations are read too); 0 when not given."""
    if value is None or not value.strip():
        return 0
    from cove.engine.container_logs import parse_since

    stamp = parse_since(value, flag=name)
    return max(stamp, 1)  # "0" is the epoch (all the history), not "no bound"


def event_matches(event: Mapping[str, Any], filters: Mapping[str, Sequence[str]]) -> bool:
    from cove.engine.events import matches

    return matches(event, filters)


@routes.get("/events")
async def events(request: web.Request) -> web.StreamResponse:
    from cove.api.app import register_stream, unregister_stream
    from cove.engine.events import stream_events

    since_ns = parse_time(request.query.get("since"), "since")
    until_ns = parse_time(request.query.get("until"), "until")
    filters = event_filters(request.query.get("filters", ""))
    root = engine_of(request).root
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any] | BaseException | None] = asyncio.Queue()
    stop = register_stream(request.app, "events")

    def deliver(item: dict[str, Any] | BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the server stopped
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        """On its own thread: the journal's events in range, then the new ones."""
        try:
            for event in stream_events(root, since_ns=since_ns, until_ns=until_ns,
                                       stop=stop.is_set):  # fmt: skip
                if event_matches(event, filters):
                    deliver(event)
        except Exception as exc:  # reported to the handler, which logs it
            deliver(exc)
        finally:
            deliver(None)

    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    try:
        await response.prepare(request)  # headers now: clients wait for them
        threading.Thread(target=pump, name="cove-api-events", daemon=True).start()
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), EVENTS_IDLE_CHECK)
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    return response  # the client went away
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            await response.write(json.dumps(item, separators=(",", ":")).encode() + b"\n")
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away mid-write
    finally:
        stop.set()
        unregister_stream(request.app, "events", stop)
    return response


# --- /system/df ------------------------------------------------------------------------------


def _unix(stamp: str) -> int:
    from cove.engine.container_logs import parse_timestamp

    found = parse_timestamp(stamp) if stamp else None
    return 0 if found is None else found // 1_000_000_000


def _container_summary(
    services: Services, record: Any, size: int, image_sizes: Mapping[str, int]
) -> dict[str, Any]:
    """A container of /system/df: /containers/json's entry with SizeRw and SizeRootFs."""
    from cove.api.containers_list import list_entry

    entry = list_entry(services, record)
    entry["SizeRw"] = size
    entry["SizeRootFs"] = size + image_sizes.get(record.image_id, 0)
    return entry


def disk_usage_document(services: Services, kinds: Sequence[str]) -> dict[str, Any]:
    """GET /system/df: Docker's shape from the engine's `disk_usage` (one worker call)."""
    from cove.engine.system_df import disk_usage

    usage = disk_usage(services.root, volumes="volume" in kinds)
    document: dict[str, Any] = {"LayersSize": usage.images_size}
    image_sizes = {image.id: image.size for image in usage.images}
    if "image" in kinds:
        images = []
        for image in usage.images:
            try:
                inspected = services.images.inspect(image.id)
            except Exception:  # removed meanwhile
                continue
            config = inspected.get("Config") or {}
            images.append({
                "Id": image.id, "ParentId": "", "RepoTags": inspected.get("RepoTags") or [],
                "RepoDigests": inspected.get("RepoDigests") or [],
                "Created": _unix(image.created), "Size": image.size,
                "SharedSize": image.shared_size, "VirtualSize": image.size,
                "Labels": config.get("Labels") or {}, "Containers": image.containers,
            })  # fmt: skip
        document["Images"] = images
    if "container" in kinds:
        containers = []
        for item in usage.containers:
            try:
                containers.append(_container_summary(services, item.record, item.size,
                                                     image_sizes))  # fmt: skip
            except Exception:  # removed meanwhile
                continue
        document["Containers"] = containers
    if "volume" in kinds:
        volumes = []
        for volume in usage.volumes:
            try:
                shape = dict(services.volumes.inspect(volume.name))
            except Exception:  # removed meanwhile
                continue
            shape["UsageData"] = {"Size": volume.size, "RefCount": volume.links}
            volumes.append(shape)
        document["Volumes"] = volumes
    if "build-cache" in kinds:
        document["BuildCache"] = [_cache_record(item) for item in usage.build_cache]
    return document


def _cache_record(item: CacheMount) -> dict[str, Any]:
    """A cache mount as BuildKit's build cache record (the step cache's images are images)."""
    return {"ID": item.name, "Parent": "", "Parents": [], "Type": "exec.cachemount",
            "Description": f"cached mount {item.target or item.id}", "InUse": item.in_use,
            "Shared": False, "Size": item.size, "CreatedAt": _rfc3339(item.created),
            "LastUsedAt": _rfc3339(item.last_used), "UsageCount": item.uses}  # fmt: skip


def _rfc3339(moment: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


@routes.get("/system/df")
async def system_df(request: web.Request) -> web.Response:
    kinds = request.query.getall("type", []) or list(DF_TYPES)
    for kind in kinds:
        if kind not in DF_TYPES:
            raise BadParameter(f"unknown object type: {kind}")
    document = await engine_of(request).call(lambda s: disk_usage_document(s, kinds))
    return web.json_response(document)
