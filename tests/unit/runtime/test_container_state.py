"""cove.runtime.container_state: the OCI state document of one container."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from cove.errors import NoSuchContainer
from cove.runtime.container_state import container_state
from cove.runtime.store import Store
from tests.unit.runtime.conftest import MakeRecord


def test_state(
    store: Store, saved_record: MakeRecord, children: Callable[[], subprocess.Popen[bytes]]
) -> None:
    init = children()
    record = saved_record(pid=init.pid)
    state = container_state(store, "ct")
    assert state.to_json()["status"] == "running"
    assert (state.id, state.pid, state.bundle) == ("ct", init.pid, record.bundle)
    with pytest.raises(NoSuchContainer):
        container_state(store, "ghost")
