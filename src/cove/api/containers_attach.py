"""Attach (hijacked, and over a websocket) and resize.

Attach relays between the client and the container's monitor (`containers_monitor`). A
container that does not run yet (`docker run` posts attach, then start; `docker start -a`
too) gets a waiter: the start in this server connects it to the new monitor before init
runs, so no output is missed. A start from elsewhere (another process) is noticed by the
monitor's socket appearing. Without a terminal the client gets Docker's multiplexed
frames, with one the raw bytes.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from cove.api.containers_monitor import MonitorLink, NextMonitor
from cove.api.containers_target import Target, find_target
from cove.api.context import Engine, engine_of
from cove.api.errors import BadParameter, Conflict
from cove.api.hijack import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    Hijacked,
    frame,
    serve_hijacked,
    stream_flag,
    until_set,
)
from cove.api.query import query_bool
from cove.api.routing import Routes, request_version
from cove.engine.attach import EXIT, HANDOFF, RESIZE, STDERR, STDIN_CLOSE, STDIN_DATA, STDOUT
from cove.engine.detach_keys import DEFAULT_DETACH_KEYS, EscapeProxy, parse_detach_keys

if TYPE_CHECKING:
    from cove.engine.container_logs import LogEntry
    from cove.engine.state import ContainerRecord

routes = Routes()
log = logging.getLogger("cove.api")


def _emit(engine: Engine, action: str, record: ContainerRecord, **extra: object) -> None:
    """Record an event (Docker's "attach", ...) without waiting for it."""
    from cove.engine import events

    task = asyncio.ensure_future(
        engine.run(lambda: events.emit(engine.root, action, record, **extra))
    )
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Future[None]] = set()


# --- attach ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttachOptions:
    logs: bool
    stream: bool
    stdin: bool
    stdout: bool
    stderr: bool
    detach_keys: bytes

    @classmethod
    def from_query(cls, request: web.Request) -> AttachOptions:
        keys = request.query.get("detachKeys", "") or DEFAULT_DETACH_KEYS
        return cls(
            logs=query_bool(request, "logs"),
            stream=query_bool(request, "stream"),
            stdin=query_bool(request, "stdin"),
            stdout=query_bool(request, "stdout"),
            stderr=query_bool(request, "stderr"),
            detach_keys=parse_detach_keys(keys),
        )

    def wants(self, kind: int) -> bool:
        return (kind == STDOUT and self.stdout) or (kind == STDERR and self.stderr)


def _check_attachable(target: Target) -> None:
    status = target.record.status
    if status == "paused":
        raise Conflict("You cannot attach to a paused container, unpause it first")
    if status == "restarting":
        raise Conflict("You cannot attach to a restarting container, wait until it is running")


class _Encoder:
    """Output for the client: frames without a terminal, raw bytes with one."""

    def __init__(self, options: AttachOptions, tty: bool) -> None:
        self.options = options
        self.tty = tty

    def encode(self, frames: list[tuple[int, bytes]]) -> tuple[bytes, bool]:
        """(the bytes to send, whether the exit frame came)."""
        out = bytearray()
        for kind, payload in frames:
            if kind == EXIT:
                return bytes(out), True
            if payload and self.options.wants(kind):
                out += payload if self.tty else frame(kind, payload)
        return bytes(out), False


def _log_bytes(entries: list[LogEntry], options: AttachOptions, tty: bool) -> bytes:
    frames = [(STDERR if e.stream == "stderr" else STDOUT, e.text) for e in entries]
    return _Encoder(options, tty).encode(frames)[0]


async def _replay_logs(engine: Engine, stream: Hijacked, target: Target, o: AttachOptions) -> None:
    from cove.engine.container_logs import read_logs

    entries = await engine.run(read_logs, target.record.log_path)
    data = _log_bytes(entries, o, target.tty)
    for start in range(0, len(data), 1 << 16):
        await stream.write(data[start : start + (1 << 16)])


@routes.post("/containers/{id}/attach")
async def attach(request: web.Request) -> web.StreamResponse:
    term = request.match_info["id"]
    options = AttachOptions.from_query(request)
    engine = engine_of(request)
    target = await find_target(request, term)
    _check_attachable(target)
    content_type = RAW_STREAM if target.tty else MULTIPLEXED_STREAM
    monitor = NextMonitor(target.id) if options.stream else None
    try:
        link = await monitor.now(target.running) if monitor is not None else None
        _emit(engine, "attach", target.record)

        async def relay(stream: Hijacked) -> None:
            nonlocal link
            if options.logs:
                await _replay_logs(engine, stream, target, options)
            if monitor is None:
                return
            with stream_flag(request, "attach") as flag:
                if link is None:
                    link = await _first(monitor.wait(), _either(until_set(flag),
                                                                stream.wait_gone()))  # fmt: skip
                if link is not None:
                    await _attach_relay(engine, stream, link, target, options, flag)

        return await serve_hijacked(request, content_type, relay)
    finally:
        if monitor is not None:
            monitor.withdraw()
        if link is not None:
            await link.close()


async def _finish(engine: Engine, container_id: str) -> None:
    """Record a container's exit (and apply --rm or its restart policy), as its monitor's
    exit command would have. Errors are logged: `cove system check` repairs what is left."""
    try:
        await engine.call(lambda services: services.containers.finish(container_id))
    except Exception as exc:  # the stream goes on; the record is repaired later
        log.warning("recording the exit of %s: %s", container_id[:12], exc)


