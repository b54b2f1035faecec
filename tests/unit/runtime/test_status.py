"""cove.runtime.status: a container's status derived from its record and the system."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cove.runtime.proc import start_time
from cove.runtime.status import state_of, status_of
from cove.runtime.store import ContainerRecord, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(str(tmp_path / "state"))
    os.makedirs(store.container_dir("ct"))
    return store


def record(pid: int, creating: bool = False, cgroup: str = "") -> ContainerRecord:
    return ContainerRecord(
        id="ct",
        bundle="/b",
        rootfs="/b/rootfs",
        created="t",
        pid=pid,
        pid_start=(start_time(pid) or 0) if pid > 0 else 0,
        cgroup_paths={"/fake": cgroup} if cgroup else {},
        creating=creating,
    )


@pytest.fixture
def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_creating(store: Store) -> None:
    assert status_of(store, record(os.getpid(), creating=True)) == "creating"


def test_stopped(store: Store, dead_pid: int) -> None:
    rec = record(dead_pid)
    assert status_of(store, rec) == "stopped"
    state = state_of(store, rec)
    assert state.status == "stopped"
    assert state.pid == 0


def test_reused_pid_is_stopped(store: Store) -> None:
    rec = record(os.getpid()).replace(pid_start=1)
    assert status_of(store, rec) == "stopped"


def test_created_while_the_fifo_exists(store: Store) -> None:
    Path(store.fifo_path("ct")).write_text("")
    assert status_of(store, record(os.getpid())) == "created"


def test_running(store: Store) -> None:
    rec = record(os.getpid())
    assert status_of(store, rec) == "running"
    state = state_of(store, rec)
    assert (state.id, state.pid, state.bundle, state.rootfs) == (
        "ct",
        os.getpid(),
        "/b",
        "/b/rootfs",
    )


@pytest.mark.parametrize(("name", "value"), [("freezer.state", "FROZEN\n"), ("cgroup.freeze", "1")])
def test_paused(store: Store, tmp_path: Path, name: str, value: str) -> None:
    cgroup = tmp_path / "cg"
    cgroup.mkdir()
    (cgroup / name).write_text(value)
    assert status_of(store, record(os.getpid(), cgroup=str(cgroup))) == "paused"


@pytest.mark.parametrize(("name", "value"), [("freezer.state", "THAWED\n"), ("cgroup.freeze", "0")])
def test_thawed_is_running(store: Store, tmp_path: Path, name: str, value: str) -> None:
    cgroup = tmp_path / "cg"
    cgroup.mkdir()
    (cgroup / name).write_text(value)
    assert status_of(store, record(os.getpid(), cgroup=str(cgroup))) == "running"
