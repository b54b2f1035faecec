"""Fixtures for the lifecycle modules: a store holding records of real child processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cove.runtime.proc import start_time
from cove.runtime.store import ContainerRecord, Store

MakeRecord = Callable[..., ContainerRecord]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "state"))


@pytest.fixture
def children() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Factory of `sleep` children standing in for container processes; reaped at the end."""
    made: list[subprocess.Popen[bytes]] = []

    def spawn() -> subprocess.Popen[bytes]:
        child = subprocess.Popen(["sleep", "30"])
        made.append(child)
        return child

    yield spawn
    for child in made:
        if child.poll() is None:
            child.kill()
        child.wait()


@pytest.fixture
def saved_record(store: Store, tmp_path: Path) -> MakeRecord:
    """Factory: save a finished (not creating) record for `container_id` with `pid`."""

    def make(container_id: str = "ct", pid: int = 0, cgroup: Path | None = None) -> ContainerRecord:
        record = ContainerRecord(
            id=container_id,
            bundle=str(tmp_path / "bundle"),
            rootfs=str(tmp_path / "bundle" / "rootfs"),
            created="2024-05-01T12:00:00Z",
            pid=pid,
            pid_start=(start_time(pid) or 0) if pid > 0 else 0,
            cgroup_paths={} if cgroup is None else {str(cgroup.parent): str(cgroup)},
            creating=False,
        )
        os.close(store.reserve(container_id))
        store.save(record)
        return record

    return make
