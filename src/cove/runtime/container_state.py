"""`state`: the OCI state document of one container."""

from __future__ import annotations

from cove.oci.state import State
from cove.runtime.status import state_of
from cove.runtime.store import Store


def container_state(store: Store, container_id: str) -> State:
    return state_of(store, store.load(container_id))
