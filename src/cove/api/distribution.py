"""GET /distribution/{name}/json: what the registry holds under a reference (its descriptor
and platforms) without pulling it, as docker-py's `images.get_registry_data` asks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cove.api.auth import request_auth
from cove.api.context import engine_of
from cove.api.errors import NotFound
from cove.api.routing import Routes
from cove.errors import RegistryNotFound

routes = Routes()


@routes.get("/distribution/{name:.+}/json")
async def distribution(request: web.Request) -> web.Response:
    from cove.engine.image_transfer import registry_data

    name = request.match_info["name"]
    credentials = request_auth(request).credentials()

    def look_up() -> dict[str, Any]:
        return registry_data(name, credentials)

    try:
        found = await engine_of(request).run(look_up)
    except RegistryNotFound as exc:
        raise NotFound(str(exc)) from None
    return web.json_response(found)
