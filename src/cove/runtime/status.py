"""A container's status, derived from its record and the live system (never stored)."""

from __future__ import annotations

import os

from cove.oci.state import CREATED, CREATING, PAUSED, RUNNING, STOPPED, State
from cove.runtime.proc import is_alive
from cove.runtime.store import ContainerRecord, Store


def status_of(store: Store, record: ContainerRecord) -> str:
    if record.creating:
        return CREATING
    if not is_alive(record.pid, record.pid_start):
        return STOPPED
    if os.path.exists(store.fifo_path(record.id)):
        return CREATED
    if _frozen(record):
        return PAUSED
    return RUNNING


def _frozen(record: ContainerRecord) -> bool:
    for path in record.cgroup_paths.values():
        for name, frozen in (("freezer.state", "FROZEN"), ("cgroup.freeze", "1")):
            try:
                with open(os.path.join(path, name)) as state:
                    if state.read().strip() == frozen:
                        return True
            except OSError:
                continue
    return False


def state_of(store: Store, record: ContainerRecord) -> State:
    status = status_of(store, record)
    return State(
        id=record.id,
        status=status,
        pid=0 if status == STOPPED else record.pid,
        bundle=record.bundle,
        rootfs=record.rootfs,
        created=record.created,
        owner=record.owner,
        annotations=record.annotations,
    )
