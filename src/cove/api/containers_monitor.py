"""A container's monitor, from the event loop: `MonitorLink` is an asyncio connection to
its attach socket (`cove.engine.attach` frames); `NextMonitor` connects at once when the
container runs, else to the monitor its next start makes, before init runs (the start in
this server hands it over), or to one started elsewhere (noticed by its socket appearing).
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from cove.api.hijack import FrameParser, frame
from cove.engine.attach import AttachClient, await_start

_WATCH_INTERVAL = 0.2  # how often a waiting attach looks for a monitor started elsewhere


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
