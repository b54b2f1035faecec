"""cove-runtime called as a library instead of a subprocess (`LibraryRuntime`).

The engine and cove-runtime are one Python package, so for the default runtime the short
verbs (start, state, kill, delete, pause, resume, update) run in the calling process: each
saves an interpreter start (about 20 ms). None of them forks or starts a thread, so this is
safe in the multi-threaded API server too. `create` needs a process that becomes the
container's parent: `cove.engine.monitor` runs it in a forked child (`create_here`). `exec`,
`ps` and `events_stats` stay subprocess calls (they wait on processes or print).

Errors keep the subprocess contract: `RuntimeNoSuchContainer` when the runtime holds no
state for the id, `RuntimeFailed` with the runtime's message otherwise.
"""

from __future__ import annotations

import os
import signal as signal_module
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cove.engine.oci_runtime_api import RuntimeState
from cove.engine.oci_runtime_subprocess import SubprocessRuntime
from cove.errors import CoveError, NoSuchContainer, RuntimeFailed, RuntimeNoSuchContainer

_T = TypeVar("_T")


class LibraryRuntime(SubprocessRuntime):
    """The default runtime, `cove`, with its short verbs called in-process."""

    def _call(self, verb: str, container_id: str, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except NoSuchContainer:
            raise RuntimeNoSuchContainer(
                self.name, verb, container_id, f"container {container_id!r} does not exist"
            ) from None
        except CoveError as exc:
            raise RuntimeFailed(self.name, verb, container_id, str(exc)) from None

    def _store(self) -> Any:
        from cove.runtime.store import Store

        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        return Store(str(self.root))

    def create_here(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        *,
        pid_file: str | os.PathLike[str],
        on_console: Callable[[int], None] | None,
        warn: Callable[[str], None],
    ) -> None:
        """Create in this process (a forked child that will exec the monitor): the init
        inherits fds 0-2 and becomes our child; `on_console` receives the pty master."""
        from cove.runtime.container_create import CreateOptions, create_container
        from cove.sys.linux import LinuxSyscalls

        options = CreateOptions(bundle=os.fspath(bundle), pid_file=os.fspath(pid_file))
        self._call(
            "create",
            container_id,
            lambda: create_container(
                self._store(), container_id, options, LinuxSyscalls(), on_console, warn
            ),
        )

    def preload(self) -> None:
        import cove.runtime.container_delete
        import cove.runtime.container_start  # noqa: F401

    def start(self, container_id: str, *, timeout: float | None = None) -> None:
        from cove.runtime.container_start import start_container

        self._call("start", container_id, lambda: start_container(self._store(), container_id))

    def state(self, container_id: str, *, timeout: float | None = None) -> RuntimeState:
        from cove.runtime.container_state import container_state

        state = self._call(
            "state", container_id, lambda: container_state(self._store(), container_id)
        )
        return RuntimeState(
            id=state.id,
            status=state.status,
            pid=state.pid,
            bundle=state.bundle,
            created=state.created,
            annotations=dict(state.annotations),
        )

    def kill(
        self,
        container_id: str,
        signal: int | str = signal_module.SIGTERM,
        all: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        from cove.runtime.container_kill import kill_container

        number = _signal_number(signal)
        self._call(
            "kill", container_id, lambda: kill_container(self._store(), container_id, number, all)
        )

    def delete(
        self, container_id: str, force: bool = False, *, timeout: float | None = None
    ) -> None:
        from cove.runtime.container_delete import delete_container

        self._call(
            "delete", container_id, lambda: delete_container(self._store(), container_id, force)
        )

    def pause(self, container_id: str, *, timeout: float | None = None) -> None:
        from cove.runtime.container_pause import pause_container

        self._call("pause", container_id, lambda: pause_container(self._store(), container_id))

    def resume(self, container_id: str, *, timeout: float | None = None) -> None:
        from cove.runtime.container_pause import resume_container

        self._call("resume", container_id, lambda: resume_container(self._store(), container_id))

    def update(
        self, container_id: str, resources: Mapping[str, Any], *, timeout: float | None = None
    ) -> None:
        from cove.oci.resources import parse_resources
        from cove.runtime.container_update import update_container

        def apply() -> None:
            update_container(self._store(), container_id, parse_resources(dict(resources)))

        self._call("update", container_id, apply)


def _signal_number(signal: int | str) -> int:
    if isinstance(signal, int):
        return signal
    text = signal.upper()
    if text.isdigit():
        return int(text)
    if not text.startswith("SIG"):
        text = "SIG" + text
    if text.startswith("SIGRTMIN") or text.startswith("SIGRTMAX"):
        base = signal_module.SIGRTMIN if text.startswith("SIGRTMIN") else signal_module.SIGRTMAX
        offset = text[8:]
        return int(base) + (int(offset) if offset else 0)
    return int(signal_module.Signals[text])
