"""What the engine sees of an OCI runtime (`cove.engine.oci_runtime`): the `OCIRuntime`
interface, the `RuntimeState` it reports, and the defaults shared by its implementation.
"""

from __future__ import annotations

import os
import signal as signal_module
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

DEFAULT_TIMEOUT = 30.0
DEFAULT_RUNTIME = "cove"
COVE_RUNTIME_PATH = Path("/usr/local/bin/cove-runtime")
CGROUP_ROOT = Path("/sys/fs/cgroup")
UNIFIED_MOUNT = CGROUP_ROOT / "unified"
LOG_DIR_NAME = ".logs"  # under <engine root>/runtime/, beside the per-runtime roots


# --- what the engine sees ------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeState:
    """The OCI state document of a container, as the runtime reports it.

    `status` is one of creating, created, running, paused, stopped; `pid` is 0 when the
    container has no process.
    """

    id: str
    status: str
    pid: int
    bundle: str
    created: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RuntimeState:
        annotations = data.get("annotations") or {}
        return cls(
            id=str(data.get("id", "")),
            status=str(data.get("status", "")),
            pid=int(data.get("pid") or 0),
            bundle=str(data.get("bundle", "")),
            created=str(data.get("created", "")),
            annotations={str(k): str(v) for k, v in dict(annotations).items()},
        )


Stdio = tuple[int | IO[Any] | None, int | IO[Any] | None, int | IO[Any] | None]


class OCIRuntime(ABC):
    """The one way the engine reaches an OCI runtime.

    Every verb raises `RuntimeFailed` (with the runtime's own message) when the runtime
    refuses, `RuntimeNoSuchContainer` (a `RuntimeFailed`) when the runtime holds no state for
    the id, and `RuntimeTimedOut` (a `RuntimeFailed`) when it does not answer in time.
    `timeout=None` means the runtime's default timeout.
    """

    name: str

    @abstractmethod
    def create(
        self,
        container_id: str,
        bundle: str | os.PathLike[str],
        *,
        pid_file: str | os.PathLike[str],
        console_socket: str | os.PathLike[str] | None = None,
        preserve_fds: int = 0,
        stdio: Stdio | None = None,
        timeout: float | None = None,
    ) -> None:
        """Create the container from `bundle`; its init waits for `start`. The init inherits
        `stdio` (stdin, stdout, stderr; /dev/null for None) and, with `preserve_fds`, the
        caller's fds 3 .. 3+preserve_fds-1."""

    @abstractmethod
    def start(self, container_id: str, *, timeout: float | None = None) -> None: ...

    def preload(self) -> None:
        """Load what `start` and `delete` will need, ahead of them (see monitor.launch's
        `meanwhile`); a runtime run as a subprocess needs nothing."""
        return None

    @abstractmethod
    def state(self, container_id: str, *, timeout: float | None = None) -> RuntimeState: ...

    @abstractmethod
    def kill(
        self,
        container_id: str,
        signal: int | str = signal_module.SIGTERM,
        all: bool = False,
        *,
        timeout: float | None = None,
    ) -> None: ...

    @abstractmethod
    def delete(
        self, container_id: str, force: bool = False, *, timeout: float | None = None
    ) -> None: ...

    @abstractmethod
    def pause(self, container_id: str, *, timeout: float | None = None) -> None: ...

    @abstractmethod
    def resume(self, container_id: str, *, timeout: float | None = None) -> None: ...

    @abstractmethod
    def update(
        self,
        container_id: str,
        resources: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> None:
        """Apply `resources` (an OCI `linux.resources` object) to the running container."""

    @abstractmethod
    def exec(
        self,
        container_id: str,
        process: Mapping[str, Any],
        *,
        detach: bool,
        pid_file: str | os.PathLike[str] | None = None,
        console_socket: str | os.PathLike[str] | None = None,
        preserve_fds: int = 0,
        stdio: Stdio | None = None,
        timeout: float | None = None,
    ) -> int:
        """Run `process` (an OCI `process` object) in the container. Detached: returns 0 once
        the process runs (its pid is written to `pid_file`). Attached: waits for it and returns
        its exit status (`timeout` still applies: pass a large one for long processes)."""

    @abstractmethod
    def ps(self, container_id: str, *, timeout: float | None = None) -> list[int]:
        """Host pids of the container's processes."""

    @abstractmethod
    def events_stats(self, container_id: str, *, timeout: float | None = None) -> dict[str, Any]:
        """One sample of resource figures: the `data` object of runc's `events --stats`."""
