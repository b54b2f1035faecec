"""kill -9 of `cove-runtime create` at any moment leaves nothing a later command keeps.

The create is killed at delays spread over its whole duration. Afterwards every container
the runtime still lists must be whole (created, with its init in its cgroup) or stopped,
no other runtime process may survive, and `delete --force` must remove every trace.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.lib.bundle import Bundle
from tests.lib.runtimes import Runtime, leaked_cgroups, wait_for


def _processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains `text` (forked runtime processes keep argv)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline and (entry / "stat").read_text().split()[2] != "Z":
            found.append(int(entry.name))
    return found


def _create_duration(rt: Runtime, b: Bundle) -> float:
    container_id = rt.new_id("probe")
    started = time.monotonic()
    rt.create(b, container_id).check()
    elapsed = time.monotonic() - started
    rt.delete(container_id, force=True).check()
    return elapsed


def test_kill_9_during_create_leaves_nothing(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    rt = make_runtime("cove")
    b = bundle()
    b.process["args"] = ["sleep", "1000"]
    b.save()
    duration = _create_duration(rt, b)
    attempts = 40
    ids = []
    for attempt in range(attempts):
        container_id = rt.new_id(f"k{attempt}")
        ids.append(container_id)
        rt.track(container_id)
        proc = subprocess.Popen(
            rt.command("create", "--bundle", str(b.path), container_id),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(duration * 1.2 * attempt / attempts)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    state_root = str(rt.root)
    # Setup processes of a killed create see end-of-file on their socket and exit.
    listed = rt.list_json()
    created_inits = {e["pid"] for e in listed if e["status"] == "created"}
    assert wait_for(lambda: set(_processes_mentioning(state_root)) <= created_inits, 5.0), (
        f"runtime processes outlived a killed create: {_processes_mentioning(state_root)}"
    )
    statuses = {e["status"] for e in listed}
    assert statuses <= {"created", "stopped"}, listed
    for entry in listed:
        if entry["status"] == "created":
            pids = rt.ps(entry["id"], "--format", "json").json()
            assert pids == [entry["pid"]]
    # What is not listed must be gone without a trace: directory and cgroups.
    listed_ids = {e["id"] for e in listed}
    for container_id in ids:
        if container_id not in listed_ids:
            assert not (rt.root / container_id).exists()
            assert leaked_cgroups(container_id) == []
    for container_id in listed_ids:
        rt.delete(container_id, force=True).check()
    assert _processes_mentioning(state_root) == []
    assert not rt.root.exists() or list(rt.root.iterdir()) == []
    for container_id in ids:
        assert leaked_cgroups(container_id) == []


def test_a_later_command_sweeps_an_interrupted_create(
    make_runtime: Callable[[str], Runtime], bundle: Callable[..., Bundle]
) -> None:
    """A directory whose create died (record still 'creating', lock free) is removed."""
    rt = make_runtime("cove")
    b = bundle()
    container_id = rt.new_id("swept")
    rt.track(container_id)
    cgroup = Path("/sys/fs/cgroup/pids/cove") / container_id
    cgroup.mkdir(parents=True)
    state_dir = rt.root / container_id
    state_dir.mkdir(parents=True)
    record = {
        "id": container_id,
        "bundle": str(b.path),
        "rootfs": str(b.rootfs),
        "created": "",
        "creating": True,
        "cgroup_paths": {"/sys/fs/cgroup/pids": str(cgroup)},
    }
    (state_dir / "state.json").write_text(json.dumps(record))
    assert container_id not in {e["id"] for e in rt.list_json()}
    assert not state_dir.exists()
    assert not cgroup.exists()
    # and the id is free again
    rt.create(b, container_id).check()
    assert rt.status(container_id) == "created"
