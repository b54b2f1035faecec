"""The memory controller on cgroup v2: memory.max, memory.low, memory.swap.max.

The OCI spec speaks cgroup v1: `swap` is the memory+swap limit, which cgroup v2 does not
have. As runc and crun do, it becomes memory.swap.max = swap - limit (swap alone).
"""

from __future__ import annotations

import os

from cove.errors import CgroupError
from cove.runtime.cgroups.v2 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources, Memory

_FIELD = "linux.resources.memory"


def _limit_text(value: int) -> str:
    return "max" if value == -1 else str(value)


def swap_max(swap: int, limit: int) -> int:
    """memory.swap.max for an OCI memory+swap `swap` and memory `limit` (-1: unlimited)."""
    if swap == -1:
        return -1
    if limit == -1:
        raise CgroupError(
            f"{_FIELD}.swap: cannot limit memory+swap to {swap} with an unlimited memory limit"
        )
    if swap < limit:
        raise CgroupError(
            f"{_FIELD}.swap: memory+swap ({swap}) must not be below the memory limit ({limit})"
        )
    return swap - limit


def _current_limit(path: str) -> int:
    """memory.max now, as an OCI limit (-1 for "max"): for an update that sets swap only."""
    text = _files.read(path, "memory.max")
    if text is None or text.strip() == "max":
        return -1
    return int(text)


def _apply(path: str, memory: Memory) -> None:
    if memory.swappiness is not None:
        raise CgroupError(
            f"{_FIELD}.swappiness: cgroup v2 has no per-cgroup swappiness "
            f"(got {memory.swappiness}); leave it unset"
        )
    if memory.disable_oom_killer:
        raise CgroupError(
            f"{_FIELD}.disableOOMKiller: cgroup v2 cannot disable the OOM killer; leave it unset"
        )
    # kernel and kernelTCP are ignored, as runc does on v2: kernel memory is always charged
    # to the cgroup and limited by memory.max, there is no separate knob. useHierarchy is
    # ignored too: cgroup v2 is always hierarchical.
    limit = memory.limit if memory.limit else None  # 0 means unset, as in runc
    if memory.check_before_update and limit is not None and limit > 0:
        usage = _files.read_number(path, "memory.current")
        if usage is not None and usage > limit:
            raise CgroupError(
                f"{_FIELD}.limit: {limit} is below the current usage ({usage}) of {path}"
            )
    swap_text: str | None = None
    if memory.swap:  # 0 means unset, as in runc
        base = limit if limit is not None else _current_limit(path)
        swap_text = _limit_text(swap_max(memory.swap, base))
        if not _files.exists(path, "memory.swap.max"):
            raise CgroupError(
                f"{_FIELD}.swap: cannot set {memory.swap}: no memory.swap.max in {path} "
                "(swap accounting is off in this kernel)"
            )
    elif limit == -1 and _files.exists(path, "memory.swap.max"):
        swap_text = "max"  # an unlimited memory limit lifts the swap limit too (runc)
    if swap_text is not None:
        _files.write(path, "memory.swap.max", swap_text, f"{_FIELD}.swap")
    if limit is not None:
        _files.write(path, "memory.max", _limit_text(limit), f"{_FIELD}.limit")
    if memory.reservation is not None:
        _files.write(path, "memory.low", _limit_text(memory.reservation), f"{_FIELD}.reservation")


class _MemoryController:
    name = "memory"

    def apply(self, path: str, resources: LinuxResources) -> None:
        if resources.memory is not None:
            _apply(path, resources.memory)
        # On an OOM kill, kill the whole container rather than one process of it (crun
        # does the same): a container missing a random process is worse than a dead one.
        # Best effort: no spec field asks for it, so a kernel without it (before 4.19) or
        # refusing it must not stop the container.
        try:
            _files.write_raw(os.path.join(path, "memory.oom.group"), "1")
        except OSError:
            pass

    def stats(self, path: str, data: dict[str, Any]) -> None:
        usage = _files.read_number(path, "memory.current")
        if usage is None:
            return  # the controller is not enabled for this cgroup
        limit = _files.read_number(path, "memory.max") or 0
        events = _files.read_flat_keyed(path, "memory.events") or {}
        raw = _files.read_flat_keyed(path, "memory.stat") or {}
        memory: dict[str, Any] = {
            "cache": raw.get("file", 0),
            "usage": {
                "usage": usage,
                "limit": limit,
                "max": _files.read_number(path, "memory.peak") or 0,
                "failcnt": events.get("max", 0),
            },
        }
        # runc reports swap as memory+swap, the v1 way: swap figures plus memory figures.
        swap_usage = _files.read_number(path, "memory.swap.current") or 0
        swap_limit = _files.read_number(path, "memory.swap.max") or 0
        swap_events = _files.read_flat_keyed(path, "memory.swap.events") or {}
        memory["swap"] = {
            "usage": swap_usage + usage,
            "limit": swap_limit
            if swap_limit == _files.MAX_UINT64
            else min(swap_limit + limit, _files.MAX_UINT64),
            "failcnt": swap_events.get("fail", 0),
        }
        memory["raw"] = raw
        data["memory"] = memory


def oom_kill_count(path: str) -> int:
    """How many processes of the cgroup (and its children) the OOM killer has killed."""
    events = _files.read_flat_keyed(path, "memory.events")
    return 0 if events is None else events.get("oom_kill", 0)


CONTROLLER = _MemoryController()
