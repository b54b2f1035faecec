"""Taking over an HTTP connection for a raw two-way stream (attach, exec start): Docker's
"hijack", and the stream formats that travel on it.

A client that sends an `Upgrade` header (`Connection: Upgrade`, `Upgrade: tcp`: the docker
CLI and docker-py do) gets `101 UPGRADED`; one that does not gets `200 OK`. Either way the
head is followed by the raw stream in both directions, with no chunking and no length,
until one side closes. The content type says what the stream holds:
`application/vnd.docker.raw-stream` (a terminal's bytes, or anything unframed) or
`application/vnd.docker.multiplexed-stream` (Docker's frames, `frame` below).

Half-close: a client may shut down its sending side and keep reading (the docker CLI does
when its stdin ends). `Hijacked.read` then returns b"" and the connection stays open for
output until the server closes it.

How: the response head is written straight to the transport, whose protocol is then
swapped for `_RawProtocol` (aiohttp's own protocol would close the connection on the
client's EOF, and would parse what follows as HTTP); bytes aiohttp had already received
after the head are taken over. The handler returns the `Hijacked.response`, which aiohttp
finishes without writing anything, and closes the connection. Handlers run their relay
through `serve_hijacked`, so that an error after the head never becomes an HTTP response
written into the raw stream.

A limit: aiohttp's C request parser switches protocols only for websocket upgrades, so bytes
a client pipelines behind the request head, before the 101 arrives, are not kept (the
Python parser keeps them, and they are taken over). The Docker clients send nothing before
they have read the 101 (the docker CLI, docker-py), and everything after it reaches us.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Generic, TypeVar

from aiohttp import web

from cove.api.routing import add_server_headers

log = logging.getLogger("cove.api")

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"

# Docker's stream types in a frame header; the monitor uses the same header.
STDIN, STDOUT, STDERR = 0, 1, 2
_HEADER = struct.Struct(">BxxxI")
HEADER_SIZE = _HEADER.size

_READ_LIMIT = 1 << 20  # client bytes held before the transport stops reading (back-pressure)
_CHUNK = 65536


def frame(kind: int, payload: bytes) -> bytes:
    """One frame of Docker's multiplexed stream: [kind, 0, 0, 0, len (u32 BE)] + payload."""
    return _HEADER.pack(kind, len(payload)) + payload


class FrameParser:
    """Frames out of a byte stream that arrives in arbitrary pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames: list[tuple[int, bytes]] = []
        while len(self._buffer) >= HEADER_SIZE:
            kind, length = _HEADER.unpack_from(self._buffer)
            end = HEADER_SIZE + length
            if len(self._buffer) < end:
                break
            frames.append((kind, bytes(self._buffer[HEADER_SIZE:end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)


# --- the hijacked connection -----------------------------------------------------------------


class HijackedResponse(web.StreamResponse):
    """What a handler returns once it took the connection: aiohttp writes nothing more and
    closes the connection (the head went out through the transport already)."""

    def __init__(self, status: int) -> None:
        super().__init__(status=status)
        self.force_close()

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


class _RawProtocol(asyncio.Protocol):
    """The connection's protocol after the hijack: buffers what the client sends, notes its
    EOF without closing, and tells aiohttp's protocol when the connection is lost."""

    def __init__(self, previous: asyncio.BaseProtocol, transport: asyncio.Transport) -> None:
        self.previous = previous
        self.transport = transport
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.paused_reading = False
        self._waiter: asyncio.Future[None] | None = None
        self.writable = asyncio.Event()
        self.writable.set()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_data(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _READ_LIMIT and not self.paused_reading:
            self.paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True  # keep the connection open: output may still go to the client

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.writable.set()
        self._wake()
        self.previous.connection_lost(exc)

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()


class Hijacked:
    """A connection taken over from aiohttp (see the module docstring)."""

    def __init__(self, protocol: _RawProtocol, response: HijackedResponse) -> None:
        self._protocol = protocol
        self.response = response

    @property
    def transport(self) -> asyncio.Transport:
        return self._protocol.transport

    @property
    def closed(self) -> bool:
        return self._protocol.lost or self.transport.is_closing()

    async def read(self, limit: int = _CHUNK) -> bytes:
        """What the client sent next; b"" once it stopped sending (half-close or gone)."""
        protocol = self._protocol
        while not protocol.buffer and not protocol.eof and not protocol.lost:
            await protocol.wait_data()
        if not protocol.buffer:
            return b""
        data = bytes(protocol.buffer[:limit])
        del protocol.buffer[:limit]
        if protocol.paused_reading and len(protocol.buffer) < _READ_LIMIT // 2:
            protocol.paused_reading = False
            if not self.closed:
                self.transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        """Send `data`, waiting while the client is slow; ConnectionResetError once the
        client is gone."""
        if self.closed:
            raise ConnectionResetError("the client closed the connection")
        if data:
            self.transport.write(data)
        await self._protocol.writable.wait()
        if self._protocol.lost:
            raise ConnectionResetError("the client closed the connection")

    def peer_gone(self) -> bool:
        """Whether the client closed its end for good: a unix socket tells that apart from a
        half-close (POLLHUP); over TCP it shows only when a write fails."""
        if self.closed:
            return True
        sock = self.transport.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_UNIX:
            return False
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLHUP)
        return any(events & select.POLLHUP for _, events in poller.poll(0))

    async def wait_gone(self, interval: float = 0.5) -> None:
        """Return once the client is gone for good (see `peer_gone`)."""
        while not self.peer_gone():
            await asyncio.sleep(interval)

    def close(self) -> None:
        """Close the connection once what was written has gone out."""
        if not self.transport.is_closing():
            self.transport.close()


