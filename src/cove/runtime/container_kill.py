"""`kill`: send a signal to init, or with --all to every process in the container."""

from __future__ import annotations

import os

from cove.errors import InvalidState
from cove.oci.state import STOPPED
from cove.runtime.cgroups import CgroupManager
from cove.runtime.status import status_of
from cove.runtime.store import Store


def kill_container(store: Store, container_id: str, signal: int, all_processes: bool) -> None:
    record = store.load(container_id)
    if status_of(store, record) == STOPPED:
        raise InvalidState(f"cannot kill container {container_id!r}: it is not running")
    pids = [record.pid]
    if all_processes:
        pids = CgroupManager(record.cgroup_paths, record.cgroup_owned).pids() or pids
    for pid in pids:
        try:
            os.kill(pid, signal)
        except ProcessLookupError:
            continue
