"""cove.runtime.container_kill: signals to init, or to every process of the cgroup."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cove.errors import InvalidState, NoSuchContainer
from cove.runtime.container_kill import kill_container
from cove.runtime.store import Store
from tests.unit.runtime.conftest import MakeRecord

Spawn = Callable[[], subprocess.Popen[bytes]]


def test_signal_goes_to_init(store: Store, saved_record: MakeRecord, children: Spawn) -> None:
    init = children()
    saved_record(pid=init.pid)
    kill_container(store, "ct", signal.SIGTERM, all_processes=False)
    assert init.wait(timeout=5) == -signal.SIGTERM


def test_all_signals_every_process_of_the_cgroup(
    store: Store, saved_record: MakeRecord, children: Spawn, tmp_path: Path
) -> None:
    init, other = children(), children()
    cgroup = tmp_path / "cg" / "ct"
    cgroup.mkdir(parents=True)
    (cgroup / "cgroup.procs").write_text(f"{init.pid}\n{other.pid}\n")
    saved_record(pid=init.pid, cgroup=cgroup)
    kill_container(store, "ct", signal.SIGKILL, all_processes=True)
    assert init.wait(timeout=5) == -signal.SIGKILL
    assert other.wait(timeout=5) == -signal.SIGKILL


def test_all_without_cgroup_signals_init(
    store: Store, saved_record: MakeRecord, children: Spawn
) -> None:
    init = children()
    saved_record(pid=init.pid)
    kill_container(store, "ct", signal.SIGKILL, all_processes=True)
    assert init.wait(timeout=5) == -signal.SIGKILL


def test_stopped_container_cannot_be_killed(
    store: Store, saved_record: MakeRecord, children: Spawn
) -> None:
    init = children()
    saved_record(pid=init.pid)
    init.kill()
    init.wait()
    with pytest.raises(InvalidState, match=r"^cannot kill container 'ct': it is not running"):
        kill_container(store, "ct", signal.SIGTERM, all_processes=False)


def test_unknown_container(store: Store) -> None:
    with pytest.raises(NoSuchContainer):
        kill_container(store, "ghost", signal.SIGTERM, all_processes=False)
