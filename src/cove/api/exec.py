"""Exec: create, start (hijacked, or detached), resize, inspect.

Exec instances live in the server's memory (`ExecStore` on the app), as they do in dockerd:
made by create, run once by start, inspected for their exit code afterwards (the docker CLI
and docker-py read ExitCode once the stream ends, so it is recorded before the stream is
closed), forgotten a while after they ended.

The process runs under the container's runtime (`cove-runtime exec`, from the engine's
`exec_command`) as an asyncio subprocess of the server: never a fork of the threaded
server. Without a terminal its stdout and stderr are pipes, relayed as Docker's frames (or
raw when the start asked for no multiplexing with Tty); with one the runtime hands the pty
master over a console socket the server listens on, and the master's bytes are relayed
raw. A client that goes away does not stop the process: its output is then drained and
dropped until it exits.
"""

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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cove.api.context import Engine, engine_of
from cove.api.errors import BadParameter, Conflict, NotFound
from cove.api.hijack import (
    DEFAULT_DETACH_KEYS,
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    STDERR,
    STDOUT,
    EscapeProxy,
    Hijacked,
    frame,
    parse_detach_keys,
    serve_hijacked,
)
from cove.api.routing import Routes, json_body
from cove.errors import InvalidArgument, NoSuchContainer

if TYPE_CHECKING:
    from cove.engine.container_exec import ExecCommand, ExecOptions

routes = Routes()

FORGET_AFTER = 300.0  # seconds an ended exec stays inspectable
FORGET_UNSTARTED = 3600.0
DRAIN_TIMEOUT = 1.0  # output read after the process exited (children may hold the pipes)
CONSOLE_TIMEOUT = 30.0
CANNOT_INVOKE = 126  # the exit code of an exec whose process could not start (dockerd's)


@dataclass
class ExecInstance:
    id: str
    container_id: str
    options: ExecOptions
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    detach_keys: str
    created_at: float = field(default_factory=time.monotonic)
    started: bool = False
    running: bool = False
    exit_code: int | None = None
    pid: int = 0
    ended_at: float = 0.0
    master: int = -1  # the pty master while the process runs
    size: tuple[int, int] | None = None

    def inspect(self) -> dict[str, Any]:
        command = self.options.command
        process: dict[str, Any] = {
            "arguments": command[1:],
            "entrypoint": command[0] if command else "",
            "privileged": self.options.privileged,
            "tty": self.options.tty,
        }
        if self.options.user:
            process["user"] = self.options.user
        return {
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": self.detach_keys,
            "ExitCode": self.exit_code,
            "ID": self.id,
            "OpenStderr": self.attach_stderr,
            "OpenStdin": self.attach_stdin,
            "OpenStdout": self.attach_stdout,
            "ProcessConfig": process,
            "Running": self.running,
            "Pid": self.pid,
        }


