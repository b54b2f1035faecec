"""Crashes and `cove system check [--repair]`: kill -9 of a `cove run -d` at many points of its
run, of a container's monitor, of a container's init; afterwards the check repairs what the
crash left, then finds nothing, and no mount, cgroup or monitor of a stopped or removed
container remains.

Points inside `run -d` are hit two ways: kill -9 after a delay (fractions of the time a whole
`run -d` takes here), and a copy of the CLI that kills itself at one named step (a patched
function), so that each step is covered on every run, however fast the machine is."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.engine.test_lifecycle import (
    CHECK_ENV,
    LOOP,
    WAIT_FOR_GATE,
    all_ids,
    cgroups_of,
    fmt,
    gate,
    monitors_of,
    ok,
    poll,
    remove_everything,
    run_d,
)
from tests.integration.engine.test_lifecycle import eng as eng  # a fixture, used by name
from tests.integration.engine.test_lifecycle import engine as engine  # a fixture, used by name
from tests.integration.image.test_import import cove, cove_cli
from tests.lib.runtimes import mounts_under

pytestmark = pytest.mark.root

SRC = Path(__file__).resolve().parents[3] / "src"

# A copy of the `cove` entry point that SIGKILLs itself at one step, named by COVE_TEST_CRASH.
CRASHING_CLI = """
import os, signal, sys
sys.path.insert(0, {src!r})
step = os.environ["COVE_TEST_CRASH"]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

def after(function):
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        die()
        return result
    return wrapper

from cove.engine import container_start, containers, specgen
from cove.engine.oci_runtime_library import LibraryRuntime
from cove.engine.oci_runtime_subprocess import SubprocessRuntime
if step == "specgen":  # record added, snapshot mounted, no bundle yet
    specgen.generate_spec = die
elif step == "created":  # created and mounted, not started
    containers.create_container = after(containers.create_container)
elif step == "launched":  # init waits under its monitor; the record still says created
    container_start.launch = after(container_start.launch)
elif step == "recorded":  # the record says running; the runtime's start never came
    LibraryRuntime.start = SubprocessRuntime.start = die
elif step == "started":  # started; the CLI dies before it prints the id
    containers.start_container = after(containers.start_container)
from cove.cli.engine import main
main()
"""


def check(root: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    # its own session: cove-runtime's delete of a container still being created kills the
    # caller's process group (os.kill(0, SIGKILL), runtime/container_delete.py): not pytest
    return subprocess.run([cove_cli(), "--root", str(root), "system", "check", *flags],
                          capture_output=True, text=True, timeout=60, env=CHECK_ENV,
                          start_new_session=True)  # fmt: skip


def repaired(root: Path) -> dict[str, str]:
    """`system check --repair`, then `system check` finds nothing; the containers' states."""
    fixed = check(root, "--repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "repair failed" not in fixed.stdout
    again = check(root)
    assert (again.returncode, again.stdout) == (0, "nothing to repair\n"), again.stdout
    states = {}
    for line in ok(root, "ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.State}}").splitlines():
        cid, state = line.split()
        states[cid] = state
    return states


def assert_only_running_hold_resources(root: Path, states: dict[str, str]) -> None:
    """Mounts, cgroups and monitors belong to running containers only."""
    running = [cid for cid, state in states.items() if state in ("running", "paused")]
    for cid, state in states.items():
        assert state in ("created", "exited", "running"), (cid, state)
        if state not in ("running", "paused"):
            assert not mounts_under(root / "snapshots" / f"ctr-{cid[:32]}"), cid
            assert cgroups_of(cid) == [], cid
    poll(lambda: len(monitors_of(root)) == len(running), "only running containers' monitors")
    mounts = [m for m in mounts_under(root) if not any(cid[:32] in m for cid in running)]
    assert mounts == []


def measure_run(root: Path) -> float:
    started = time.monotonic()
    cid = run_d(root, "bb:1", "sleep", "100")
    took = time.monotonic() - started
    ok(root, "rm", "-f", cid)
    return took


def test_kill_run_detached_after_delays(eng: Path) -> None:
    took = min(measure_run(eng), measure_run(eng))
    seen: set[str] = set()
    for fraction in (0.35, 0.55, 0.7, 0.8, 0.9, 1.0):
        argv = [cove_cli(), "--root", str(eng), "run", "-d", "bb:1", "sh", "-c", LOOP]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(took * fraction)
        process.kill()
        process.communicate(timeout=30)
        states = repaired(eng)
        assert len(states) <= 1
        seen.update(states.values())
        assert_only_running_hold_resources(eng, states)
        remove_everything(eng)
    print(f"run -d takes {took:.3f}s here; states after the kills: {sorted(seen)}")


def test_sigterm_during_run_detached_leaves_nothing_half_made(eng: Path) -> None:
    """A TERM that comes while `run -d` makes and starts the container waits until it runs
    (then cove ends as asked): never a created-only container, never one that never starts."""
    took = min(measure_run(eng), measure_run(eng))
    for fraction in (0.3, 0.5, 0.65, 0.8, 0.9, 1.0):
        argv = [cove_cli(), "--root", str(eng), "run", "-d", "bb:1", "sh", "-c", LOOP]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   start_new_session=True)  # fmt: skip
        time.sleep(took * fraction)
        process.terminate()
        out, err = process.communicate(timeout=30)
        assert process.returncode in (0, -signal.SIGTERM), err
        ids = all_ids(eng)
        assert ids == ([out.decode().strip()] if out else []), (out, ids)
        assert [fmt(eng, "{{.State.Status}}", cid) for cid in ids] == ["running"] * len(ids)
        assert check(eng).stdout == "nothing to repair\n"
        remove_everything(eng)


