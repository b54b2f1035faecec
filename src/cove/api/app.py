"""The aiohttp application: middlewares (errors outermost, then the version check, then the
JSON body check) and the route modules.

Long-lived streams (events, followed logs, stats) register a `threading.Event` in
`app[STREAMS]` while they run: the server sets them all when it shuts down, so a SIGTERM
ends them at once instead of after the shutdown timeout (and `/info` counts the event
listeners among them)."""

from __future__ import annotations

import importlib
import threading

from aiohttp import web

from cove.api.context import ENGINE, Engine
from cove.api.errors import error_middleware
from cove.api.routing import (
    MAX_JSON_BODY,
    Routes,
    add_server_headers,
    json_middleware,
    version_middleware,
)

__all__ = ["MAX_JSON_BODY", "ROUTE_MODULES", "STREAMS", "make_app"]

ROUTE_MODULES = (
    "system",
    "containers",
    "containers_list",
    "containers_lifecycle",
    "containers_attach",
    "containers_logs",
    "containers_stats",
    "exec",
    "archive",
    "images",
    "images_transfer",
    "distribution",
    "networks",
    "volumes",
    "build",
)

# name of the stream ("events", "logs", ...) -> the stop flags of those running now
STREAMS = web.AppKey("streams", dict)


def make_app(root: str, *, workers: int = 64) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, version_middleware, json_middleware],
        client_max_size=MAX_JSON_BODY,
    )
    engine = Engine(root, workers=workers)
    app[ENGINE] = engine
    app[STREAMS] = {}
    for name in ROUTE_MODULES:
        module = importlib.import_module(f"cove.api.{name}")
        routes: Routes = module.routes
        app.router.add_routes(routes.table)
        setup = getattr(module, "setup_app", None)  # a module's state on the app (exec)
        if setup is not None:
            setup(app)
    app.on_response_prepare.append(add_server_headers)

    async def stop_streams(_app: web.Application) -> None:
        for flags in app[STREAMS].values():
            for flag in list(flags):
                flag.set()

    async def close_engine(_app: web.Application) -> None:
        engine.close()

    app.on_shutdown.append(stop_streams)
    app.on_cleanup.append(close_engine)
    return app


def register_stream(app: web.Application, kind: str) -> threading.Event:
    """A stop flag for one long-lived stream of `kind`; `unregister_stream` when done."""
    flag = threading.Event()
    app[STREAMS].setdefault(kind, set()).add(flag)
    return flag


def unregister_stream(app: web.Application, kind: str, flag: threading.Event) -> None:
    app[STREAMS].get(kind, set()).discard(flag)
