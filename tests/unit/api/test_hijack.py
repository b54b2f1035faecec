"""cove.api.hijack: Docker's stream frames, detach keys, the connection take-over (over a
real unix socket: 101 and 200 heads, bytes sent with the head, half-close, errors after the
head) and the thread feed."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from aiohttp import web

from cove.api.errors import error_middleware
from cove.api.hijack import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    FeedStopped,
    FrameParser,
    Hijacked,
    ThreadFeed,
    frame,
    serve_hijacked,
)
from cove.api.routing import API_VERSION, Routes, add_server_headers, version_middleware

# --- frames ----------------------------------------------------------------------------------


def test_frame_header_is_dockers() -> None:
    assert frame(1, b"hi") == b"\x01\x00\x00\x00\x00\x00\x00\x02hi"
    assert frame(2, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    assert frame(1, b"x" * 70000)[4:8] == (70000).to_bytes(4, "big")


def test_frames_are_parsed_from_any_pieces() -> None:
    data = frame(1, b"out") + frame(2, b"err" * 1000) + frame(0xFF, b"3")
    for size in (1, 3, 7, 8, 9, 100, len(data)):
        parser = FrameParser()
        got: list[tuple[int, bytes]] = []
        for start in range(0, len(data), size):
            got += parser.feed(data[start : start + size])
        assert got == [(1, b"out"), (2, b"err" * 1000), (0xFF, b"3")]
        assert parser.pending == 0


def test_an_incomplete_frame_is_held_back() -> None:
    parser = FrameParser()
    assert parser.feed(frame(1, b"abcdef")[:10]) == []
    assert parser.pending == 10
    assert parser.feed(b"cdef") == [(1, b"abcdef")]


# --- the take-over, over a unix socket -------------------------------------------------------

Relay = Callable[[Hijacked], Awaitable[None]]
T = TypeVar("T")


def _app(relay: Relay, content_type: str = RAW_STREAM) -> web.Application:
    routes = Routes()

    @routes.post("/stream")
    async def stream(request: web.Request) -> web.StreamResponse:
        return await serve_hijacked(request, content_type, relay)

    @routes.get("/plain")
    async def plain(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[error_middleware, version_middleware])
    app.router.add_routes(routes.table)
    app.on_response_prepare.append(add_server_headers)
    return app


def _serve(tmp_path: Path, relay: Relay, client: Callable[[str], T],
           content_type: str = RAW_STREAM) -> T:  # fmt: skip
    """Run the app on a unix socket and `client(path)` on a thread; its result."""
    path = str(tmp_path / "api.sock")

    async def main() -> T:
        runner = web.AppRunner(_app(relay, content_type))
        await runner.setup()
        site = web.UnixSite(runner, path)
        await site.start()
        try:
            return await asyncio.wait_for(asyncio.to_thread(client, path), 20)
        finally:
            await runner.cleanup()

    return asyncio.run(main())


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(path)
    return sock


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _read_all(sock: socket.socket, rest: bytes = b"") -> bytes:
    data = rest
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk


async def _echo_upper_then_bye(stream: Hijacked) -> None:
    """Upper-cases what the client sends until it stops sending, then says bye (half-close:
    the client still reads)."""
    while True:
        data = await stream.read()
        if not data:
            break
        await stream.write(data.upper())
    await stream.write(b"bye")


UPGRADE = b"POST /stream HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"


def test_upgrade_101_head_then_raw_both_ways_and_half_close(tmp_path: Path) -> None:
    def client(path: str) -> tuple[bytes, bytes, bytes]:
        sock = _connect(path)
        sock.sendall(UPGRADE)
        head, rest = _read_head(sock)
        sock.sendall(b"sent-right-after-the-head")
        while len(rest) < len(b"SENT-RIGHT-AFTER-THE-HEAD"):
            rest += sock.recv(4096)
        sock.sendall(b"more")
        time.sleep(0.2)
        sock.shutdown(socket.SHUT_WR)  # half-close: we still read
        tail = _read_all(sock)
        sock.close()
        return head, rest, tail

    head, first, tail = _serve(tmp_path, _echo_upper_then_bye, client)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 101 UPGRADED"
    assert f"Content-Type: {RAW_STREAM}" in lines
    assert "Connection: Upgrade" in lines and "Upgrade: tcp" in lines
    assert f"Api-Version: {API_VERSION}" in lines
    assert not any(line.lower().startswith(("transfer-encoding", "content-length"))
                   for line in lines)  # fmt: skip
    assert first == b"SENT-RIGHT-AFTER-THE-HEAD"
    assert tail == b"MOREbye"  # the output after the client's EOF arrived, then our close


def test_without_upgrade_200_and_the_same_raw_stream(tmp_path: Path) -> None:
    def client(path: str) -> tuple[bytes, bytes]:
        sock = _connect(path)
        sock.sendall(b"POST /stream HTTP/1.1\r\nHost: d\r\nContent-Length: 0\r\n\r\n")
        head, rest = _read_head(sock)
        sock.sendall(b"abc")
        time.sleep(0.2)
        sock.shutdown(socket.SHUT_WR)
        data = _read_all(sock, rest)
        sock.close()
        return head, data

    head, data = _serve(tmp_path, _echo_upper_then_bye, client, MULTIPLEXED_STREAM)
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert f"Content-Type: {MULTIPLEXED_STREAM}" in lines
    assert "Upgrade: tcp" not in lines
    assert data == b"ABCbye"  # not chunked: the bytes as written


def test_an_error_after_the_head_closes_the_stream_and_the_server_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing(stream: Hijacked) -> None:
        await stream.write(b"partial")
        raise RuntimeError("boom")

    def client(path: str) -> tuple[bytes, bytes]:
        sock = _connect(path)
        sock.sendall(UPGRADE)
        _, rest = _read_head(sock)
        data = _read_all(sock, rest)
        sock.close()
        plain = _connect(path)
        plain.sendall(b"GET /plain HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        answer = _read_all(plain)
        plain.close()
        return data, answer

    data, answer = _serve(tmp_path, failing, client)
    assert data == b"partial"  # no HTTP error response written into the raw stream
    assert answer.startswith(b"HTTP/1.1 200") and b'{"ok": true}' in answer
    assert "boom" in caplog.text


def test_a_client_that_goes_away_ends_the_writes(tmp_path: Path) -> None:
    outcome: list[str] = []

    async def writer(stream: Hijacked) -> None:
        try:
            for _ in range(2000):
                await stream.write(b"x" * 65536)
            outcome.append("all written")
        except ConnectionError:
            outcome.append("client gone")
            raise

    def client(path: str) -> None:
        sock = _connect(path)
        sock.sendall(UPGRADE)
        _read_head(sock)
        sock.recv(1000)
        sock.close()
        time.sleep(1.0)

    _serve(tmp_path, writer, client)
    assert outcome == ["client gone"]


# --- the thread feed -------------------------------------------------------------------------


def test_thread_feed_delivers_in_order_with_backpressure() -> None:
    waiting: list[int] = []

    async def main() -> list[int]:
        feed: ThreadFeed[int] = ThreadFeed(limit=4)

        def produce(out: ThreadFeed[int]) -> None:
            for item in range(100):
                out.put(item)
                waiting.append(item)

        feed.run(produce, "test-feed")
        await asyncio.sleep(0.3)
        blocked_at = len(waiting)
        got = [item async for item in feed]
        assert blocked_at <= 5  # the producer waited for the consumer
        return got

    assert asyncio.run(main()) == list(range(100))


def test_thread_feed_stops_the_producer_when_the_consumer_leaves() -> None:
    stopped = threading.Event()

    async def main() -> list[int]:
        feed: ThreadFeed[int] = ThreadFeed(limit=2)

        def produce(out: ThreadFeed[int]) -> None:
            try:
                for item in range(10**9):
                    out.put(item)
            except FeedStopped:
                stopped.set()
                raise

        feed.run(produce, "test-feed")
        got = []
        async for item in feed:
            got.append(item)
            if len(got) == 3:
                break
        feed.stop()
        return got

    assert asyncio.run(main()) == [0, 1, 2]
    assert stopped.wait(5)


def test_thread_feed_raises_the_producers_error() -> None:
    async def main() -> list[int]:
        feed: ThreadFeed[int] = ThreadFeed()

        def produce(out: ThreadFeed[int]) -> None:
            out.put(1)
            raise ValueError("bad tar")

        feed.run(produce, "test-feed")
        return [item async for item in feed]

    with pytest.raises(ValueError, match="bad tar"):
        asyncio.run(main())
