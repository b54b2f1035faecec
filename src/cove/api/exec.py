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

This module has the routes; `exec_records` keeps the instances, `exec_process` runs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cove.api.context import engine_of
from cove.api.errors import BadParameter, Conflict, NotFound
from cove.api.exec_process import (
    CANNOT_INVOKE,
    ExecRun,
    close_console,
    console_socket,
    set_size,
)
from cove.api.exec_records import EXECS, ExecInstance, ExecStore, emit_event, execs_of
from cove.api.hijack import (
    MULTIPLEXED_STREAM,
    RAW_STREAM,
    STDOUT,
    Hijacked,
    frame,
    serve_hijacked,
)
from cove.api.routing import Routes, json_body
from cove.engine.detach_keys import parse_detach_keys
from cove.errors import InvalidArgument, NoSuchContainer

if TYPE_CHECKING:
    from cove.engine.container_exec import ExecCommand, ExecOptions

routes = Routes()


def setup_app(app: web.Application) -> None:
    app[EXECS] = ExecStore()


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
    emit_event(
        engine, f"exec_create: {' '.join(options.command)}", container_id, execID=instance.id
    )
    return web.json_response({"Id": instance.id}, status=201)


@routes.get("/exec/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    instance = execs_of(request).get(request.match_info["id"])
    return web.json_response(instance.inspect())


@routes.post("/exec/{id}/resize")
async def resize(request: web.Request) -> web.Response:
    from cove.api.containers_attach import _size

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
        console, console_path = console_socket()

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
            close_console(console, console_path)
        return await _failed_start(request, instance, str(exc), detach, tty)
    except BaseException:
        if console is not None:
            close_console(console, console_path)
        raise
    instance.started = instance.running = True
    run = ExecRun(engine, instance, command, console, console_path)
    emit_event(engine, f"exec_start: {' '.join(options.command)}", instance.container_id,
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
