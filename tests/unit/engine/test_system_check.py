"""`cove system check` finds what a crash left: checked on a made-up engine root (finding
only; the repairs need root and real containers: tests/integration/engine)."""

from __future__ import annotations

import os
from pathlib import Path

from cove.engine.state import ContainerRecord, ContainerStore
from cove.engine.system_check import check

OLD = 1_000_000_000  # an mtime far in the past: older than any grace period


def age(path: Path) -> None:
    os.utime(path, (OLD, OLD))


def test_clean_root_has_nothing_to_report(tmp_path: Path) -> None:
    ContainerStore(tmp_path).close()
    assert check(str(tmp_path)) == []


def test_leftovers_are_found_and_named(tmp_path: Path) -> None:
    lost, kept = "a" * 64, "b" * 64
    with ContainerStore(tmp_path) as store:
        # a record that says running, with no monitor: a crash between steps
        store.add(ContainerRecord(id=lost, name="lost", image_id="sha256:" + "0" * 64,
                                  image_name="img", status="running"))  # fmt: skip
        store.add(ContainerRecord(id=kept, name="kept", image_id="sha256:" + "0" * 64,
                                  image_name="img", status="exited"))  # fmt: skip
    orphan_dir = tmp_path / "containers" / ("c" * 64)
    orphan_dir.mkdir(parents=True)
    age(orphan_dir)
    young_dir = tmp_path / "containers" / ("d" * 64)  # a create still running: left alone
    young_dir.mkdir()
    snapshot = tmp_path / "snapshots" / ("ctr-" + "e" * 32)
    snapshot.mkdir(parents=True)
    age(snapshot)
    runtime_state = tmp_path / "runtime" / "cove" / ("f" * 64)
    runtime_state.mkdir(parents=True)
    age(runtime_state)
    lines = [finding.line() for finding in check(str(tmp_path))]
    assert any(line.startswith("stale record: container aaaaaaaaaaaa (lost)") for line in lines)
    assert any(line.startswith("folder: ") and "c" * 64 in line for line in lines)
    assert not any("d" * 64 in line for line in lines)
    assert any(line.startswith("snapshot: ctr-" + "e" * 32) for line in lines)
    assert any(line.startswith("runtime state: cove state of ffffffffffff") for line in lines)
    assert not any("kept" in line for line in lines)
    assert all("(removed)" not in line for line in lines)  # found, not repaired
