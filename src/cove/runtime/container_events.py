"""`events`: the container's resource figures and OOM kills, as runc prints them."""

from __future__ import annotations

import time

from cove.errors import CoveError, InvalidState
from cove.oci.state import STOPPED
from cove.runtime.cgroups import CgroupManager
from cove.runtime.cgroups.layout import host_layout
from cove.runtime.status import status_of
from cove.runtime.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any


def stats_event(store: Store, container_id: str) -> dict[str, Any]:
    record = store.load(container_id)
    if status_of(store, record) == STOPPED:
        raise InvalidState(f"container {container_id!r} is not running")
    data = CgroupManager(record.cgroup_paths, record.cgroup_owned).stats(host_layout())
    return {"type": "stats", "id": container_id, "data": data}


def events(
    store: Store,
    container_id: str,
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Stats every `interval` seconds, and an "oom" event as soon as (within 0.2 s) the
    kernel kills a process for memory; ends when the container stops, after reporting an
    OOM kill that stopped it."""
    record = store.load(container_id)
    cgroup = CgroupManager(record.cgroup_paths, record.cgroup_owned)
    layout = host_layout()
    kills = cgroup.oom_kills(layout)
    next_stats = time.monotonic()
    while status_of(store, record) != STOPPED:
        now_kills = cgroup.oom_kills(layout)
        if now_kills > kills:
            kills = now_kills
            yield {"type": "oom", "id": container_id}
        if time.monotonic() >= next_stats:
            yield {"type": "stats", "id": container_id, "data": cgroup.stats(layout)}
            next_stats = time.monotonic() + interval
        sleep(min(0.2, interval))
    try:
        if cgroup.oom_kills(layout) > kills:  # the kill that stopped the container
            yield {"type": "oom", "id": container_id}
    except CoveError:
        pass  # its cgroup is already gone