class ExecStore:
    """The server's exec instances, by id."""

    def __init__(self) -> None:
        self.instances: dict[str, ExecInstance] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def add(self, instance: ExecInstance) -> None:
        self.prune()
        self.instances[instance.id] = instance

    def keep(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        """Hold a run's task until it ends (the loop keeps only weak references)."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def get(self, exec_id: str) -> ExecInstance:
        instance = self.instances.get(exec_id)
        if instance is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return instance

    def prune(self, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        for exec_id, instance in list(self.instances.items()):
            ended = instance.ended_at and moment - instance.ended_at > FORGET_AFTER
            stale = not instance.started and moment - instance.created_at > FORGET_UNSTARTED
            if ended or stale:
                del self.instances[exec_id]


EXECS = web.AppKey("execs", ExecStore)


def setup_app(app: web.Application) -> None:
    app[EXECS] = ExecStore()


def execs_of(request: web.Request) -> ExecStore:
    return request.app[EXECS]


# --- JSON ------------------------------------------------------------------------------------


def _strings(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadParameter(f"invalid {name}: want a list of strings")
    return list(value)


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadParameter(f"invalid {name}: want true or false")
    return value


def _console_size(value: object) -> tuple[int, int] | None:
    """ConsoleSize [height, width] ([0, 0] and null: none)."""
    if value is None:
        return None
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, int) and v >= 0 for v in value)):  # fmt: skip
        raise BadParameter("invalid ConsoleSize: want [height, width]")
    return (value[0], value[1]) if value[0] and value[1] else None


def _exec_options(body: dict[str, Any]) -> ExecOptions:
    from cove.engine.container_exec import ExecOptions

    command = _strings(body.get("Cmd"), "Cmd")
    if not command:
        raise BadParameter("No exec command specified")
    user = body.get("User") or ""
    workdir = body.get("WorkingDir") or ""
    if not isinstance(user, str) or not isinstance(workdir, str):
        raise BadParameter("invalid User or WorkingDir: want a string")
    if workdir and not workdir.startswith("/"):
        raise BadParameter(f"the working directory '{workdir}' is invalid, it needs to be an "
                           "absolute path")  # fmt: skip
    return ExecOptions(
        command=command,
        interactive=_bool(body, "AttachStdin"),
        tty=_bool(body, "Tty"),
        env=_strings(body.get("Env"), "Env"),
        workdir=workdir,
        user=user,
        privileged=_bool(body, "Privileged"),
        console_size=_console_size(body.get("ConsoleSize")),
    )


def _emit(engine: Engine, action: str, container_id: str, **extra: object) -> None:
    from cove.engine import events

    def emit() -> None:
        try:
            record = engine.services().containers.get(container_id)
        except NoSuchContainer:
            return
        events.emit(engine.root, action, record, **extra)

    task = asyncio.ensure_future(engine.run(emit))
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Future[None]] = set()


# --- create, inspect, resize -----------------------------------------------------------------


@routes.post("/containers/{id}/exec")
async def create(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    body = await json_body(request)
    options = _exec_options(body)
    keys = body.get("DetachKeys") or ""
    if not isinstance(keys, str):
        raise BadParameter("invalid DetachKeys: want a string")
    if keys:
        parse_detach_keys(keys)
    engine = engine_of(request)

    def find(s: Any) -> tuple[str, str]:
        try:
            record = s.containers.get(term)
        except NoSuchContainer:
            raise NotFound(f"No such container: {term}") from None
        return record.id, record.status

    container_id, status = await engine.call(find)
    if status == "paused":
        raise Conflict(f"Container {container_id} is paused, unpause the container before exec")
    if status != "running":
        raise Conflict(f"Container {container_id} is not running")
    instance = ExecInstance(
        id=secrets.token_hex(32),
        container_id=container_id,
        options=options,
        attach_stdin=options.interactive,
        attach_stdout=_bool(body, "AttachStdout"),
        attach_stderr=_bool(body, "AttachStderr"),
        detach_keys=keys,
        size=options.console_size,
    )
    execs_of(request).add(instance)
    _emit(engine, f"exec_create: {' '.join(options.command)}", container_id, execID=instance.id)
    return web.json_response({"Id": instance.id}, status=201)


@routes.get("/exec/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    instance = execs_of(request).get(request.match_info["id"])
    return web.json_response(instance.inspect())


def set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


@routes.post("/exec/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    from cove.api.containers_streams import _size

    instance = execs_of(request).get(request.match_info["id"])
    rows, columns = _size(request)
    if not instance.options.tty:
        raise BadParameter(f"exec {instance.id} has no terminal to resize")
    if instance.started and not instance.running:
        raise Conflict(f"Exec {instance.id} is not running")
    instance.size = (rows, columns)
    if instance.master >= 0:
        with contextlib.suppress(OSError):
            set_size(instance.master, rows, columns)
    return web.Response(status=200)


# --- start -----------------------------------------------------------------------------------


@routes.post("/exec/{id}/start")
async def start(request: web.Request) -> web.StreamResponse:
    from dataclasses import replace

    from cove.engine.container_exec import exec_command

    engine = engine_of(request)
    store = execs_of(request)
    instance = store.get(request.match_info["id"])
    body = await json_body(request)
    detach = _bool(body, "Detach")
    tty = _bool(body, "Tty") if "Tty" in body else instance.options.tty
    size = _console_size(body.get("ConsoleSize")) or instance.size
    if instance.started:
        state = "is already running" if instance.running else "has already run"
        raise Conflict(f"Error: Exec command {instance.id} {state}")
    options = replace(instance.options, console_size=size if instance.options.tty else None)
    console: socket.socket | None = None
    console_path = ""
    if options.tty:
        console, console_path = _console_socket()

    def prepare(s: Any) -> ExecCommand:
        try:
            record = s.containers.get(instance.container_id)
        except NoSuchContainer:
            raise Conflict(f"Container {instance.container_id} is not running") from None
        if record.status == "paused":
            raise Conflict(f"Container {record.id} is paused, unpause the container first")
        return exec_command(engine.root, record, options, console_socket=console_path)

    try:
        command = await engine.call(prepare)
    except InvalidArgument as exc:  # the process cannot be made (no such user...)
        if console is not None:
            _close_console(console, console_path)
        return await _failed_start(request, instance, str(exc), detach, tty)
    except BaseException:
        if console is not None:
            _close_console(console, console_path)
        raise
    instance.started = instance.running = True
    run = _Run(engine, instance, command, console, console_path)
    _emit(engine, f"exec_start: {' '.join(options.command)}", instance.container_id,
          execID=instance.id)  # fmt: skip
    if detach:
        store.keep(asyncio.ensure_future(run.execute(None, tty)))
        return web.Response(status=200)
    content_type = RAW_STREAM if tty else MULTIPLEXED_STREAM

    async def relay(stream: Hijacked) -> None:
        # shielded: the process and its exit code outlive a handler that is cancelled
        await asyncio.shield(store.keep(asyncio.ensure_future(run.execute(stream, tty))))

    return await serve_hijacked(request, content_type, relay)


async def _failed_start(
    request: web.Request, instance: ExecInstance, message: str, detach: bool, tty: bool
) -> web.StreamResponse:
    """dockerd's answer to an exec whose process cannot start: exit code 126 and, when
    attached, the error written into the stream (the CLI prints it and exits 126)."""
    instance.started = True
    instance.exit_code = CANNOT_INVOKE
    instance.ended_at = time.monotonic()
    if detach:
        raise BadParameter(message)
    text = message.encode() + b"\r\n"

    async def relay(stream: Hijacked) -> None:
        await stream.write(text if tty else frame(STDOUT, text))

    return await serve_hijacked(request, RAW_STREAM if tty else MULTIPLEXED_STREAM, relay)


def _console_socket() -> tuple[socket.socket, str]:
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


def _close_console(listener: socket.socket, path: str) -> None:
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


class _Run:
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
                _close_console(self.console, self.console_path)
            await self.engine.run(self.command.remove)
            _emit(self.engine, "exec_die", instance.container_id, execID=instance.id,
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
