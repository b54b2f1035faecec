"""System routes: /_ping, /version (more come with the system helper's work)."""

from __future__ import annotations

import os
import platform

from aiohttp import web

from cove.api.routing import API_VERSION, MIN_API_VERSION, Routes

routes = Routes()


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
            "Os": "linux",
            "Arch": _go_arch(uname.machine),
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
