"""One run of an exec instance (`ExecRun`): the runtime's subprocess, started by the
server with asyncio (never a fork of the threaded server), and the relays between its
stdio (pipes, or the pty master the runtime sends on a console socket) and the attached
client; see `cove.api.exec`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import socket
import struct
import termios
import time
from typing import TYPE_CHECKING, Any

from cove.api.context import Engine
from cove.api.exec_records import ExecInstance, emit_event
from cove.api.hijack import (
    STDERR,
    STDOUT,
    Hijacked,
    frame,
)
from cove.engine.detach_keys import DEFAULT_DETACH_KEYS, EscapeProxy, parse_detach_keys

if TYPE_CHECKING:
    from cove.engine.container_exec import ExecCommand

DRAIN_TIMEOUT = 1.0  # output read after the process exited (children may hold the pipes)
CONSOLE_TIMEOUT = 30.0
CANNOT_INVOKE = 126  # the exit code of an exec whose process could not start (dockerd's)


def set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def console_socket() -> tuple[socket.socket, str]:
    from cove.engine.monitor import SOCKET_DIR

    os.makedirs(SOCKET_DIR, mode=0o700, exist_ok=True)
    path = f"{SOCKET_DIR}/exec-{secrets.token_hex(8)}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        listener.bind(path)
        listener.listen(1)
        listener.setblocking(False)
    except BaseException:
        listener.close()
        raise
    return listener, path


def close_console(listener: socket.socket, path: str) -> None:
    listener.close()
    with contextlib.suppress(OSError):
        os.unlink(path)


def _settle(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _settle, ready)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def _writable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _settle, ready)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


async def _read_fd(fd: int) -> bytes:
    """The next bytes of a non-blocking fd; b"" at its end (EIO: a pty whose other side is
    closed)."""
    while True:
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            await _readable(fd)
        except OSError:
            return b""


async def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _writable(fd)


async def _receive_master(listener: socket.socket) -> int:
    """The pty master the runtime sends on the console socket."""
    loop = asyncio.get_running_loop()
    conn, _ = await loop.sock_accept(listener)
    with conn:
        conn.setblocking(False)
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
                break
            except BlockingIOError:
                await _readable(conn.fileno())
    if not fds:
        raise ConnectionError("the runtime sent no terminal on the console socket")
    return fds[0]


class _Client:
    """The attached client as the process sees it: output goes there while it listens
    (dropped once it is gone or when there is none: detached)."""

    def __init__(self, stream: Hijacked | None) -> None:
        self.stream = stream

    async def send(self, data: bytes) -> None:
        if self.stream is None or not data:
            return
        try:
            await self.stream.write(data)
        except ConnectionError:
            self.stream = None

    async def read(self) -> bytes:
        if self.stream is None:
            return b""
        return await self.stream.read()


class ExecRun:
    """One run of an exec instance: the runtime's subprocess and the relays around it."""

    def __init__(
        self,
        engine: Engine,
        instance: ExecInstance,
        command: ExecCommand,
        console: socket.socket | None,
        console_path: str,
    ) -> None:
        self.engine = engine
        self.instance = instance
        self.command = command
        self.console = console
        self.console_path = console_path

    async def execute(self, stream: Hijacked | None, multiplex_off: bool) -> None:
        """Run the process to its end with `stream` attached (None: detached); the exit code
        is recorded before this returns."""
        instance = self.instance
        client = _Client(stream)
        code = CANNOT_INVOKE
        try:
            if self.console is not None:
                code = await self._run_tty(client, stream is not None)
            else:
                code = await self._run_pipes(client, multiplex_off, stream is not None)
        finally:
            if not instance.pid:  # it ended before the pid was noted
                instance.pid = await self.engine.run(self.command.pid)
            instance.exit_code = code
            instance.running = False
            instance.master = -1
            instance.ended_at = time.monotonic()
            if self.console is not None:
                close_console(self.console, self.console_path)
            await self.engine.run(self.command.remove)
            emit_event(self.engine, "exec_die", instance.container_id, execID=instance.id,
                  exitCode=code)  # fmt: skip

    async def _spawn(self, stdin: int, stdout: int, stderr: int) -> asyncio.subprocess.Process:
        """The runtime, with these fds (or DEVNULL) as its stdio; the process inherits them.
        The pipes are the server's own (os.pipe): asyncio's would make `wait` wait for a
        background child of the process that holds them."""
        return await asyncio.create_subprocess_exec(
            *self.command.argv, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True
        )

    async def _exit_code(self, proc: asyncio.subprocess.Process) -> int:
        status = await proc.wait()
        failure = await self.engine.run(self.command.failure)
        if failure:  # dockerd: 126 for any exec that cannot start, a missing command too
            return CANNOT_INVOKE
        return status if status >= 0 else 128 - status

    async def _note_pid(self, proc: asyncio.subprocess.Process) -> None:
        for _ in range(250):
            pid = await self.engine.run(self.command.pid)
            if pid or proc.returncode is not None:
                self.instance.pid = pid or await self.engine.run(self.command.pid)
                return
            await asyncio.sleep(0.02)

    async def _pump(self, fd: int, client: _Client, kind: int | None) -> None:
        """An output pipe to the client: frames of `kind`, or raw (None)."""
        while True:
            data = await _read_fd(fd)
            if not data:
                return
            await client.send(data if kind is None else frame(kind, data))

    async def _run_pipes(self, client: _Client, raw: bool, attached: bool) -> int:
        instance = self.instance
        null = asyncio.subprocess.DEVNULL
        ours: list[int] = []  # the server's ends, closed at the end
        theirs: list[int] = []  # the process's ends, closed here once it has them
        try:
            stdin_r = stdin_w = out_r = out_w = -1
            if attached and instance.attach_stdin:
                stdin_r, stdin_w = os.pipe2(os.O_CLOEXEC)
                ours.append(stdin_w)
                theirs.append(stdin_r)
            if attached and instance.attach_stdout:
                out_r, out_w = os.pipe2(os.O_CLOEXEC)
                ours.append(out_r)
                theirs.append(out_w)
            err_r, err_w = os.pipe2(os.O_CLOEXEC)
            ours.append(err_r)
            theirs.append(err_w)
            proc = await self._spawn(stdin_r if stdin_r >= 0 else null,
                                     out_w if out_w >= 0 else null, err_w)  # fmt: skip
            for fd in theirs:
                os.close(fd)
            theirs.clear()
            for fd in ours:
                os.set_blocking(fd, False)
            tasks = [asyncio.ensure_future(self._note_pid(proc))]
            outputs = [asyncio.ensure_future(self._pump(err_r, client, None if raw else STDERR))]
            if out_r >= 0:
                outputs.append(asyncio.ensure_future(
                    self._pump(out_r, client, None if raw else STDOUT)))  # fmt: skip
            if stdin_w >= 0:
                tasks.append(asyncio.ensure_future(self._feed_pipe(stdin_w, client, ours)))
            try:
                code = await self._exit_code(proc)
                await asyncio.wait(outputs, timeout=DRAIN_TIMEOUT)
                return code
            finally:
                for task in (*tasks, *outputs):
                    task.cancel()
                await asyncio.wait([*tasks, *outputs])
        finally:
            for fd in (*ours, *theirs):
                with contextlib.suppress(OSError):
                    os.close(fd)

    async def _feed_pipe(self, fd: int, client: _Client, ours: list[int]) -> None:
        """The client's input to the process's stdin, closed when the input ends."""
        try:
            while True:
                data = await client.read()
                if not data:
                    break
                await _write_fd(fd, data)
        except OSError:
            pass  # EPIPE: the process closed its stdin
        finally:
            if fd in ours:
                ours.remove(fd)
                os.close(fd)

    async def _run_tty(self, client: _Client, attached: bool) -> int:
        assert self.console is not None
        instance = self.instance
        null = asyncio.subprocess.DEVNULL
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            proc = await self._spawn(null, null, err_w)
        finally:
            os.close(err_w)
        os.set_blocking(err_r, False)
        exited = asyncio.ensure_future(self._exit_code(proc))
        master_task = asyncio.ensure_future(_receive_master(self.console))
        errors = asyncio.ensure_future(self._pump(err_r, client, None))  # the runtime's words
        tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._note_pid(proc)),
                                            master_task, errors]  # fmt: skip
        master = -1
        try:
            await asyncio.wait({exited, master_task}, timeout=CONSOLE_TIMEOUT,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
            if master_task.done() and not master_task.cancelled() and not master_task.exception():
                master = master_task.result()
                os.set_blocking(master, False)
                instance.master = master
                if instance.size is not None:
                    with contextlib.suppress(OSError):
                        set_size(master, *instance.size)
                output = asyncio.ensure_future(self._pump(master, client, None))
                tasks.append(output)
                if attached and instance.attach_stdin:
                    tasks.append(asyncio.ensure_future(self._feed_master(master, client)))
                code = await exited
                await asyncio.wait({output}, timeout=DRAIN_TIMEOUT)
            else:
                code = await exited
            await asyncio.wait({errors}, timeout=DRAIN_TIMEOUT)
            return code
        finally:
            for task in (*tasks, exited):
                task.cancel()
            await asyncio.wait([*tasks, exited])
            instance.master = -1
            if master >= 0:
                os.close(master)
            os.close(err_r)

    async def _feed_master(self, master: int, client: _Client) -> None:
        keys = self.instance.detach_keys or DEFAULT_DETACH_KEYS
        escape = EscapeProxy(parse_detach_keys(keys))
        while True:
            data = await client.read()
            if not data:
                return
            data, detach = escape.feed(data)
            if data:
                await _write_fd(master, data)
            if detach:
                if client.stream is not None:
                    client.stream.close()
                client.stream = None
                return
