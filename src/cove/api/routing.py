"""Routes: each one under `/v{version}/...` and unversioned, as dockerd serves them, and
the version check (Docker's wording, which clients match on)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from cove.api.errors import BadParameter

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
VERSION_PART = r"{version:v[0-9]+\.[0-9]+}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def version_tuple(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


class Routes:
    """A route table; `routes.get("/containers/json")` registers both forms."""

    def __init__(self) -> None:
        self.table: list[web.RouteDef] = []

    def add(self, method: str, path: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            for full in (path, f"/{VERSION_PART}{path}"):
                self.table.append(web.route(method, full, handler))
            return handler

        return register

    def get(self, path: str) -> Callable[[Handler], Handler]:
        return self.add("GET", path)

    def head(self, path: str) -> Callable[[Handler], Handler]:
        return self.add("HEAD", path)

    def post(self, path: str) -> Callable[[Handler], Handler]:
        return self.add("POST", path)

    def put(self, path: str) -> Callable[[Handler], Handler]:
        return self.add("PUT", path)

    def delete(self, path: str) -> Callable[[Handler], Handler]:
        return self.add("DELETE", path)


def request_version(request: web.Request) -> tuple[int, int]:
    """The API version the client asked for (the newest when unversioned)."""
    given = request.match_info.get("version")
    return version_tuple(given[1:] if given else API_VERSION)


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.match_info.get("version")
    if given:
        wanted = version_tuple(given[1:])
        if wanted > version_tuple(API_VERSION):
            raise BadParameter(
                f"client version {given[1:]} is too new. Maximum supported API version is "
                f"{API_VERSION}"
            )
        if wanted < version_tuple(MIN_API_VERSION):
            raise BadParameter(
                f"client version {given[1:]} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version"
            )
    response: web.StreamResponse = await handler(request)
    return response


async def add_server_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, streamed ones too, names the API version and the server."""
    response.headers.setdefault("Api-Version", API_VERSION)
    response.headers["Server"] = f"cove/{_cove_version()} (linux)"
    response.headers.setdefault("Ostype", "linux")
    response.headers.setdefault("Docker-Experimental", "false")


def _cove_version() -> str:
    from cove import __version__

    return __version__
