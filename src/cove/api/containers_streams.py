"""Container streams: attach (hijacked, and over a websocket), logs, stats, resize.

Attach relays between the client and the container's monitor (its unix socket speaks
Docker's frames: `cove.engine.attach`). A container that does not run yet (`docker run`
posts attach, then start; `docker start -a` too) gets a waiter: the start in this server
connects it to the new monitor before init runs, so no output is missed. A start from
elsewhere (another process) is noticed by the monitor's socket appearing. Without a
terminal the client gets Docker's multiplexed frames, with one the raw bytes.

Logs come from the engine's json-file reader; `follow` runs it on a thread of its own and
ends when the container's monitor is gone (the log drained). Stats are one JSON document
per second (`stream`), or one after two samples a second apart (so that precpu_stats is
there for the CPU %), or one at once (`one-shot`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from cove.api.context import Engine, Services, engine_of
from cove.api.errors import BadParameter, Conflict, NotFound
from cove.api.hijack import (
    DEFAULT_DETACH_KEYS,
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    EscapeProxy,
    FrameParser,
    Hijacked,
    ThreadFeed,
    client_gone,
    frame,
    parse_detach_keys,
    serve_hijacked,
    stream_flag,
    until_set,
)
from cove.api.query import query_bool
from cove.api.routing import Routes, request_version
from cove.engine.attach import (
    EXIT,
    HANDOFF,
    RESIZE,
    STDERR,
    STDIN_CLOSE,
    STDIN_DATA,
    STDOUT,
    AttachClient,
    await_start,
)
from cove.errors import NoSuchContainer

if TYPE_CHECKING:
    from cove.engine.container_logs import LogEntry
    from cove.engine.container_stats import Reading
    from cove.engine.state import ContainerRecord

routes = Routes()
log = logging.getLogger("cove.api")

RUNNING = ("running", "paused")
_WATCH_INTERVAL = 0.2  # how often a waiting attach looks for a monitor started elsewhere
STATS_INTERVAL = 1.0
_ZERO_TIME = "0001-01-01T00:00:00Z"
_BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
               "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
               "io_time_recursive", "sectors_recursive")  # fmt: skip


@contextlib.contextmanager
def no_such_container(term: str) -> Iterator[None]:
    try:
        yield
    except NoSuchContainer:
        raise NotFound(f"No such container: {term}") from None


@dataclass(frozen=True)
class Target:
    """What the stream handlers need of a container."""

    record: ContainerRecord
    tty: bool
    open_stdin: bool  # it has a stdin to write to (-i)
    stdin_once: bool  # close it when the attached client's stdin ends

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def running(self) -> bool:
        return self.record.status in RUNNING


def target_of(s: Services, term: str) -> Target:
    record = s.containers.get(term)
    settings = record.settings
    interactive = bool(settings.get("stdin") or record.config.get("interactive"))
    attach_stdin = bool(settings.get("attach_stdin", interactive))
    return Target(
        record=record,
        tty=bool(settings.get("tty") or record.config.get("tty")),
        open_stdin=interactive,
        stdin_once=bool(settings.get("stdin_once", interactive and attach_stdin)),
    )


async def find_target(request: web.Request, term: str) -> Target:
    with no_such_container(term):
        return await engine_of(request).call(lambda s: target_of(s, term))


def _emit(engine: Engine, action: str, record: ContainerRecord, **extra: object) -> None:
    """Record an event (Docker's "attach", ...) without waiting for it."""
    from cove.engine import events

    task = asyncio.ensure_future(
        engine.run(lambda: events.emit(engine.root, action, record, **extra))
    )
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Future[None]] = set()


# --- the monitor, from the event loop --------------------------------------------------------