def wants_upgrade(request: web.BaseRequest) -> bool:
    return "Upgrade" in request.headers


async def hijack(request: web.Request, content_type: str) -> Hijacked:
    """Answer `request` with 101 (it asked to upgrade) or 200 and the raw stream's head, and
    take the connection over."""
    transport = request.transport
    protocol = request.protocol
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client closed the connection")
    upgrade = wants_upgrade(request)
    status = 101 if upgrade else 200
    response = HijackedResponse(status)
    # Api-Version, Server, ... (and the request is marked as answered: should an error
    # escape the handler now, the error middleware gives back this response, which writes
    # nothing into the stream)
    await add_server_headers(request, response)
    lines = ["HTTP/1.1 101 UPGRADED" if upgrade else "HTTP/1.1 200 OK",
             f"Content-Type: {content_type}"]  # fmt: skip
    if upgrade:
        lines += ["Connection: Upgrade", "Upgrade: tcp"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    raw = _RawProtocol(protocol, transport)
    # What aiohttp received after the request's head (an upgraded connection's first bytes).
    collected: list[bytes] = []

    class _Collector:
        def feed_data(self, data: bytes) -> tuple[bool, bytes]:
            collected.append(bytes(data))
            return False, b""

        def feed_eof(self) -> None:
            return None

    try:
        protocol.set_parser(_Collector())  # type: ignore[arg-type]
    except AssertionError:
        pass  # aiohttp is reading a request body through its own parser: nothing buffered
    transport.set_protocol(raw)
    raw.buffer += b"".join(collected)
    transport.write(head)
    transport.resume_reading()
    await _head_read(transport)
    return Hijacked(raw, response)


SIOCOUTQ = 0x5411  # bytes in the socket's send queue: on a unix socket, not yet read
HEAD_READ_WAIT = 0.2  # seconds at most


async def _head_read(transport: asyncio.Transport) -> None:
    """Wait (briefly) until the client has read the head. docker-py reads the head through
    a buffered file, then the stream from the socket underneath: bytes that arrived with
    the head end up in that buffer and are lost (a replayed log, seen under load). The
    stream's first bytes wait until the head is out of the socket."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return
    deadline = time.monotonic() + HEAD_READ_WAIT
    while time.monotonic() < deadline:
        try:
            queued = struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQ, b"\0" * 4))[0]
        except OSError:
            return
        if queued == 0 and not transport.get_write_buffer_size():
            return
        await asyncio.sleep(0.001)


Relay = Callable[[Hijacked], Awaitable[None]]


async def serve_hijacked(
    request: web.Request, content_type: str, relay: Relay
) -> web.StreamResponse:
    """Hijack `request` and run `relay` on the stream; whatever happens, the connection is
    closed at the end and no HTTP response is written into it."""
    stream = await hijack(request, content_type)
    try:
        await relay(stream)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass  # the client or the container went away: the stream just ends
    except Exception:
        log.exception("%s %s: the stream failed", request.method, request.path)
    finally:
        stream.close()
    return stream.response


# --- blocking producers and long-lived streams -----------------------------------------------

T = TypeVar("T")


class FeedStopped(Exception):
    """The consumer of a `ThreadFeed` went away: the producer should stop."""


class ThreadFeed(Generic[T]):
    """Items from a blocking producer running on a thread of its own, for the event loop:
    the producer blocks while `limit` items wait (back-pressure), and `put` raises
    FeedStopped once the consumer called `stop` (the client went away)."""

    def __init__(self, limit: int = 64) -> None:
        self.loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[bool, object]] = asyncio.Queue()
        self._slots = threading.Semaphore(limit)
        self.stopped = threading.Event()

    # -- the producer's side (its thread) --
    def put(self, item: T) -> None:
        while not self._slots.acquire(timeout=0.25):
            if self.stopped.is_set():
                raise FeedStopped
        if self.stopped.is_set():
            raise FeedStopped
        self._send(False, item)

    def _send(self, end: bool, value: object) -> None:
        try:
            self.loop.call_soon_threadsafe(self._queue.put_nowait, (end, value))
        except RuntimeError:  # the loop is closed: nobody reads any more
            raise FeedStopped from None

    def run(self, producer: Callable[[ThreadFeed[T]], None], name: str) -> threading.Thread:
        """Run `producer(self)` on a new daemon thread; its end (or error) ends the feed."""

        def body() -> None:
            error: BaseException | None = None
            try:
                producer(self)
            except FeedStopped:
                pass
            except BaseException as exc:  # handed to the consumer, which raises it
                error = exc
            with contextlib.suppress(FeedStopped):
                self._send(True, error)

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return thread

    # -- the consumer's side (the event loop) --
    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            end, value = await self._queue.get()
            if end:
                if isinstance(value, BaseException):
                    raise value
                return
            self._slots.release()
            yield value  # type: ignore[misc]

    def stop(self) -> None:
        self.stopped.set()


@contextlib.contextmanager
def stream_flag(request: web.Request, kind: str) -> Iterator[threading.Event]:
    """The server's stop flag for one long-lived stream (set when the server shuts down)."""
    from cove.api.app import register_stream, unregister_stream

    flag = register_stream(request.app, kind)
    try:
        yield flag
    finally:
        unregister_stream(request.app, kind, flag)


async def client_gone(request: web.Request, interval: float = 0.5) -> None:
    """Return once the client of a (not hijacked) streamed response has gone away."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(interval)


async def until_set(flag: threading.Event, interval: float = 0.25) -> None:
    """Return once `flag` is set (a threading.Event: polled)."""
    while not flag.is_set():
        await asyncio.sleep(interval)
