"""The server's exec instances (`ExecStore` on the app, as dockerd keeps them in
memory) and the container events about them; see `cove.api.exec`."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cove.api.context import Engine
from cove.api.errors import NotFound
from cove.errors import NoSuchContainer

if TYPE_CHECKING:
    from cove.engine.container_exec import ExecOptions

FORGET_AFTER = 300.0  # seconds an ended exec stays inspectable
FORGET_UNSTARTED = 3600.0


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


def execs_of(request: web.Request) -> ExecStore:
    return request.app[EXECS]


def emit_event(engine: Engine, action: str, container_id: str, **extra: object) -> None:
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