class MonitorLink:
    """An asyncio connection to a container's monitor (`cove.engine.attach` frames)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._parser = FrameParser()

    @classmethod
    async def connect(cls, container_id: str) -> MonitorLink:
        from cove.engine.monitor import attach_socket_path

        reader, writer = await asyncio.open_unix_connection(attach_socket_path(container_id))
        return cls(reader, writer)

    @classmethod
    async def adopt(cls, client: AttachClient) -> MonitorLink:
        """Take over the socket of a client the engine connected (a start's waiter)."""
        reader, writer = await asyncio.open_unix_connection(sock=client.sock)
        return cls(reader, writer)

    async def read_frames(self) -> list[tuple[int, bytes]] | None:
        """The next complete frames; None once the monitor closed the connection."""
        while True:
            try:
                data = await self.reader.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                return None
            frames = self._parser.feed(data)
            if frames:
                return frames

    async def send(self, kind: int, payload: bytes = b"") -> None:
        self.writer.write(frame(kind, payload))
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


class NextMonitor:
    """A connection to a container's monitor: at once when it runs, else to the monitor its
    next start makes, before init runs (see the module docstring). `withdraw` when done."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[AttachClient | None] = self.loop.create_future()
        self._cancel = await_start(container_id, self._deliver)
        self._adopted = False

    def _deliver(self, client: AttachClient | None) -> None:  # on the starting thread
        self.loop.call_soon_threadsafe(self._settle, client)

    def _settle(self, client: AttachClient | None) -> None:
        if self.future.done():  # withdrawn meanwhile
            if client is not None:
                client.close()
            return
        self.future.set_result(client)

    def withdraw(self) -> None:
        self._cancel()
        if not self.future.done():
            self.future.cancel()
        elif not self.future.cancelled() and not self._adopted:
            client = self.future.result()
            if client is not None:
                client.close()

    async def _adopt(self) -> MonitorLink | None:
        client = await self.future
        if client is None:
            return None
        self._adopted = True
        return await MonitorLink.adopt(client)

    async def _direct(self) -> MonitorLink | None:
        """Connect to the running monitor without the waiter; None when none answers (the
        waiter is registered again)."""
        if not self._cancel():
            return await self._adopt()  # a start delivered meanwhile: take that one
        try:
            return await MonitorLink.connect(self.container_id)
        except OSError:
            self._cancel = await_start(self.container_id, self._deliver)
            return None

    async def now(self, running: bool) -> MonitorLink | None:
        """The link when the container runs (else None: `wait` for it)."""
        return await self._direct() if running else None

    async def wait(self) -> MonitorLink:
        """The link of the next start (or of a monitor that appears meanwhile)."""
        from cove.engine.monitor import attach_socket_path

        path = attach_socket_path(self.container_id)
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.future), _WATCH_INTERVAL)
            if self.future.done():
                link = await self._adopt()
            elif os.path.exists(path):
                link = await self._direct()
            else:
                continue
            if link is not None:
                return link
            if self.future.done():  # delivered, but the connection failed: wait again
                self.future = self.loop.create_future()
                self._cancel = await_start(self.container_id, self._deliver)


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


# --- logs ------------------------------------------------------------------------------------


def _log_time(request: web.Request, name: str) -> int:
    """?since= / ?until= (a unix time, fraction allowed; 0 or absent: no bound) in ns."""
    from cove.engine.container_logs import parse_since

    text = request.query.get(name, "").strip()
    if not text or text == "0":
        return 0
    try:
        return parse_since(text, flag=name)
    except Exception as exc:
        raise BadParameter(str(exc)) from None


def _tail(request: web.Request) -> int | None:
    text = request.query.get("tail", "all").strip()
    if text in ("", "all"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadParameter(f"invalid value for tail: {text!r} (want a number or all)") from None
    return value if value >= 0 else None


@routes.get("/containers/{id}/logs")
async def logs(request: web.Request) -> web.StreamResponse:
    from cove.engine.container_logs import follow_logs, format_entry, read_logs
    from cove.engine.monitor import monitor_alive

    term = request.match_info["id"]
    stdout = query_bool(request, "stdout")
    stderr = query_bool(request, "stderr")
    if not (stdout or stderr):
        raise BadParameter("Bad parameters: you must choose at least one stream")
    follow = query_bool(request, "follow")
    timestamps = query_bool(request, "timestamps")
    since, until, tail = _log_time(request, "since"), _log_time(request, "until"), _tail(request)
    engine = engine_of(request)
    target = await find_target(request, term)
    record = target.record
    wanted = {"stdout": stdout, "stderr": stderr}

    def encode(entries: list[LogEntry]) -> bytes:
        out = bytearray()
        for entry in entries:
            if not wanted.get(entry.stream, False):
                continue
            text = format_entry(entry, timestamps)
            out += text if target.tty else frame(STDERR if entry.stream == "stderr" else STDOUT,
                                                 text)  # fmt: skip
        return bytes(out)

    response = web.StreamResponse(status=200)
    response.content_type = RAW_STREAM if target.tty else MULTIPLEXED_STREAM
    if not (follow and target.running):
        entries = await engine.run(
            lambda: read_logs(record.log_path, tail=tail, since_ns=since, until_ns=until)
        )
        await response.prepare(request)
        data = encode(entries)
        for start in range(0, len(data), 1 << 18):
            await response.write(data[start : start + (1 << 18)])
        await response.write_eof()
        return response

    await response.prepare(request)
    with stream_flag(request, "logs") as flag:
        feed: ThreadFeed[list[LogEntry]] = ThreadFeed(limit=16)

        def stopped() -> bool:
            return (flag.is_set() or feed.stopped.is_set()
                    or not monitor_alive(record.monitor_pid, record.monitor_start))  # fmt: skip

        def produce(out: ThreadFeed[list[LogEntry]]) -> None:
            for entry in follow_logs(record.log_path, since_ns=since, tail=tail, stop=stopped):
                if until and entry.time_ns > until:
                    break
                out.put([entry])

        feed.run(produce, f"logs-{record.id[:12]}")
        watcher = asyncio.ensure_future(client_gone(request))
        watcher.add_done_callback(lambda _: feed.stop())  # a quiet log's client that left
        try:
            async for entries in feed:
                data = encode(entries)
                if data:
                    await response.write(data)
        finally:
            watcher.cancel()
            feed.stop()
    await response.write_eof()
    return response


# --- stats -----------------------------------------------------------------------------------


def _rfc3339(time_ns: int) -> str:
    if not time_ns:
        return _ZERO_TIME
    seconds, fraction = divmod(time_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def _zero_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def cpu_stats(reading: Reading | None) -> dict[str, Any]:
    """Docker's cpu_stats (and precpu_stats) from one reading."""
    if reading is None:
        return _zero_cpu()
    cpu = reading.cgroup.get("cpu") or {}
    usage = cpu.get("usage") or {}
    throttling = cpu.get("throttling") or {}
    cpu_usage: dict[str, Any] = {
        "total_usage": int(usage.get("total") or 0),
        "usage_in_kernelmode": int(usage.get("kernel") or 0),
        "usage_in_usermode": int(usage.get("user") or 0),
    }
    if usage.get("percpu"):
        cpu_usage["percpu_usage"] = [int(v) for v in usage["percpu"]]
    return {
        "cpu_usage": cpu_usage,
        "system_cpu_usage": reading.system_cpu,
        "online_cpus": reading.online_cpus,
        "throttling_data": {
            "periods": int(throttling.get("periods") or 0),
            "throttled_periods": int(throttling.get("throttledPeriods") or 0),
            "throttled_time": int(throttling.get("throttledTime") or 0),
        },
    }


def memory_stats(reading: Reading) -> dict[str, Any]:
    from cove.engine.container_stats import memory_limit

    memory: Mapping[str, Any] = reading.cgroup.get("memory") or {}
    if not memory:
        return {}
    usage = memory.get("usage") or {}
    raw = {str(k): int(v) for k, v in (memory.get("raw") or {}).items()}
    stats: dict[str, Any] = {
        "usage": int(usage.get("usage") or 0),
        "stats": raw,
        "limit": memory_limit(memory, reading.host_memory),
    }
    if "total_inactive_file" in raw:  # cgroup v1 has these two; v2 does not
        stats["max_usage"] = int(usage.get("max") or 0)
        stats["failcnt"] = int(usage.get("failcnt") or 0)
    return stats


def stats_document(
    record: ContainerRecord, reading: Reading | None, previous: Reading | None
) -> dict[str, Any]:
    """Docker's stats JSON for `reading` (None: the container does not run: zeros), with
    precpu_stats from `previous`."""
    document: dict[str, Any] = {
        "name": f"/{record.name}",
        "id": record.id,
        "read": _rfc3339(reading.taken_ns if reading else 0),
        "preread": _rfc3339(previous.taken_ns if previous else 0),
        "pids_stats": {},
        "blkio_stats": dict.fromkeys(_BLKIO_KEYS),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(reading),
        "precpu_stats": cpu_stats(previous),
        "memory_stats": memory_stats(reading) if reading else {},
    }
    if reading is None:
        return document
    pids = reading.cgroup.get("pids") or {}
    if pids:
        document["pids_stats"] = {"current": int(pids.get("current") or 0)}
        if int(pids.get("limit") or 0) > 0:
            document["pids_stats"]["limit"] = int(pids["limit"])
    entries = (reading.cgroup.get("blkio") or {}).get("ioServiceBytesRecursive")
    if entries:
        document["blkio_stats"]["io_service_bytes_recursive"] = [
            {"major": int(e.get("major", 0)), "minor": int(e.get("minor", 0)),
             "op": str(e.get("op", "")), "value": int(e.get("value", 0))}
            for e in entries
        ]  # fmt: skip
    if reading.networks:
        document["networks"] = {name: dict(counters) for name, counters in reading.networks.items()}
    return document


def _alive(record: ContainerRecord) -> bool:
    from cove.engine.monitor import monitor_alive

    return record.status in RUNNING and monitor_alive(record.monitor_pid, record.monitor_start)


@routes.get("/containers/{id}/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    from cove.engine.container_stats import read_reading

    term = request.match_info["id"]
    stream = query_bool(request, "stream", True)
    one_shot = query_bool(request, "one-shot")
    if stream and one_shot:
        raise BadParameter("cannot have stream=true and one-shot=true")
    engine = engine_of(request)
    target = await find_target(request, term)
    record = target.record

    async def sample() -> Reading | None:
        if not _alive(record):
            return None
        return await engine.run(read_reading, record.pid)

    if not stream:
        previous = None
        if not one_shot and target.running:
            previous = await sample()
            await asyncio.sleep(STATS_INTERVAL)
        current = await sample() if target.running else None
        if current is None:
            previous = None
        return web.json_response(stats_document(record, current, previous))

    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    await response.prepare(request)
    with stream_flag(request, "stats") as flag:
        previous = None
        while True:
            current = await sample()
            document = stats_document(record, current, previous)
            await response.write(json.dumps(document).encode() + b"\n")
            if current is None or flag.is_set():
                break
            previous = current
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until_set(flag, 0.1), STATS_INTERVAL)
    await response.write_eof()
    return response