@pytest.mark.parametrize("step", ["specgen", "created", "launched", "recorded", "started"])
def test_kill_run_detached_at_each_step(eng: Path, tmp_path: Path, step: str) -> None:
    cli = tmp_path / "crashing-cove"
    cli.write_text(CRASHING_CLI.format(src=str(SRC)))
    argv = [sys.executable, "-I", str(cli), "--root", str(eng), "run", "-d", "bb:1", "sh",
            "-c", f"echo ran; {LOOP}"]  # fmt: skip
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COVE_TEST_CRASH": step})  # fmt: skip
    assert res.returncode == -signal.SIGKILL, res.stderr
    (cid,) = all_ids(eng)
    before = check(eng)
    if step in ("specgen", "created", "launched", "recorded"):
        assert before.returncode == 1, before.stdout  # something is left to repair
    if step == "specgen":  # never completely created: it cannot start
        refused = cove(eng, "start", cid)
        assert refused.returncode == 1 and "not completely created" in refused.stderr
    states = repaired(eng)
    expected = {"specgen": {}, "created": {cid: "created"}, "launched": {cid: "created"},
                "recorded": {cid: "exited"}, "started": {cid: "running"}}[step]  # fmt: skip
    assert states == expected
    assert_only_running_hold_resources(eng, states)
    if step == "specgen":
        assert not (eng / "snapshots" / f"ctr-{cid[:32]}").exists()
    elif step == "started":
        poll(lambda: ok(eng, "logs", cid) == "ran\n", "the container runs its command")
    else:
        assert ok(eng, "logs", cid) == ""  # the command never ran
    if step in ("created", "launched", "recorded"):
        # what is left is an ordinary stopped container: it starts
        ok(eng, "start", cid)
        poll(lambda: ok(eng, "logs", cid) == "ran\n", "the container runs its command")
    remove_everything(eng)


