"""The build's progress as dockerd's JSON stream: `StreamReporter` (the engine's
BuildReporter, called on the build thread) hands lines to the event loop, where
`StreamWriter` writes them to the client; see `cove.api.build` (Threads, Cancellation)."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
import threading
from typing import Any

from aiohttp import web

from cove import errors
from cove.api.build_options import BuildOptions

log = logging.getLogger("cove.api")

POLL_S = 0.5  # how often a waiting handler checks that its client is still there
PENDING_LIMIT = 4 << 20  # bytes of output waiting for the client before the build waits
LINE, DONE, FAILED = "line", "done", "failed"


class BuildCancelled(errors.BuildError):
    """The client of a build went away (or the server is stopping): the build stops at its
    next step."""


# --- the reporter: the build thread's calls as lines on the event loop --------------------


def short_id(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


class StreamReporter:
    """The engine's BuildReporter: each call becomes a `{"stream"}` line handed to the event
    loop. Called on the build thread (and, for RUN output, maybe on a reader thread)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[tuple[str, Any]],
        stop: threading.Event,
        limit: int = PENDING_LIMIT,
    ) -> None:
        self._loop = loop
        self._queue = queue
        self.stop = stop
        self._limit = limit
        self._pending = 0
        self._flow = threading.Condition()
        self._lock = threading.RLock()  # (the engine calls one at a time; this is cheap)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._line_open = False  # output that did not end with a newline

    # called by the engine

    def step(self, number: int, total: int, stage: str, text: str) -> None:
        self._check()
        with self._lock:
            self._end_output()
            self._send(f"Step {number}/{total} : {text}\n")

    def cached(self) -> None:
        self._check()
        self._send(" ---> Using cache\n")

    def output(self, data: bytes) -> None:
        self._check()  # (the engine then removes the RUN container, killing it)
        with self._lock:
            text = self._decoder.decode(data)
            if text:
                self._line_open = not text.endswith("\n")
                self._send(text)

    def step_done(self, image_id: str) -> None:
        with self._lock:
            self._end_output()
            self._send(f" ---> {short_id(image_id)}\n")
        self._check()

    def note(self, message: str) -> None:
        with self._lock:
            self._end_output()
            self._send(message if message.endswith("\n") else message + "\n")

    def intermediate_container(self, container_id: str, removed: bool) -> None:
        """dockerd's legacy builder names each RUN step's container."""
        with self._lock:
            self._end_output()
            short = container_id[:12]
            self._send(f"Removing intermediate container {short}\n" if removed
                       else f" ---> Running in {short}\n")  # fmt: skip

    # the plumbing

    def _check(self) -> None:
        if self.stop.is_set():
            raise BuildCancelled("the build was cancelled: its client went away")

    def _end_output(self) -> None:
        tail = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        if tail:
            self._send(tail)
            self._line_open = not tail.endswith("\n")
        if self._line_open:
            self._send("\n")
            self._line_open = False

    def _send(self, text: str) -> None:
        size = len(text)
        with self._flow:
            while self._pending > self._limit and not self.stop.is_set():
                self._flow.wait(POLL_S)
            self._pending += size
        self.put(LINE, text)

    def put(self, kind: str, value: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is closed: the server is gone
            self.stop.set()

    def drained(self, size: int) -> None:
        """`size` characters have gone out to the client (on the event loop)."""
        with self._flow:
            self._pending -= size
            self._flow.notify_all()


# --- the handler -----------------------------------------------------------------------


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode() + b"\r\n"


def error_line(message: str) -> dict[str, Any]:
    return {"errorDetail": {"message": message}, "error": message}


def request_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


class StreamWriter:
    """The event loop's side: lines from the queue to the client (held back with q=1)."""

    def __init__(self, request: web.Request, options: BuildOptions,
                 reporter: StreamReporter) -> None:  # fmt: skip
        self.request = request
        self.options = options
        self.reporter = reporter
        self.held: list[bytes] = []  # q=1: the messages dockerd keeps back
        self._response: web.StreamResponse | None = None
        self.client_gone = False

    @property
    def response(self) -> web.StreamResponse:
        return self._response if self._response is not None else web.Response(status=200)

    async def _next(self, queue: asyncio.Queue[tuple[str, Any]]) -> tuple[str, Any] | None:
        if request_gone(self.request):
            self.client_gone = True
            return None
        while True:
            try:
                return await asyncio.wait_for(queue.get(), POLL_S)
            except TimeoutError:
                if request_gone(self.request):
                    self.client_gone = True
                    return None

    async def _write(self, data: bytes) -> None:
        if self._response is None:
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(self.request)
            self._response = response
        await self._response.write(data)

    async def pump(self, queue: asyncio.Queue[tuple[str, Any]]) -> None:
        while True:
            event = await self._next(queue)
            if event is None:
                return
            batch = [event]
            while not queue.empty():
                batch.append(queue.get_nowait())
            out = bytearray()
            sent = 0
            finished = False
            for kind, value in batch:
                if kind == LINE:
                    line = _encode({"stream": value})
                    sent += len(value)
                    if self.options.quiet:
                        self.held.append(line)
                    else:
                        out += line
                elif kind == DONE:
                    out += self._success(value)
                    finished = True
                    break
                else:
                    if not out and not self.held and self._response is None:
                        raise value  # nothing sent yet: an HTTP error status
                    out += self._failure(value)
                    finished = True
                    break
            if out:
                try:
                    await self._write(bytes(out))
                except ConnectionError:
                    self.client_gone = True
                    return
            self.reporter.drained(sent)
            if finished:
                if self._response is not None:
                    with contextlib.suppress(ConnectionError):
                        await self._response.write_eof()
                return

    def _success(self, image_id: str) -> bytes:
        from cove.image.reference import parse_reference

        if self.options.quiet:
            return _encode({"stream": image_id + "\n"})
        out = bytearray()
        if self.options.aux:
            out += _encode({"aux": {"ID": image_id}})
        out += _encode({"stream": f"Successfully built {short_id(image_id)}\n"})
        for tag in self.options.tags:
            out += _encode({"stream": f"Successfully tagged {parse_reference(tag).familiar()}\n"})
        return bytes(out)

    def _failure(self, exc: BaseException) -> bytes:
        if not isinstance(exc, errors.CoveError):
            log.warning("%s %s: the build failed: %r", self.request.method, self.request.path,
                        exc)  # fmt: skip
        out = bytearray(b"".join(self.held))
        self.held.clear()
        out += _encode(error_line(failure_message(exc)))
        return bytes(out)


def failure_message(exc: BaseException) -> str:
    """The error line of a failed build: a failed RUN in dockerd's words (which scripts and
    docker-py's BuildError users match on), anything else as the engine says it."""
    if isinstance(exc, errors.StepFailed):
        command = " ".join(exc.command)
        return f"The command '{command}' returned a non-zero code: {exc.exit_code}"
    return str(exc) or type(exc).__name__
