"""cove.runtime.container_ps: the pids of a running container, from its cgroup."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cove.errors import InvalidState
from cove.runtime.container_ps import container_pids
from cove.runtime.store import Store
from tests.unit.runtime.conftest import MakeRecord


def test_sorted_pids(
    store: Store,
    saved_record: MakeRecord,
    children: Callable[[], subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    init = children()
    cgroup = tmp_path / "cg" / "ct"
    cgroup.mkdir(parents=True)
    (cgroup / "cgroup.procs").write_text(f"{init.pid + 7}\n{init.pid}\n")
    saved_record(pid=init.pid, cgroup=cgroup)
    assert container_pids(store, "ct") == [init.pid, init.pid + 7]


def test_stopped(store: Store, saved_record: MakeRecord) -> None:
    saved_record(pid=0)
    with pytest.raises(InvalidState, match=r"^container 'ct' is not running$"):
        container_pids(store, "ct")
