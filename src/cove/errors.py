"""The one exception hierarchy of cove.

The rule, written once and followed everywhere:
- Every failure is an exception derived from `CoveError`; nothing returns an error value.
- Messages are lowercase, one line, and name the id, field or path involved.
- Exceptions become exit codes only in `cove.cli`, HTTP statuses only in `cove.api`.
- A low-level `OSError` is wrapped where it crosses a module boundary, with the path or
  operation that failed, so the user never sees a bare errno or a traceback.

This module imports nothing from cove.
"""

from __future__ import annotations


class CoveError(Exception):
    """Root of every error cove raises on purpose."""


# --- OCI documents -----------------------------------------------------------------------


class InvalidSpec(CoveError):
    """config.json (or another OCI document) is missing, malformed or unsupported."""


class InvalidArgument(CoveError):
    """A command-line argument or option value is wrong."""


# --- runtime state -----------------------------------------------------------------------


class NoSuchContainer(CoveError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} does not exist")
        self.container_id = container_id


class ContainerExists(CoveError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id!r} already exists")
        self.container_id = container_id


class InvalidState(CoveError):
    """The verb does not apply to the container in its current status."""


class StateCorrupt(CoveError):
    """A state file under the runtime root cannot be read."""


# --- setting a container up --------------------------------------------------------------


class RootfsError(CoveError):
    """The root filesystem or a mount inside it cannot be set up."""


class PathEscapesRoot(RootfsError):
    """A path given for inside the container resolves outside its root."""


class NamespaceError(CoveError):
    """A namespace cannot be created or joined."""


class CgroupError(CoveError):
    """A control group cannot be created, joined or removed."""


class ProcessSetupError(CoveError):
    """The container process cannot be started (user, cwd, rlimits, executable...)."""


class ExecutableNotFound(ProcessSetupError):
    pass


class HookFailed(CoveError):
    """An OCI hook exited non-zero, was killed, timed out or could not be executed."""

    def __init__(self, phase: str, index: int, path: str, reason: str) -> None:
        super().__init__(f"{phase} hook #{index} ({path}): {reason}")
        self.phase = phase
        self.index = index
        self.path = path
        self.reason = reason


class TerminalError(CoveError):
    """The pseudo-terminal or the console socket failed."""


class SyscallFailed(CoveError):
    """A system call failed; carries the errno for callers that branch on it."""

    def __init__(self, what: str, errno: int, strerror: str) -> None:
        super().__init__(f"{what}: {strerror}")
        self.errno = errno
        self.strerror = strerror
