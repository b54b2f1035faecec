"""freezer (v1): stop and resume every task of the cgroup (pause / resume).

freezer.state reads THAWED, FREEZING or FROZEN (cgroup-v1/freezer-subsystem.rst).
Writing FROZEN starts freezing; the state stays FREEZING until every task has stopped,
and each further write of FROZEN retries the tasks that have not. A task can hold out
(in an uninterruptible sleep, or one that keeps forking), so `freeze` retries with a
short pause, thaws and starts over now and then, and gives up after a timeout, leaving
the cgroup thawed. The resources have nothing for this controller: `apply` does nothing.
"""

from __future__ import annotations

import time

from cove.errors import CgroupError
from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

STATE = "freezer.state"
FROZEN = "FROZEN"
THAWED = "THAWED"
FREEZING = "FREEZING"

_RETHAW_EVERY = 50  # attempts between thaw-and-retry rounds


class FreezerController:
    name = "freezer"

    def apply(self, path: str, resources: LinuxResources) -> None:
        return None  # pause and resume call freeze() and thaw()

    def stats(self, path: str, data: dict[str, Any]) -> None:
        return None  # no figures


CONTROLLER = FreezerController()


def freeze(path: str, timeout: float = 5.0) -> None:
    """Freeze every task in the cgroup; returns once freezer.state reads FROZEN."""
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        _set_state(path, FROZEN, "freeze")
        state = state_of(path)
        if state == FROZEN:
            return
        if time.monotonic() >= deadline:
            try:
                thaw(path)
            except CgroupError:
                pass
            raise CgroupError(f"cannot freeze cgroup {path}: still {state} after {timeout:g}s")
        attempt += 1
        if attempt % _RETHAW_EVERY == 0:
            _set_state(path, THAWED, "freeze")
        time.sleep(min(0.0005 * attempt, 0.01))


def thaw(path: str) -> None:
    """Let every task in the cgroup run again."""
    _set_state(path, THAWED, "thaw")


def is_frozen(path: str) -> bool:
    """Whether the cgroup is frozen (also when a frozen parent froze it)."""
    try:
        return state_of(path) == FROZEN
    except CgroupError:
        return False


def state_of(path: str) -> str:
    text = _files.read(path, STATE)
    if text is None:
        raise CgroupError(f"cannot read {path}/{STATE}: no such file")
    return text.strip()


def _set_state(path: str, state: str, verb: str) -> None:
    try:
        _files.write_raw(path, STATE, state)
    except OSError as exc:
        raise CgroupError(f"cannot {verb} cgroup {path}: {exc.strerror or exc}") from None
