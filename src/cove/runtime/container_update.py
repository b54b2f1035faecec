"""`update`: change the resource limits of a created, running or paused container."""

from __future__ import annotations

from cove.errors import InvalidState
from cove.oci.state import STOPPED
from cove.runtime.cgroups import CgroupManager
from cove.runtime.cgroups.layout import host_layout
from cove.runtime.status import status_of
from cove.runtime.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.oci.resources import LinuxResources


def update_container(store: Store, container_id: str, resources: LinuxResources) -> list[str]:
    """Apply the fields set in `resources` (None fields are left as they are)."""
    record = store.load(container_id)
    status = status_of(store, record)
    if status == STOPPED:
        raise InvalidState(f"cannot update container {container_id!r}: it is stopped")
    return CgroupManager(record.cgroup_paths, record.cgroup_owned).apply(resources, host_layout())
