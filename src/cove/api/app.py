"""The aiohttp application: middlewares (errors outermost, then the version check) and
the route modules."""

from __future__ import annotations

import importlib

from aiohttp import web

from cove.api.context import ENGINE, Engine
from cove.api.errors import error_middleware
from cove.api.routing import Routes, add_server_headers, version_middleware

# JSON bodies larger than this are refused with 413 (archives and image tarballs are
# streamed by their handlers and not limited by it).
MAX_JSON_BODY = 16 * 1024 * 1024

ROUTE_MODULES = (
    "system",
    "containers",
    "containers_streams",
    "exec",
    "archive",
    "images",
    "images_transfer",
    "networks",
    "volumes",
    "build",
)


def make_app(root: str, *, workers: int = 64) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, version_middleware], client_max_size=MAX_JSON_BODY
    )
    engine = Engine(root, workers=workers)
    app[ENGINE] = engine
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"cove.api.{name}")
        routes: Routes = module.routes
        app.router.add_routes(routes.table)
    app.on_response_prepare.append(add_server_headers)

    async def close_engine(_app: web.Application) -> None:
        engine.close()

    app.on_cleanup.append(close_engine)
    return app
