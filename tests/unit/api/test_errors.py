"""The one map from exceptions to HTTP statuses, and the error middleware's bodies."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cove import errors
from cove.api.errors import (
    BadParameter,
    Conflict,
    NotFound,
    NotImplementedHere,
    NotModified,
    error_middleware,
    error_response,
    status_for,
)
from cove.api.routing import Routes, add_server_headers


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.NoSuchContainer("abc"), 404),
        (errors.NoSuchImage("busybox"), 404),
        (errors.NameConflict("web", "0123456789abcdef"), 409),
        (errors.VolumeInUse("v", [("0123", "c")]), 409),
        (errors.InvalidArgument("bad flag"), 400),
        (errors.InvalidReference("UPPER", "uppercase"), 400),
        (errors.RegistryUnauthorized("who are you"), 401),
        (errors.CoveError("anything else"), 500),
        (BadParameter("x"), 400),
        (NotFound("x"), 404),
        (Conflict("x"), 409),
        (NotModified("x"), 304),
        (NotImplementedHere("x"), 501),
        (BadParameter("x", status=418), 418),
        (web.HTTPNotFound(), 404),
    ],
)
def test_status_for(exc: BaseException, status: int) -> None:
    assert status_for(exc) == status


def test_error_response_bodies() -> None:
    answer = error_response(409, "name taken")
    assert answer.status == 409 and answer.content_type == "application/json"
    assert isinstance(answer.body, bytes)
    assert json.loads(answer.body) == {"message": "name taken"}
    not_modified = error_response(304, "already started")
    assert not_modified.status == 304 and not_modified.body is None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def call(routes: Routes, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """One request to an app with the error middleware and `routes`."""

    async def go() -> tuple[int, dict[str, str], bytes]:
        app = web.Application(middlewares=[error_middleware])
        app.router.add_routes(routes.table)
        app.on_response_prepare.append(add_server_headers)
        async with TestClient(TestServer(app)) as client:
            response = await client.request(method, path)
            body = await response.read()
            return response.status, dict(response.headers), body

    return asyncio.run(go())


def raising(exc: BaseException) -> Routes:
    routes = Routes()

    @routes.get("/boom")
    async def boom(request: web.Request) -> web.Response:
        raise exc

    return routes


@pytest.mark.parametrize(
    ("exc", "status", "message"),
    [
        (errors.NoSuchContainer("abc"), 404, "container 'abc' does not exist"),
        (errors.NameConflict("web", "0123456789abcdef"), 409, 'name "/web" is already in use'),
        (ValueError("invalid literal for int()"), 400, "bad request: invalid literal"),
        (KeyError("Image"), 400, "bad request: 'Image'"),
        (RuntimeError("a bug"), 500, "RuntimeError: a bug"),
        (NotImplementedHere("not yet"), 501, "not yet"),
    ],
)
def test_middleware_turns_exceptions_into_json(exc: BaseException, status: int,
                                               message: str) -> None:  # fmt: skip
    got, headers, body = call(raising(exc), "GET", "/boom")
    assert got == status
    assert headers["Content-Type"].startswith("application/json")
    assert message in json.loads(body)["message"]
    assert headers["Api-Version"] == "1.44"


def test_not_modified_has_no_body() -> None:
    got, _, body = call(raising(NotModified("already")), "GET", "/v1.44/boom")
    assert (got, body) == (304, b"")


def test_unknown_route_is_docker_page_not_found() -> None:
    got, _, body = call(Routes(), "GET", "/containers/nope/json")
    assert got == 404 and json.loads(body) == {"message": "page not found"}


def test_wrong_method_is_405_naming_the_allowed_ones() -> None:
    got, headers, body = call(raising(errors.CoveError("x")), "DELETE", "/boom")
    assert got == 405
    assert json.loads(body) == {
        "message": "method DELETE is not allowed on /boom (allowed: GET, HEAD)"
    }
    assert set(headers["Allow"].split(",")) == {"GET", "HEAD"}


def test_error_after_the_response_started_closes_the_stream() -> None:
    """Once a stream's headers went out, an error cannot become a second response: the
    client sees the part that was sent, then the end of the connection."""
    routes = Routes()

    @routes.get("/stream")
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"first line\n")
        raise errors.CoveError("broke mid-stream")

    async def go() -> tuple[int, bytes, Any]:
        app = web.Application(middlewares=[error_middleware])
        app.router.add_routes(routes.table)
        app.on_response_prepare.append(add_server_headers)
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/stream")
            try:
                body = await response.read()
                failure = None
            except Exception as exc:  # the payload ended early
                body, failure = b"", exc
            return response.status, body, failure

    status, body, failure = asyncio.run(go())
    assert status == 200
    assert b"broke mid-stream" not in body
    assert failure is not None or body in (b"", b"first line\n")


def test_a_client_gone_mid_stream_is_not_a_server_error(caplog: pytest.LogCaptureFixture) -> None:
    """docker wait / logs -f / events interrupted: the write fails with a ConnectionError;
    the middleware hands back the started response instead of a traceback."""
    routes = Routes()
    seen: list[str] = []

    @routes.get("/stream")
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(b"partial\n")
        seen.append("raised")
        raise ConnectionResetError("Cannot write to closing transport")

    async def go() -> tuple[int, bytes]:
        app = web.Application(middlewares=[error_middleware])
        app.router.add_routes(routes.table)
        app.on_response_prepare.append(add_server_headers)
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/stream")
            return response.status, await response.read()

    with caplog.at_level(logging.DEBUG):
        status, body = asyncio.run(go())
    assert (status, body, seen) == (200, b"partial\n", ["raised"])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("the client went away" in r.getMessage() for r in caplog.records)


def test_a_connection_error_before_the_response_is_500() -> None:
    got, _, body = call(raising(ConnectionRefusedError("monitor socket")), "GET", "/boom")
    assert (got, json.loads(body)) == (500, {"message": "ConnectionRefusedError: monitor socket"})
