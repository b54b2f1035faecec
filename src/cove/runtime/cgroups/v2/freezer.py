"""Freezing on cgroup v2: cgroup.freeze and cgroup.events (core files, not a controller).

Also cgroup.kill (kernel 5.14+), which kills every process of the cgroup at once.
"""

from __future__ import annotations

import os
import time

from cove.errors import CgroupError
from cove.runtime.cgroups.v2 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources


def _write(path: str, name: str, value: str, what: str) -> None:
    file = os.path.join(path, name)
    try:
        _files.write_raw(file, value)
    except OSError as exc:
        raise CgroupError(f"cannot {what} cgroup {path}: {file}: {exc.strerror}") from None


def _events(path: str) -> dict[str, int]:
    events = _files.read_flat_keyed(path, "cgroup.events")
    if events is None:
        raise CgroupError(f"cannot read {os.path.join(path, 'cgroup.events')}: no such file")
    return events


def is_frozen(path: str) -> bool:
    """True when every process of the cgroup is frozen (cgroup.events: frozen 1)."""
    return _events(path).get("frozen") == 1


def freeze(path: str, timeout: float = 5.0) -> None:
    """Freeze the cgroup and wait until the kernel reports it frozen.

    A process in an uninterruptible sleep delays the freeze; after `timeout` seconds the
    cgroup is thawed again (no half-frozen container is left) and CgroupError raised."""
    _write(path, "cgroup.freeze", "1", "freeze")
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while not is_frozen(path):
        if time.monotonic() > deadline:
            try:
                thaw(path)
            except CgroupError:
                pass
            raise CgroupError(f"cannot freeze cgroup {path}: still not frozen after {timeout}s")
        time.sleep(delay)
        delay = min(delay * 2, 0.02)


def thaw(path: str) -> None:
    _write(path, "cgroup.freeze", "0", "thaw")


def kill_all(path: str) -> bool:
    """SIGKILL every process of the cgroup and its children through cgroup.kill.

    Returns False when the kernel has no cgroup.kill (before 5.14), so the caller falls
    back to signalling the pids one by one."""
    if not _files.exists(path, "cgroup.kill"):
        return False
    _write(path, "cgroup.kill", "1", "kill the processes of")
    return True


class _FreezerController:
    """Nothing to apply: freezing is an operation (pause/resume), not a limit."""

    name = "freezer"

    def apply(self, path: str, resources: LinuxResources) -> None:
        return None

    def stats(self, path: str, data: dict[str, Any]) -> None:
        return None


CONTROLLER = _FreezerController()
