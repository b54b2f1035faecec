"""Volume routes: list, create, inspect, delete, prune (the `local` driver's volumes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cove.api.context import Services, engine_of
from cove.api.errors import BadParameter
from cove.api.query import json_object, query_bool, request_filters
from cove.api.routing import Routes, request_version

routes = Routes()


@routes.get("/volumes")
async def list_volumes(request: web.Request) -> web.Response:
    filters = request_filters(request)

    def read(s: Services) -> list[dict[str, object]]:
        return [volume.inspect() for volume in s.volumes.list(filters)]

    found = await engine_of(request).call(read)
    return web.json_response({"Volumes": found, "Warnings": []})


@routes.post("/volumes/create")
async def create_volume(request: web.Request) -> web.Response:
    body = await json_object(request)
    name = body.get("Name") or ""
    if not isinstance(name, str):
        raise BadParameter("invalid Name: want a string")
    driver = str(body.get("Driver") or "local")
    options = _strings(body.get("DriverOpts"), "DriverOpts")
    labels = _strings(body.get("Labels"), "Labels")
    if body.get("ClusterVolumeSpec"):
        raise BadParameter("cluster volumes are not supported")

    def create(s: Services) -> dict[str, object]:
        return s.volumes.create(name, driver, labels, options).inspect()

    document = await engine_of(request).call(create)
    return web.json_response(document, status=201)


def _strings(value: object, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadParameter(f"invalid {field}: want an object of strings")
    return {str(key): str(item) for key, item in value.items()}


@routes.get("/volumes/{name}")
async def inspect_volume(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    document = await engine_of(request).call(lambda s: s.volumes.inspect(name))
    return web.json_response(document)


@routes.delete("/volumes/{name}")
async def delete_volume(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    force = query_bool(request, "force")
    await engine_of(request).call(lambda s: s.volumes.remove(name, force=force))
    return web.Response(status=204)


@routes.post("/volumes/prune")
async def prune_volumes(request: web.Request) -> web.Response:
    filters = request_filters(request)
    for key in filters:
        if key not in ("label", "label!", "all"):
            raise BadParameter(f"invalid filter '{key}'")
    everything = [value.lower() for value in filters.pop("all", [])]
    for value in everything:
        if value not in ("true", "1", "false", "0"):
            raise BadParameter(f"invalid filter 'all={value}'")
    # API 1.42 made prune take only anonymous volumes unless all=true; older ones take all.
    all_volumes = any(value in ("true", "1") for value in everything) or (
        request_version(request) < (1, 42)
    )

    def prune(s: Services) -> tuple[list[str], int]:
        return s.volumes.prune(all_volumes, filters)

    removed, reclaimed = await engine_of(request).call(prune)
    report: dict[str, Any] = {"VolumesDeleted": removed or None, "SpaceReclaimed": reclaimed}
    return web.json_response(report)
