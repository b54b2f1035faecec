"""GET /containers/{id}/logs: from the engine's json-file reader; `follow` runs it on a
thread of its own and ends when the container's monitor is gone (the log drained)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

from cove.api.containers_target import find_target
from cove.api.context import engine_of
from cove.api.errors import BadParameter
from cove.api.hijack import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    ThreadFeed,
    client_gone,
    frame,
    stream_flag,
)
from cove.api.query import query_bool
from cove.api.routing import Routes
from cove.engine.attach import STDERR, STDOUT

if TYPE_CHECKING:
    from cove.engine.container_logs import LogEntry

routes = Routes()


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
