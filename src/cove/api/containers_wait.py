"""POST /containers/{id}/wait, with Docker's conditions, holding no thread while it waits.

    not-running  (the default) at once when the container is not running (created counts
                 as not running), else at its next exit
    next-exit    at its next exit, even if it has not started yet
    removed      when it is removed (the exit code of its last exit)

Docker's clients post the wait before they start the container (`docker run`: next-exit,
or removed with --rm) and block until the response's headers arrive, so the headers go
out as soon as the wait is registered, and the body {"StatusCode": N, "Error": null} when
the condition is met.

How an exit is seen: every exit and removal is recorded in the engine's event journal
(`die` with the exit code, `destroy`; written by whichever process records it: the
monitor's clean-up, a stop, an rm). One follower per server tails the journal while
someone waits and settles the waits it concerns; inotify wakes it when the journal is
written (a poll every FOLLOW_INTERVAL where inotify is unavailable, and as a fallback).
As a safety net (an event that could not be written), the waits are also checked against
the container records every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import struct
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cove.api.context import Services, engine_of
from cove.api.errors import BadParameter, NotFound
from cove.errors import NoSuchContainer

CONDITIONS = ("not-running", "next-exit", "removed")
FOLLOW_INTERVAL = 0.03
RECHECK_INTERVAL = 1.0
CLIENT_CHECK_INTERVAL = 1.0
RUNNING = ("running", "paused", "restarting")


@dataclass(eq=False)
class Waiter:
    container_id: str
    condition: str
    since_ns: int
    future: asyncio.Future[int]
    exit_code: int = 0  # the last exit seen (for "removed")
    finished_at: str = ""  # the record's finished_at when the wait began (for next-exit)

    def settle(self, code: int) -> None:
        if not self.future.done():
            self.future.set_result(code)


@dataclass
class Follower:
    """Tails `<root>/events.jsonl` while waiters exist."""

    engine: Any
    waiters: dict[str, list[Waiter]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    file: Any = None
    buffer: bytes = b""
    watch: JournalWatch | None = None
    watch_tried: bool = False

    @property
    def path(self) -> str:
        from cove.engine.events import journal_path

        return journal_path(self.engine.root)

    def register(self, container_id: str, condition: str) -> Waiter:
        if self.task is None or self.task.done():
            self._open_at_end()
        waiter = Waiter(container_id, condition, time.time_ns(),
                        asyncio.get_running_loop().create_future())  # fmt: skip
        self.waiters.setdefault(container_id, []).append(waiter)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())
        return waiter

    def forget(self, waiter: Waiter) -> None:
        found = self.waiters.get(waiter.container_id, [])
        if waiter in found:
            found.remove(waiter)
        if not found:
            self.waiters.pop(waiter.container_id, None)

    # -- the journal ---------------------------------------------------------------------
    def _open_at_end(self) -> None:
        self._close()
        try:
            self.file = open(self.path, "rb")
            self.file.seek(0, os.SEEK_END)
        except OSError:
            self.file = None  # no journal yet: read it from the start when it appears
        self.buffer = b""

    def _close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def _read_new(self) -> list[dict[str, Any]]:
        """The events appended since the last read (a rotated file is finished first)."""
        data = b""
        if self.file is None:
            try:
                self.file = open(self.path, "rb")
            except OSError:
                return []
        data += self.file.read()
        try:
            current = os.stat(self.path).st_ino
        except OSError:
            current = None
        if current is not None and current != os.fstat(self.file.fileno()).st_ino:
            data += self.file.read()
            self._close()
            with contextlib.suppress(OSError):
                self.file = open(self.path, "rb")
                data += self.file.read()
        data = self.buffer + data
        complete, _, self.buffer = data.rpartition(b"\n")
        events = []
        for line in complete.split(b"\n"):
            if line.strip():
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
        return events

    def _dispatch(self, event: dict[str, Any]) -> None:
        if event.get("Type") != "container":
            return
        actor = event.get("Actor") or {}
        found = self.waiters.get(str(actor.get("ID") or ""))
        if not found:
            return
        action = event.get("Action")
        when = int(event.get("timeNano") or 0)
        for waiter in list(found):
            if when < waiter.since_ns:
                continue
            if action == "die":
                code = _int((actor.get("Attributes") or {}).get("exitCode"))
                waiter.exit_code = code
                if waiter.condition != "removed":
                    waiter.settle(code)
            elif action == "destroy":
                waiter.settle(waiter.exit_code)

    async def _run(self) -> None:
        last_check = time.monotonic()
        if not self.watch_tried:  # kept for the server's life: closing one costs ~10 ms
            self.watch_tried = True
            self.watch = JournalWatch.open(self.path)
        watch = self.watch
        try:
            while self.waiters:
                for event in self._read_new():
                    self._dispatch(event)
                if time.monotonic() - last_check >= RECHECK_INTERVAL:
                    last_check = time.monotonic()
                    await self._recheck()
                self._drop_settled()
                if not self.waiters:
                    break
                if watch is None:
                    await asyncio.sleep(FOLLOW_INTERVAL)
                else:
                    await watch.written(FOLLOW_INTERVAL)
        finally:
            self._close()

    def _drop_settled(self) -> None:
        for waiter in [w for ws in self.waiters.values() for w in ws if w.future.done()]:
            self.forget(waiter)

    async def _recheck(self) -> None:
        """The safety net: settle waits that the records show are over."""
        ids = list(self.waiters)

        def read(s: Services) -> dict[str, Any]:
            records = {r.id: r for r in s.containers.list(True)}
            return {i: records.get(i) for i in ids}

        try:
            records = await self.engine.call(read)
        except Exception:
            return
        # an exit recorded meanwhile is in the journal by now (its "die" is written before
        # the record changes): its exit code comes from there, not from a stale record
        for event in self._read_new():
            self._dispatch(event)
        for container_id, record in records.items():
            for waiter in list(self.waiters.get(container_id, [])):
                if waiter.future.done():
                    continue
                if record is None:
                    waiter.settle(waiter.exit_code)
                elif record.status in RUNNING or waiter.condition == "removed":
                    continue
                elif waiter.condition == "not-running" or (
                    record.finished_at and record.finished_at != waiter.finished_at
                ):
                    waiter.settle(record.exit_code)


class JournalWatch:
    """inotify on the journal's folder: the follower wakes as soon as the journal is
    written (or replaced) instead of at its next poll, which stays as the fallback. One per
    server, never closed while it runs (the kernel takes ~10 ms to close an inotify fd,
    which would hold up the event loop each time the last wait ends)."""

    MASK = 0x2 | 0x100 | 0x80  # IN_MODIFY | IN_CREATE | IN_MOVED_TO
    _HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (then the name)

    def __init__(self, fd: int, name: bytes) -> None:
        self.fd = fd
        self.name = name
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        self.loop.add_reader(fd, self._readable)

    @classmethod
    def open(cls, path: str) -> JournalWatch | None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
            if fd < 0:
                return None
            folder = os.path.dirname(path) or "."
            if int(libc.inotify_add_watch(fd, os.fsencode(folder), cls.MASK)) < 0:
                os.close(fd)
                return None
        except (OSError, AttributeError):
            return None
        return cls(fd, os.fsencode(os.path.basename(path)))

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        offset = 0
        while offset + self._HEADER.size <= len(data):
            _, _, _, length = self._HEADER.unpack_from(data, offset)
            start = offset + self._HEADER.size
            if data[start : start + length].rstrip(b"\0") == self.name:
                self.event.set()
            offset = start + length

    async def written(self, timeout: float) -> None:
        """Return when the journal was written since the last call, or after `timeout`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        self.event.clear()

    def close(self) -> None:
        self.loop.remove_reader(self.fd)
        os.close(self.fd)


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return -1