@pytest.mark.parametrize("step", ["created", "launched", "recorded"])
def test_rm_after_a_killed_run(eng: Path, tmp_path: Path, step: str) -> None:
    """No check first: `rm -f` alone removes what the killed `run -d` left."""
    cli = tmp_path / "crashing-cove"
    cli.write_text(CRASHING_CLI.format(src=str(SRC)))
    argv = [sys.executable, "-I", str(cli), "--root", str(eng), "run", "-d", "bb:1", "true"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COVE_TEST_CRASH": step})  # fmt: skip
    assert res.returncode == -signal.SIGKILL, res.stderr
    (cid,) = all_ids(eng)
    assert ok(eng, "rm", "-f", cid).strip() == cid
    poll(lambda: monitors_of(eng) == [], "the monitor exits")
    assert cgroups_of(cid) == [] and mounts_under(eng) == []
    assert not list((eng / "runtime").glob(f"*/{cid}"))
    assert repaired(eng) == {}


def monitor_pid_in_db(root: Path, cid: str) -> int:
    with sqlite3.connect(root / "containers.db") as db:
        (pid,) = db.execute("SELECT monitor_pid FROM containers WHERE id = ?", (cid,)).fetchone()
    return int(pid)


def test_kill_the_monitor(eng: Path) -> None:
    cid = run_d(eng, "bb:1", "sh", "-c", LOOP)
    init = int(fmt(eng, "{{.State.Pid}}", cid))
    monitor = monitor_pid_in_db(eng, cid)
    assert monitors_of(eng) == [monitor]
    os.kill(monitor, signal.SIGKILL)
    poll(lambda: monitors_of(eng) == [], "the monitor dies")
    before = check(eng)
    assert before.returncode == 1 and "stale record" in before.stdout
    states = repaired(eng)
    assert states == {cid: "exited"}
    assert fmt(eng, "{{.State.ExitCode}}", cid) == "255"  # docker's "unknown"
    assert "monitor" in fmt(eng, "{{.State.Error}}", cid)
    poll(lambda: not Path(f"/proc/{init}").exists(), "the unsupervised init is stopped")
    assert_only_running_hold_resources(eng, states)
    ok(eng, "start", cid)  # it can run again, under a new monitor
    assert fmt(eng, "{{.State.Status}}", cid) == "running"
    assert monitors_of(eng) == [monitor_pid_in_db(eng, cid)]
    remove_everything(eng)


def test_kill_the_monitor_then_any_command_repairs(eng: Path) -> None:
    cid = run_d(eng, "bb:1", "sh", "-c", LOOP)
    os.kill(monitor_pid_in_db(eng, cid), signal.SIGKILL)
    poll(lambda: monitors_of(eng) == [], "the monitor dies")
    listed = ok(eng, "ps", "-a", "--format", "{{.Status}}")
    assert listed.startswith("Exited (255)")
    assert repaired(eng) == {cid: "exited"}
    remove_everything(eng)


def test_kill_the_init(eng: Path) -> None:
    cid = run_d(eng, "bb:1", "sh", "-c", LOOP)
    os.kill(int(fmt(eng, "{{.State.Pid}}", cid)), signal.SIGKILL)
    # the monitor records the exit and runs `cove container cleanup`: no command needed
    poll(lambda: not monitors_of(eng), "the monitor exits")
    with sqlite3.connect(eng / "containers.db") as db:
        poll(lambda: db.execute("SELECT status FROM containers").fetchone() == ("exited",),
             "the exit command records the exit")  # fmt: skip
    states = repaired(eng)
    assert states == {cid: "exited"}
    assert fmt(eng, "{{.State.ExitCode}}", cid) == "137"
    assert_only_running_hold_resources(eng, states)
    remove_everything(eng)


def test_kill_a_foreground_run(eng: Path) -> None:
    """The attached `cove run --rm` dies: the container runs on; when it exits, its monitor's
    exit command records that and applies --rm, with no cove command running."""
    volume, go = gate(eng)
    argv = [cove_cli(), "--root", str(eng), "run", "--rm", *volume, "bb:1", "sh", "-c",
            f"echo started; {WAIT_FOR_GATE}"]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"started\n"
    finally:
        process.kill()
        process.communicate(timeout=30)
    (cid,) = all_ids(eng)
    assert repaired(eng) == {cid: "running"}  # nothing to repair: it still runs
    go.touch()
    poll(lambda: not (eng / "containers" / cid).exists(), "--rm removes the container")
    poll(lambda: monitors_of(eng) == [], "the monitor exits")
    assert cgroups_of(cid) == [] and all_ids(eng) == []
    assert repaired(eng) == {}
    remove_everything(eng)


def test_check_ignores_other_engine_roots(eng: Path, tmp_path: Path) -> None:
    """Cgroups and attach sockets are shared by all eng roots on the host: a repair of one
    root must never stop the containers of another."""
    other = run_d(eng, "bb:1", "sh", "-c", LOOP)
    empty_root = tmp_path / "another-engine"
    fixed = check(empty_root, "--repair")
    assert (fixed.returncode, fixed.stdout) == (0, "nothing to repair\n")
    assert fmt(eng, "{{.State.Status}}", other) == "running"
    assert cgroups_of(other) != []
    assert Path(f"/proc/{fmt(eng, '{{.State.Pid}}', other)}").exists()
    remove_everything(eng)
    assert cove(empty_root, "ps", "-a", "-q").stdout == ""
