"""cove.runtime.container_delete: remove stopped (or, forced, any) containers."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cove.errors import InvalidState, NoSuchContainer
from cove.runtime import container_delete
from cove.runtime.container_delete import delete_container
from cove.runtime.store import Store
from tests.unit.runtime.conftest import MakeRecord

Spawn = Callable[[], subprocess.Popen[bytes]]


def test_unknown(store: Store) -> None:
    with pytest.raises(NoSuchContainer):
        delete_container(store, "ghost", force=False)
    delete_container(store, "ghost", force=True)  # as runc: forcing nothing succeeds


def test_stopped_is_removed_with_its_cgroup(
    store: Store,
    saved_record: MakeRecord,
    children: Spawn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Thawing goes through the cgroup manager (tested with the freezer modules); here the
    # cgroup is a plain folder: record the call instead.
    thawed: list[str] = []
    monkeypatch.setattr(
        container_delete.CgroupManager, "thaw", lambda self, layout: thawed.append("ct")
    )
    init = children()
    cgroup = tmp_path / "cg" / "ct"
    saved_record(pid=init.pid, cgroup=cgroup)
    init.kill()
    init.wait()
    (cgroup / "sub").mkdir(parents=True)
    delete_container(store, "ct", force=False)
    assert not os.path.exists(store.container_dir("ct"))
    assert not cgroup.exists()
    assert thawed == ["ct"]


def test_running_needs_force(store: Store, saved_record: MakeRecord, children: Spawn) -> None:
    init = children()
    saved_record(pid=init.pid)
    with pytest.raises(InvalidState, match=r"that is not stopped: it is running$"):
        delete_container(store, "ct", force=False)
    assert init.poll() is None
    assert os.path.isdir(store.container_dir("ct"))


def test_force_kills_and_removes(store: Store, saved_record: MakeRecord, children: Spawn) -> None:
    init = children()
    saved_record(pid=init.pid)
    delete_container(store, "ct", force=True)
    assert init.wait(timeout=5) == -signal.SIGKILL
    assert not os.path.exists(store.container_dir("ct"))


def test_created_is_deleted_without_force(
    store: Store, saved_record: MakeRecord, children: Spawn
) -> None:
    init = children()
    saved_record(pid=init.pid)
    with open(store.fifo_path("ct"), "w"):
        pass
    delete_container(store, "ct", force=False)
    assert init.wait(timeout=5) == -signal.SIGKILL
    assert not os.path.exists(store.container_dir("ct"))
