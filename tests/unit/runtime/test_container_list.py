"""cove.runtime.container_list: the state of every container under the root."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from cove.runtime.container_list import list_containers
from cove.runtime.store import STATE_FILE, Store
from tests.unit.runtime.conftest import MakeRecord


def test_list_skips_what_cannot_be_read(
    store: Store,
    saved_record: MakeRecord,
    children: Callable[[], subprocess.Popen[bytes]],
) -> None:
    init = children()
    saved_record("b-running", pid=init.pid)
    saved_record("a-stopped", pid=0)
    os.makedirs(store.container_dir("corrupt"))
    Path(store.container_dir("corrupt"), STATE_FILE).write_text("{")
    os.makedirs(os.path.join(store.root, "not valid"))
    states = list_containers(store)
    assert [(s.id, s.status) for s in states] == [
        ("a-stopped", "stopped"),
        ("b-running", "running"),
    ]
    assert states[1].pid == init.pid
    assert states[0].pid == 0


def test_list_of_missing_root(tmp_path: Path) -> None:
    assert list_containers(Store(str(tmp_path / "nothing"))) == []
