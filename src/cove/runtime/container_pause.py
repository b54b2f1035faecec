"""`pause` and `resume`: freeze and thaw every process of a container (status paused)."""

from __future__ import annotations

from cove.errors import InvalidState
from cove.oci.state import PAUSED, RUNNING
from cove.runtime.cgroups import CgroupManager
from cove.runtime.cgroups.layout import host_layout
from cove.runtime.status import status_of
from cove.runtime.store import Store


def pause_container(store: Store, container_id: str) -> None:
    record = store.load(container_id)
    status = status_of(store, record)
    if status != RUNNING:
        raise InvalidState(f"cannot pause container {container_id!r}: it is {status}")
    CgroupManager(record.cgroup_paths, record.cgroup_owned).freeze(host_layout())


def resume_container(store: Store, container_id: str) -> None:
    record = store.load(container_id)
    status = status_of(store, record)
    if status != PAUSED:
        raise InvalidState(f"cannot resume container {container_id!r}: it is {status}")
    CgroupManager(record.cgroup_paths, record.cgroup_owned).thaw(host_layout())
