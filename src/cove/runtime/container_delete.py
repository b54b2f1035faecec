"""`delete`: remove a stopped (or, with --force, any) container: processes, cgroup, state."""

from __future__ import annotations

import os

from cove.errors import CgroupError, InvalidState, NoSuchContainer
from cove.oci.state import CREATED, STOPPED, State
from cove.runtime.cgroups import CgroupManager
from cove.runtime.cgroups.layout import host_layout
from cove.runtime.proc import is_alive, wait_gone
from cove.runtime.status import status_of
from cove.runtime.store import ContainerRecord, Store
from cove.sys.constants import SIGKILL


def delete_container(store: Store, container_id: str, force: bool) -> list[str]:
    """Delete the container; returns the warnings of failing poststop hooks."""
    try:
        record = store.load(container_id)
    except NoSuchContainer:
        if force:
            return []  # as runc: forcing the removal of nothing succeeds
        raise
    status = status_of(store, record)
    if status not in (STOPPED, CREATED) and not force:
        raise InvalidState(
            f"cannot delete container {container_id!r} that is not stopped: it is {status}"
        )
    return destroy(store, record)


def destroy(store: Store, record: ContainerRecord) -> list[str]:
    """Kill whatever still runs in the container, remove its cgroup and state, then run
    the poststop hooks; returns their warnings."""
    cgroup = CgroupManager(record.cgroup_paths, record.cgroup_owned)
    # Frozen tasks cannot die: thaw first. A shared cgroup (not owned) holds other
    # containers' processes too: then only init is ours to kill.
    others: list[int] = []
    if cgroup.owned:
        cgroup.thaw(host_layout())
        others = cgroup.pids()
    # pid 0 (a create killed before init existed) must never reach kill(): kill(0, ...)
    # is the caller's whole process group. A recycled pid is not init: check its start.
    own_init = record.pid > 0 and is_alive(record.pid, record.pid_start)
    for pid in [record.pid] * own_init + others:
        if pid <= 0:
            continue
        try:
            os.kill(pid, SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    if record.pid and not wait_gone(record.pid, record.pid_start, timeout=10):
        raise CgroupError(f"container {record.id!r}: init {record.pid} survived SIGKILL")
    cgroup.destroy()
    removed_here = store.remove(record.id)
    hooks = record.hooks.get("poststop")
    if not hooks or not removed_here:  # a racing delete removed it: its hooks ran there
        return []
    from cove.oci.runtime_spec import parse_hook_list
    from cove.runtime.hooks import run_hooks

    state = State(record.id, STOPPED, 0, record.bundle, record.rootfs, record.created,
                  record.owner, record.annotations)  # fmt: skip
    return run_hooks("poststop", parse_hook_list(hooks, "poststop"), state, record.bundle)
