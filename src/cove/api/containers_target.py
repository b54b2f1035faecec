"""The container a request names: Docker's 404 for an unknown one (clients print its
words), the engine call on a worker thread that uses it, and the `Target` the stream
handlers (attach, logs, stats, resize) work on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cove.api.context import Services, engine_of
from cove.api.errors import NotFound
from cove.errors import NoSuchContainer

if TYPE_CHECKING:
    from cove.engine.state import ContainerRecord

RUNNING = ("running", "paused")  # a stream's container runs (restarting does not count)


@contextmanager
def no_such_container(term: str) -> Iterator[None]:
    """NoSuchContainer as Docker words it (clients print it)."""
    try:
        yield
    except NoSuchContainer:
        raise NotFound(f"No such container: {term}") from None


async def call(request: web.Request, action: Callable[[Services], Any]) -> Any:
    """Run `action` on a worker thread; an unknown container is Docker's 404."""
    with no_such_container(request.match_info.get("id", "")):
        return await engine_of(request).call(action)


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
