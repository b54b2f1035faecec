"""Routes: each one under `/v{version}/...` and unversioned, as dockerd serves them, the
version check (Docker's wording, which clients match on), JSON request bodies (one parse,
checked before any handler runs) and the access log.

JSON bodies: a request to a route that exists, with `Content-Type: application/json` and a
body, is read and parsed by `json_middleware` before its handler runs: more than
`MAX_JSON_BODY` bytes is 413, malformed JSON or anything but an object (or `null`) is 400.
Handlers take the object with `await json_body(request)` ({} when there is no body), or
`await request.read()` / `request.json()`, which reuse the bytes read here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from cove.api.errors import RESPONSE_STARTED, ApiError, BadParameter

API_VERSION = "1.44"
MIN_API_VERSION = "1.24"
VERSION_PART = r"{version:v[0-9]+\.[0-9]+}"

# JSON bodies larger than this are refused with 413 (archives and image tarballs are
# streamed by their handlers and not limited by it).
MAX_JSON_BODY = 16 * 1024 * 1024
JSON_BODY = web.RequestKey("json_body", dict)

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


class PayloadTooLarge(ApiError):
    status = 413


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object, {} when the body is empty (400: not JSON, or not an
    object; 413: more than MAX_JSON_BODY bytes)."""
    if JSON_BODY in request:
        return request[JSON_BODY]
    length = request.content_length
    if length is not None and length > MAX_JSON_BODY:
        raise PayloadTooLarge(_too_large(length))
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(_too_large(None)) from None
    body = parse_json_object(data)
    request[JSON_BODY] = body
    return body


def _too_large(length: int | None) -> str:
    size = f"{length} bytes" if length is not None else "more than that"
    return (
        f"request body too large: a JSON body may have {MAX_JSON_BODY} bytes, this one has {size}"
    )


def parse_json_object(data: bytes) -> dict[str, Any]:
    """A JSON request body as an object ({} for an empty body or `null`); BadParameter
    otherwise."""
    if not data.strip():
        return {}
    try:
        value = json.loads(data)
    except UnicodeDecodeError as exc:
        raise BadParameter(f"malformed JSON body: not UTF-8 ({exc.reason})") from None
    except ValueError as exc:
        raise BadParameter(f"malformed JSON body: {exc}") from None
    except RecursionError:
        raise BadParameter("malformed JSON body: nested too deeply") from None
    if value is None:  # Go clients send a nil pointer as `null`: dockerd reads no fields
        return {}
    if not isinstance(value, dict):
        raise BadParameter(f"malformed JSON body: expected an object, got {_json_type(value)}")
    return value


def _json_type(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"


@web.middleware
async def json_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Parse a JSON body before the handler runs, so a bad one never reaches it."""
    routed = request.match_info.http_exception is None
    if routed and request.body_exists and request.content_type == "application/json":
        await json_body(request)
    response: web.StreamResponse = await handler(request)
    return response


class AccessLogger(AbstractAccessLogger):
    """One line per request at debug level: method, path, status, milliseconds."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.debug(
            "%s %s %d %.1fms", request.method, request.path_qs, response.status, time * 1000
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.DEBUG)


async def add_server_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, streamed ones too, names the API version and the server."""
    request[RESPONSE_STARTED] = response
    response.headers.setdefault("Api-Version", API_VERSION)
    response.headers["Server"] = f"cove/{_cove_version()} (linux)"
    response.headers.setdefault("Ostype", "linux")
    response.headers.setdefault("Docker-Experimental", "false")


def _cove_version() -> str:
    from cove import __version__

    return __version__