async def _either(*waits: Any) -> None:
    """Return when the first of `waits` returns."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _first(wanted: Any, stop: Any) -> MonitorLink | None:
    """The result of `wanted`, or None if `stop` finishes first."""
    task = asyncio.ensure_future(wanted)
    stopper = asyncio.ensure_future(stop)
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            result: MonitorLink | None = task.result()
            return result
        return None
    finally:
        for pending in (task, stopper):
            pending.cancel()


async def _attach_relay(
    engine: Engine,
    stream: Hijacked,
    link: MonitorLink,
    target: Target,
    options: AttachOptions,
    flag: threading.Event,
) -> None:
    """Relay until the container exits, the client goes or the server stops. The server
    takes the exit over from the monitor (HANDOFF): it records the exit itself as soon as
    the exit frame comes, instead of the monitor starting `cove container cleanup` (a new
    interpreter, most of a short `docker run`'s time). The hand-off holds only while this
    connection is open when the container exits; otherwise the monitor's exit command runs."""
    encoder = _Encoder(options, target.tty)
    use_stdin = options.stdin and target.open_stdin
    await link.send(HANDOFF)

    async def output() -> None:
        while True:
            frames = await link.read_frames()
            if frames is None:
                return
            data, exited = encoder.encode(frames)
            if exited:
                await _finish(engine, target.id)
            if data:
                await stream.write(data)
            if exited:
                return

    async def stdin() -> None:
        escape = EscapeProxy(options.detach_keys) if target.tty else None
        while True:
            data = await stream.read()
            if not data:
                if target.stdin_once:
                    await link.send(STDIN_CLOSE)
                await asyncio.Event().wait()  # input ended; the output goes on
            if escape is not None:
                data, detach = escape.feed(data)
                if data:
                    await link.send(STDIN_DATA, data)
                if detach:
                    return
            else:
                await link.send(STDIN_DATA, data)

    tasks = [asyncio.ensure_future(output()), asyncio.ensure_future(until_set(flag)),
             asyncio.ensure_future(stream.wait_gone())]  # fmt: skip
    if use_stdin:
        tasks.append(asyncio.ensure_future(stdin()))
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # its error, if any
    finally:
        for task in tasks:
            task.cancel()


@routes.get("/containers/{id}/attach/ws")
async def attach_ws(request: web.Request) -> web.StreamResponse:
    """The same relay over a websocket: raw output (no frames, binary messages since API
    1.28), client messages are stdin."""
    term = request.match_info["id"]
    options = AttachOptions.from_query(request)
    engine = engine_of(request)
    target = await find_target(request, term)
    _check_attachable(target)
    binary = request_version(request) >= (1, 28)
    monitor = NextMonitor(target.id) if options.stream else None
    link: MonitorLink | None = None
    ws = web.WebSocketResponse()
    try:
        link = await monitor.now(target.running) if monitor is not None else None
        await ws.prepare(request)
        _emit(engine, "attach", target.record)

        async def send(data: bytes) -> None:
            if binary:
                await ws.send_bytes(data)
            else:
                await ws.send_str(data.decode(errors="replace"))

        if options.logs:
            from cove.engine.container_logs import read_logs

            entries = await engine.run(read_logs, target.record.log_path)
            data = _log_bytes(entries, options, True)
            if data:
                await send(data)
        if monitor is not None:
            with stream_flag(request, "attach") as flag:
                if link is None:
                    link = await _first(monitor.wait(), until_set(flag))
                if link is not None:
                    await _ws_relay(ws, link, target, options, send, flag)
    except ConnectionError:
        pass
    finally:
        if monitor is not None:
            monitor.withdraw()
        if link is not None:
            await link.close()
        await ws.close()
    return ws


async def _ws_relay(
    ws: web.WebSocketResponse,
    link: MonitorLink,
    target: Target,
    options: AttachOptions,
    send: Any,
    flag: threading.Event,
) -> None:
    encoder = _Encoder(options, True)

    async def output() -> None:
        while True:
            frames = await link.read_frames()
            if frames is None:
                return
            data, exited = encoder.encode(frames)
            if data:
                await send(data)
            if exited:
                return

    async def stdin() -> None:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                data = message.data
            elif message.type == WSMsgType.TEXT:
                data = message.data.encode()
            else:
                break
            if options.stdin and target.open_stdin and data:
                await link.send(STDIN_DATA, data)
        if options.stdin and target.open_stdin and target.stdin_once:
            await link.send(STDIN_CLOSE)

    tasks = [asyncio.ensure_future(output()), asyncio.ensure_future(stdin()),
             asyncio.ensure_future(until_set(flag))]  # fmt: skip
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[1] in done and not flag.is_set():  # the client closed: nothing more to send
            return
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()


# --- resize ----------------------------------------------------------------------------------


def _size(request: web.Request) -> tuple[int, int]:
    """(rows, columns) from ?h= and ?w= (Docker requires both)."""
    values = []
    for name in ("h", "w"):
        text = request.query.get(name, "")
        try:
            value = int(text)
        except ValueError:
            raise BadParameter(f'strconv.Atoi: parsing "{text}": invalid syntax') from None
        if value < 0 or value > 65535:
            raise BadParameter(f"invalid terminal size {name}={value}")
        values.append(value)
    return values[0], values[1]


@routes.post("/containers/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    rows, columns = _size(request)
    target = await find_target(request, term)
    if not target.running:
        raise Conflict(f"Container {target.id} is not running")
    try:
        link = await MonitorLink.connect(target.id)
    except OSError:
        raise Conflict(f"Container {target.id} is not running") from None
    try:
        await link.send(RESIZE, f"{rows} {columns}".encode())
    finally:
        await link.close()
    return web.Response(status=200)
