"""Runtime state on disk: one directory per container under the root (/run/cove-runtime).

  <root>/<id>/state.json   the ContainerRecord, replaced atomically (temp file + rename)
  <root>/<id>/exec.fifo    exists from create until start; init blocks writing to it

The directory itself is the lock (flock): `create` holds it until the record is final.
A record still marked `creating` whose lock is free was left by a killed `create`; the
next command that meets it removes what it names (cgroup, directory). Its processes are
already gone: init dies with its parent until the record is final.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

from cove.errors import ContainerExists, InvalidArgument, NoSuchContainer, StateCorrupt
from cove.oci import jsonc
from cove.oci.data import Data

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_ROOT = "/run/cove-runtime"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"

_ID_PUNCTUATION = frozenset("_+-.")


class ContainerRecord(Data):
    __slots__ = (
        "annotations",
        "bundle",
        "cgroup_owned",
        "cgroup_paths",
        "created",
        "creating",
        "hooks",
        "id",
        "owner",
        "pid",
        "pid_start",
        "rootfs",
    )

    def __init__(
        self,
        id: str,
        bundle: str,
        rootfs: str,
        created: str,
        owner: str = "",
        pid: int = 0,
        pid_start: int = 0,
        cgroup_paths: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        creating: bool = True,
        cgroup_owned: bool = True,
        hooks: dict[str, list[dict[str, Any]]] | None = None,
    ) -> None:
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.owner = owner
        self.pid = pid
        # Kernel start time of init (clock ticks since boot): tells a reused pid apart.
        self.pid_start = pid_start
        self.cgroup_paths = {} if cgroup_paths is None else cgroup_paths
        self.annotations = {} if annotations is None else annotations
        self.creating = creating
        # False when the cgroup existed before (shared): joined, never removed.
        self.cgroup_owned = cgroup_owned
        # poststart and poststop hooks, as config.json writes them: run by start/delete.
        self.hooks = {} if hooks is None else hooks

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerRecord:
        return cls(**data)


def _is_valid_id(name: str) -> bool:
    # runc's rule, ^[\w+.-]+$, without importing re on the hot path.
    return (
        bool(name)
        and name not in (".", "..")
        and all((ch.isascii() and ch.isalnum()) or ch in _ID_PUNCTUATION for ch in name)
    )


def check_id(container_id: str) -> str:
    if not _is_valid_id(container_id):
        raise InvalidArgument(
            f"invalid container id {container_id!r}: use letters, digits, '_', '+', '-', '.'"
        )
    return container_id


class Store:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = os.path.abspath(root)

    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.root, check_id(container_id))

    def fifo_path(self, container_id: str) -> str:
        return os.path.join(self.container_dir(container_id), EXEC_FIFO)

    def reserve(self, container_id: str) -> int:
        """Create the container's directory and lock it; returns the locked fd."""
        path = self.container_dir(container_id)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            if not self._sweep_if_stale(container_id):
                raise ContainerExists(container_id) from None
            os.mkdir(path, 0o711)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def save(self, record: ContainerRecord) -> None:
        path = os.path.join(self.container_dir(record.id), STATE_FILE)
        temp = f"{path}.{os.getpid()}.tmp"
        # No fsync: runtime state lives on tmpfs (/run) and ends with the boot by design;
        # the rename alone keeps readers and crashes from seeing a partial file.
        with open(temp, "w") as state_file:
            state_file.write(jsonc.dumps(record.to_json()))
        os.replace(temp, path)

    def load(self, container_id: str) -> ContainerRecord:
        path = os.path.join(self.container_dir(container_id), STATE_FILE)
        try:
            with open(path) as state_file:
                data = jsonc.loads(state_file.read())
        except FileNotFoundError:
            # A create killed before its first write leaves only the directory.
            self._sweep_if_stale(container_id)
            raise NoSuchContainer(container_id) from None
        except (OSError, ValueError) as exc:
            raise StateCorrupt(f"container {container_id!r}: unreadable state: {exc}") from None
        try:
            record = ContainerRecord.from_json(data)
        except TypeError as exc:
            raise StateCorrupt(f"container {container_id!r}: unreadable state: {exc}") from None
        if record.creating and self._sweep_if_stale(container_id):
            raise NoSuchContainer(container_id)
        return record

    def ids(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [name for name in names if _is_valid_id(name)]

    def remove(self, container_id: str) -> bool:
        """Remove the container's state; True if this call removed its state file. Two
        deletes may race (a stop's clean-up and an rm): the loser finds things gone."""
        path = self.container_dir(container_id)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return False
        removed_state = False
        for name in names:
            try:
                os.unlink(os.path.join(path, name))
            except FileNotFoundError:
                continue
            removed_state = removed_state or name == STATE_FILE
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(path)
        return removed_state

    def _sweep_if_stale(self, container_id: str) -> bool:
        """Remove a directory left by a killed `create`; True if it was stale and is gone."""
        path = self.container_dir(container_id)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a create is in progress
            state_path = os.path.join(path, STATE_FILE)
            try:
                with open(state_path) as state_file:
                    record = ContainerRecord.from_json(jsonc.loads(state_file.read()))
            except FileNotFoundError:
                record = None
            except (OSError, ValueError, TypeError):
                return False
            if record is not None and not record.creating:
                return False
            if record is not None and record.cgroup_paths:
                from cove.runtime.cgroups import CgroupManager

                CgroupManager(record.cgroup_paths, record.cgroup_owned).destroy()
            self.remove(container_id)
            return True
        finally:
            os.close(fd)
