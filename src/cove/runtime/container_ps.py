"""`ps`: the host pids of the processes in a container (from its cgroup)."""

from __future__ import annotations

from cove.errors import InvalidState
from cove.oci.state import STOPPED
from cove.runtime.cgroups import CgroupManager
from cove.runtime.status import status_of
from cove.runtime.store import Store


def container_pids(store: Store, container_id: str) -> list[int]:
    record = store.load(container_id)
    if status_of(store, record) == STOPPED:
        raise InvalidState(f"container {container_id!r} is not running")
    return sorted(CgroupManager(record.cgroup_paths, record.cgroup_owned).pids())