_FOLLOWERS: weakref.WeakKeyDictionary[Any, Follower] = weakref.WeakKeyDictionary()


def _follower(request: web.Request) -> Follower:
    """The server's one follower (made with the first wait)."""
    engine = engine_of(request)
    found = _FOLLOWERS.get(engine)
    if found is None:
        found = _FOLLOWERS[engine] = Follower(engine)
    return found


async def wait_response(request: web.Request) -> web.StreamResponse:
    term = request.match_info["id"]
    condition = request.query.get("condition", "").strip() or "not-running"
    if condition not in CONDITIONS:
        raise BadParameter(f"invalid condition: {condition!r} (want not-running, next-exit "
                           "or removed)")  # fmt: skip
    engine = engine_of(request)
    try:
        record = await engine.call(lambda s: s.containers.get(term))
    except NoSuchContainer:
        raise NotFound(f"No such container: {term}") from None
    follower = _follower(request)
    waiter = follower.register(record.id, condition)
    try:
        # the state now that the wait is registered: an exit from here on is seen
        try:
            current = await engine.call(lambda s: s.containers.get(record.id))
        except NoSuchContainer:
            current = None
        if current is None:
            waiter.settle(record.exit_code)
        else:
            waiter.exit_code = current.exit_code
            waiter.finished_at = current.finished_at
            if condition == "not-running" and current.status not in RUNNING:
                waiter.settle(current.exit_code)
        if waiter.future.done():
            return web.json_response({"StatusCode": waiter.future.result(), "Error": None})
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        await response.prepare(request)  # the client may start the container now
        while not waiter.future.done():
            # `docker run -d` posts a wait and hangs up: a gone client stops waiting
            await asyncio.wait({waiter.future}, timeout=CLIENT_CHECK_INTERVAL)
            transport = request.transport
            if not waiter.future.done() and (transport is None or transport.is_closing()):
                return response
        code = waiter.future.result()
        await response.write(json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n")
        await response.write_eof()
        return response
    finally:
        follower.forget(waiter)
