"""`list`: the state of every container under the root."""

from __future__ import annotations

from cove.errors import NoSuchContainer, StateCorrupt
from cove.oci.state import State
from cove.runtime.status import state_of
from cove.runtime.store import Store


def list_containers(store: Store) -> list[State]:
    states = []
    for container_id in store.ids():
        try:
            states.append(state_of(store, store.load(container_id)))
        except (NoSuchContainer, StateCorrupt):
            continue  # vanished meanwhile, or a stale entry that load() just swept
    return states
