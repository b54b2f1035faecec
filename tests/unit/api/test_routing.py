"""Routes under /v1.xx and unversioned, the version check, JSON bodies checked before any
handler runs, and the access log."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cove.api import routing
from cove.api.errors import BadParameter, error_middleware
from cove.api.routing import (
    AccessLogger,
    Routes,
    add_server_headers,
    json_body,
    json_middleware,
    parse_json_object,
    request_version,
    version_middleware,
    version_tuple,
)


def test_version_tuple() -> None:
    assert version_tuple("1.44") == (1, 44)
    assert version_tuple("1.4") < version_tuple("1.40") < version_tuple("1.44")
    assert version_tuple("2") == (2, 0)


def test_a_route_is_registered_versioned_and_not() -> None:
    routes = Routes()

    @routes.post("/containers/{id}/start")
    async def start(request: web.Request) -> web.Response:
        return web.Response()

    paths = [(r.method, r.path) for r in routes.table]
    assert paths == [("POST", "/containers/{id}/start"),
                     ("POST", "/{version:v[0-9]+\\.[0-9]+}/containers/{id}/start")]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", {}),
        (b"  \n", {}),
        (b'{"Image": "bb:1"}', {"Image": "bb:1"}),
        (b"{}", {}),
        (b"null", {}),
    ],
)
def test_parse_json_object(data: bytes, expected: dict[str, Any]) -> None:
    assert parse_json_object(data) == expected


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"{bad", "malformed JSON body"),
        (b'["Image"]', "expected an object, got an array"),
        (b'"text"', "got a string"),
        (b"12", "got a number"),
        (b"true", "got a boolean"),
        (b'{"a": "\xff"}', "not UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "malformed JSON body"),
    ],
)
def test_parse_json_object_refuses(data: bytes, words: str) -> None:
    with pytest.raises(BadParameter, match=words):
        parse_json_object(data)


def make_app(calls: list[Any], max_size: int = routing.MAX_JSON_BODY) -> web.Application:
    routes = Routes()

    @routes.get("/where")
    async def where(request: web.Request) -> web.Response:
        calls.append(request_version(request))
        return web.json_response({"version": list(request_version(request))})

    @routes.post("/things/create")
    async def create(request: web.Request) -> web.Response:
        body = await json_body(request)
        calls.append(body)
        return web.json_response({"got": body}, status=201)

    @routes.post("/upload")
    async def upload(request: web.Request) -> web.Response:
        data = await request.content.read()
        calls.append(len(data))
        return web.json_response({"bytes": len(data)})

    app = web.Application(middlewares=[error_middleware, version_middleware, json_middleware],
                          client_max_size=max_size)  # fmt: skip
    app.router.add_routes(routes.table)
    app.on_response_prepare.append(add_server_headers)
    return app


def request(calls: list[Any], method: str, path: str, max_size: int = routing.MAX_JSON_BODY,
            **kwargs: Any) -> tuple[int, dict[str, Any]]:  # fmt: skip
    """One request to a fresh app of `make_app(calls)` (an app belongs to one loop)."""

    async def go() -> tuple[int, dict[str, Any]]:
        async with TestClient(TestServer(make_app(calls, max_size))) as client:
            response = await client.request(method, path, **kwargs)
            text = await response.text()
            return response.status, json.loads(text) if text else {}

    return asyncio.run(go())


@pytest.mark.parametrize("prefix", ["", "/v1.40", "/v1.41", "/v1.43", "/v1.44", "/v1.24"])
def test_versions_in_range_and_unversioned_are_served(prefix: str) -> None:
    calls: list[Any] = []
    status, body = request(calls, "GET", f"{prefix}/where")
    expected = [int(p) for p in (prefix[2:] or "1.44").split(".")]
    assert (status, body) == (200, {"version": expected})


def test_too_new_and_too_old_versions_are_docker_400s() -> None:
    calls: list[Any] = []
    status, body = request(calls, "GET", "/v1.45/where")
    assert status == 400
    assert body["message"] == (
        "client version 1.45 is too new. Maximum supported API version is 1.44"
    )
    status, body = request(calls, "GET", "/v1.12/where")
    assert status == 400
    assert body["message"].startswith("client version 1.12 is too old. Minimum supported API "
                                      "version is 1.24")  # fmt: skip
    assert calls == []


def test_json_bodies_are_checked_before_the_handler() -> None:
    calls: list[Any] = []
    headers = {"Content-Type": "application/json"}
    status, body = request(calls, "POST", "/things/create", data=b'{"Image": "x"', headers=headers)
    assert status == 400 and body["message"].startswith("malformed JSON body")
    status, body = request(calls, "POST", "/v1.44/things/create", data=b"[1, 2]", headers=headers)
    assert (status, body["message"]) == (
        400,
        "malformed JSON body: expected an object, got an array",
    )
    assert calls == []  # neither reached the handler
    status, body = request(calls, "POST", "/things/create", json={"Image": "bb:1"})
    assert (status, body, calls) == (201, {"got": {"Image": "bb:1"}}, [{"Image": "bb:1"}])


def test_json_body_of_another_content_type_is_checked_by_json_body() -> None:
    calls: list[Any] = []
    status, body = request(calls, "POST", "/things/create", data=b"[]",
                           headers={"Content-Type": "text/plain"})  # fmt: skip
    assert status == 400 and "got an array" in body["message"]
    status, body = request(calls, "POST", "/things/create")
    assert (status, body) == (201, {"got": {}})


def test_json_body_over_the_cap_is_413(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing, "MAX_JSON_BODY", 1024)
    calls: list[Any] = []
    big = json.dumps({"Env": ["A=" + "x" * 2000]}).encode()
    status, body = request(calls, "POST", "/things/create", max_size=1024, data=big,
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert status == 413
    assert body["message"].startswith("request body too large: a JSON body may have 1024 bytes")

    async def chunks() -> Any:
        for _ in range(4):
            yield b'{"a": "' + b"x" * 600 + b'", '
        yield b'"b": 1}'

    status, body = request(calls, "POST", "/things/create", max_size=1024, data=chunks(),
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert status == 413 and "request body too large" in body["message"]
    assert calls == []
    # streamed bodies (tarballs) are the handler's and not capped
    status, body = request(calls, "POST", "/upload", max_size=1024, data=b"t" * 5000,
                           headers={"Content-Type": "application/x-tar"})  # fmt: skip
    assert (status, body) == (200, {"bytes": 5000})


def test_unknown_route_with_a_json_body_is_still_404() -> None:
    calls: list[Any] = []
    status, body = request(calls, "POST", "/nothing/here", data=b"{bad",
                           headers={"Content-Type": "application/json"})  # fmt: skip
    assert (status, body) == (404, {"message": "page not found"})


def test_access_log_lines_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("cove.api.access.test")

    async def go() -> None:
        app = make_app([])
        server = TestServer(app)
        await server.start_server(access_log=logger, access_log_class=AccessLogger)
        async with TestClient(server) as client:
            await (await client.get("/v1.44/where?x=1")).read()
            await (await client.get("/nowhere")).read()

    with caplog.at_level(logging.INFO, logger="cove.api.access.test"):
        asyncio.run(go())
    assert not [r for r in caplog.records if r.name == "cove.api.access.test"]
    with caplog.at_level(logging.DEBUG, logger="cove.api.access.test"):
        asyncio.run(go())
    lines = [r.getMessage() for r in caplog.records if r.name == "cove.api.access.test"]
    assert len(lines) == 2
    method, path, status, ms = lines[0].split()
    assert (method, path, status) == ("GET", "/v1.44/where?x=1", "200")
    assert ms.endswith("ms") and float(ms[:-2]) >= 0
    assert lines[1].split()[:3] == ["GET", "/nowhere", "404"]


def test_every_response_names_the_api_and_server() -> None:
    async def go() -> dict[str, str]:
        async with TestClient(TestServer(make_app([]))) as client:
            response = await client.get("/where")
            return dict(response.headers)

    headers = asyncio.run(go())
    assert headers["Api-Version"] == "1.44" and headers["Ostype"] == "linux"
    assert headers["Server"].startswith("cove/")
