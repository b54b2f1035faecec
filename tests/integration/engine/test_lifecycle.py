"""The container verbs of the `cove` CLI on real containers, one engine root per test: run -d,
ps, inspect, stop, start, restart, kill, wait, pause, unpause, rename, rm, prune, create,
update; refused requests that create nothing; limits and OOM kills seen through the engine;
the same lifecycle through runc and crun.

The helpers here (`eng`, `ok`, `run_d`, `poll`...) are shared by the other test_*.py files of
this folder that drive the engine CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.engine.test_run import engine as engine  # a fixture, used by name
from tests.integration.engine.test_run import nothing_left
from tests.integration.image.test_import import cove, cove_cli
from tests.lib.runtimes import find_binary, process_state, wait_for

pytestmark = pytest.mark.root

FULL_ID = re.compile(r"[0-9a-f]{64}")
LOOP = "while true; do sleep 0.05; done"


# --- helpers ----------------------------------------------------------------------------------


def ok(root: Path, *args: str) -> str:
    res = cove(root, *args)
    assert res.returncode == 0, f"cove {' '.join(args)}: {res.returncode}: {res.stderr}"
    return res.stdout


def run_d(root: Path, *args: str) -> str:
    """`cove run -d ARGS`: the new container's full id."""
    out = ok(root, "run", "-d", *args).strip()
    assert FULL_ID.fullmatch(out), out
    return out


def fmt(root: Path, template: str, container: str) -> str:
    return ok(root, "inspect", "-f", template, container).strip()


def status(root: Path, container: str) -> str:
    return fmt(root, "{{.State.Status}}", container)


def poll(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    assert wait_for(predicate, timeout=timeout, interval=0.05), f"timed out: {what}"


def all_ids(root: Path) -> list[str]:
    return ok(root, "ps", "-a", "-q", "--no-trunc").split()


def monitors_of(root: Path) -> list[int]:
    """Pids of cove-monitor processes working for engine `root`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"cove-monitor") and f"{root}/".encode() in b" ".join(argv):
            found.append(int(proc.name))
    return found


def cgroups_of(container_id: str) -> list[Path]:
    """The container's cgroup directories (/sys/fs/cgroup/*/cove/ID); a prefix matches too."""
    return sorted(Path("/sys/fs/cgroup").glob(f"*/cove/{container_id}*"))


def remove_everything(root: Path) -> None:
    """rm -f every container, then check that nothing of them is left anywhere."""
    ids = all_ids(root)
    if ids:
        ok(root, "rm", "-f", *ids)
    assert cove(root, "ps", "-a", "-q").stdout == ""
    poll(lambda: not monitors_of(root), "the monitors exit")
    for container_id in ids:
        assert cgroups_of(container_id) == []
    nothing_left(root)


# `system check` leaves alone what is younger than a minute (a command may be making it);
# tests run no other command at the same time, so everything counts at once
CHECK_ENV = {**os.environ, "COVE_CHECK_GRACE": "0"}


def last_resort(root: Path) -> None:
    """After a failed test: stop what is left, even without a working record."""
    ids = cove(root, "ps", "-a", "-q", "--no-trunc").stdout.split()
    for pid in monitors_of(root):
        os.kill(pid, signal.SIGKILL)  # then the check below stops the unsupervised inits
    subprocess.run([cove_cli(), "--root", str(root), "system", "check", "--repair"],
                   capture_output=True, timeout=60, env=CHECK_ENV,
                   start_new_session=True)  # fmt: skip
    if ids:
        cove(root, "rm", "-f", *ids)


@pytest.fixture
def eng(engine: Path) -> Iterator[Path]:
    """An engine root with image bb:1; emptied and checked for leftovers afterwards."""
    yield engine
    try:
        remove_everything(engine)
    except BaseException:
        last_resort(engine)
        raise


def gate(root: Path) -> tuple[list[str], Path]:
    """A host folder the container sees at /gate: (the -v flag, the file that opens the gate).
    Scripts wait with WAIT_FOR_GATE; the test opens the gate by creating the file."""
    shared = Path(tempfile.mkdtemp(prefix="gate-", dir=root.parent))
    return ["-v", f"{shared}:/gate"], shared / "go"


WAIT_FOR_GATE = "until [ -e /gate/go ]; do sleep 0.05; done"


def pid_of(root: Path, container: str) -> int:
    return int(fmt(root, "{{.State.Pid}}", container))


# --- lifecycle --------------------------------------------------------------------------------


def test_run_detached_then_stop_after_the_timeout(eng: Path) -> None:
    cid = run_d(eng, "--name", "web", "bb:1", "sh", "-c", f"trap '' TERM; {LOOP}")
    listed = ok(eng, "ps", "--no-trunc")
    assert cid in listed and re.search(r"\bUp\b", listed) and "web" in listed
    assert ok(eng, "ps", "-q").split() == [cid[:12]]
    state = fmt(eng, "{{.State.Status}} {{.State.Running}} {{.State.Pid}}", "web").split()
    assert state[:2] == ["running", "true"] and int(state[2]) > 1
    assert Path(f"/proc/{state[2]}").exists()
    started = time.monotonic()
    assert ok(eng, "stop", "-t", "1", "web").strip() == "web"
    took = time.monotonic() - started
    assert 1.0 <= took < 10, took
    assert fmt(eng, "{{.State.Status}} {{.State.ExitCode}} {{.State.Pid}}", cid) == "exited 137 0"
    assert "Exited (137)" in ok(eng, "ps", "-a")
    assert ok(eng, "ps", "-q") == ""
    assert ok(eng, "stop", "web").strip() == "web"  # stopping a stopped container: nothing


def test_stop_of_a_container_that_handles_term_is_fast(eng: Path) -> None:
    cid = run_d(eng, "bb:1", "sh", "-c", f"trap 'exit 7' TERM; {LOOP}")
    started = time.monotonic()
    ok(eng, "stop", cid[:12])
    assert time.monotonic() - started < 5  # the default timeout is 10 s: it was not needed
    assert fmt(eng, "{{.State.ExitCode}}", cid) == "7"
    assert "Exited (7)" in ok(eng, "ps", "-a")


def test_start_and_restart_keep_the_id(eng: Path) -> None:
    cid = run_d(eng, "bb:1", "sh", "-c", f"echo started; trap 'exit 3' TERM; {LOOP}")
    first_pid = pid_of(eng, cid)
    ok(eng, "stop", cid)
    assert ok(eng, "start", cid).strip() == cid
    assert status(eng, cid) == "running" and pid_of(eng, cid) != first_pid
    assert all_ids(eng) == [cid]
    poll(lambda: ok(eng, "logs", cid).count("started") == 2, "the second run's output")
    assert fmt(eng, "{{.RestartCount}}", cid) == "0"
    for count in (1, 2):
        before = pid_of(eng, cid)
        ok(eng, "restart", "-t", "5", cid)
        assert fmt(eng, "{{.RestartCount}} {{.State.Status}}", cid) == f"{count} running"
        assert pid_of(eng, cid) != before
    assert all_ids(eng) == [cid]


def test_kill_sends_the_signal_and_fails_on_a_stopped_container(eng: Path) -> None:
    script = f"trap 'echo got-usr1' USR1; echo ready; {LOOP}"
    cid = run_d(eng, "bb:1", "sh", "-c", script)
    poll(lambda: "ready" in ok(eng, "logs", cid), "the trap is set")
    assert ok(eng, "kill", "-s", "USR1", cid).strip() == cid
    poll(lambda: "got-usr1" in ok(eng, "logs", cid), "the trap ran")
    assert status(eng, cid) == "running"  # USR1 was handled, not fatal
    ok(eng, "kill", cid)  # SIGKILL
    poll(lambda: status(eng, cid) == "exited", "the container exits")
    assert fmt(eng, "{{.State.ExitCode}}", cid) == "137"
    again = cove(eng, "kill", cid)
    assert again.returncode == 1 and "is not running" in again.stderr
    bad = cove(eng, "kill", "-s", "NOSUCHSIGNAL", cid)
    assert bad.returncode == 1


def test_wait_blocks_until_exit_and_prints_the_code(eng: Path) -> None:
    volume, go = gate(eng)
    cid = run_d(eng, *volume, "bb:1", "sh", "-c", f"{WAIT_FOR_GATE}; exit 5")
    argv = [cove_cli(), "--root", str(eng), "wait", cid]
    waiter = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)  # wait must still be blocked: the container cannot have exited
        assert waiter.poll() is None
        go.touch()
        out, err = waiter.communicate(timeout=20)
    finally:
        waiter.kill()
        waiter.wait()
    assert (waiter.returncode, out) == (0, "5\n"), err
    assert ok(eng, "wait", cid) == "5\n"  # an exited container: at once
    missing = cove(eng, "wait", "nosuchcontainer")
    assert missing.returncode == 1


def test_pause_freezes_and_unpause_thaws(eng: Path) -> None:
    cid = run_d(eng, "bb:1", "sh", "-c", LOOP)
    pid = pid_of(eng, cid)
    freezer = Path(f"/sys/fs/cgroup/freezer/cove/{cid}/freezer.state")
    ok(eng, "pause", cid)
    assert fmt(eng, "{{.State.Status}} {{.State.Paused}} {{.State.Running}}", cid) == (
        "paused true true"
    )
    assert freezer.read_text().strip() == "FROZEN"
    assert process_state(pid) in ("D", "T")
    assert "(Paused)" in ok(eng, "ps")
    assert cove(eng, "pause", cid).returncode == 1  # already paused
    ok(eng, "unpause", cid)
    assert fmt(eng, "{{.State.Status}} {{.State.Paused}}", cid) == "running false"
    assert freezer.read_text().strip() == "THAWED"
    poll(lambda: process_state(pid) in ("R", "S"), "the shell runs again")
    assert cove(eng, "unpause", cid).returncode == 1  # not paused
    # a paused container can be stopped: it is thawed to receive the signal
    ok(eng, "pause", cid)
    ok(eng, "stop", "-t", "1", cid)
    assert fmt(eng, "{{.State.Status}} {{.State.ExitCode}}", cid) == "exited 137"


def test_rename(eng: Path) -> None:
    cid = run_d(eng, "--name", "before", "bb:1", "sh", "-c", LOOP)
    run_d(eng, "--name", "other", "bb:1", "true")
    ok(eng, "rename", "before", "after")
    assert fmt(eng, "{{.Name}} {{.Id}}", "after") == f"/after {cid}"
    assert cove(eng, "inspect", "before").returncode == 1
    conflict = cove(eng, "rename", "after", "other")
    assert conflict.returncode != 0 and "already in use" in conflict.stderr
    assert fmt(eng, "{{.Name}}", cid) == "/after"


def test_rm_of_a_running_container_needs_force(eng: Path) -> None:
    cid = run_d(eng, "bb:1", "sh", "-c", LOOP)
    refused = cove(eng, "rm", cid)
    assert refused.returncode == 1 and "running" in refused.stderr
    assert status(eng, cid) == "running"
    started = time.monotonic()
    assert ok(eng, "rm", "-f", cid).strip() == cid
    assert time.monotonic() - started < 10
    assert all_ids(eng) == [] and cgroups_of(cid) == []
    assert cove(eng, "rm", cid).returncode == 1  # gone


def test_prune_removes_only_stopped_containers(eng: Path) -> None:
    exited = run_d(eng, "bb:1", "true")
    created = ok(eng, "create", "bb:1", "true").strip()
    running = run_d(eng, "bb:1", "sh", "-c", LOOP)
    poll(lambda: status(eng, exited) == "exited", "the first container exits")
    labelled = ok(eng, "create", "--label", "keep=yes", "bb:1", "true").strip()
    out = ok(eng, "container", "prune", "-f", "--filter", "label!=keep")
    assert exited in out and created in out and running not in out and labelled not in out
    assert out.endswith("\nTotal reclaimed space: 0B\n"), out  # (what `true` wrote)
    assert set(all_ids(eng)) == {running, labelled}
    assert ok(eng, "container", "prune", "-f", "--filter", "until=1h") == (
        "Total reclaimed space: 0B\n"
    )  # made less than an hour ago: kept
    assert labelled in ok(eng, "container", "prune", "-f", "--filter", "label=keep=yes")
    assert all_ids(eng) == [running]
    bad = cove(eng, "container", "prune", "-f", "--filter", "colour=red")
    assert bad.returncode != 0 and "invalid filter 'colour'" in bad.stderr


def test_create_then_start_attached(eng: Path) -> None:
    script = "echo out; echo err >&2; exit 4"
    cid = ok(eng, "create", "--name", "job", "bb:1", "sh", "-c", script).strip()
    assert FULL_ID.fullmatch(cid)
    assert status(eng, "job") == "created" and "Created" in ok(eng, "ps", "-a")
    assert ok(eng, "ps", "-q") == ""
    res = cove(eng, "start", "-a", "job")
    assert (res.returncode, res.stdout, res.stderr) == (4, "out\n", "err\n")
    assert fmt(eng, "{{.State.Status}} {{.State.ExitCode}}", cid) == "exited 4"
    assert ok(eng, "ps", "-a", "--format", "{{.Names}}: {{.Status}}").startswith("job: Exited (4)")


def test_rm_flag_with_detach_removes_the_container_after_exit(eng: Path) -> None:
    cid = run_d(eng, "--rm", "bb:1", "sh", "-c", "sleep 0.3")
    poll(lambda: all_ids(eng) == [], "--rm removes the container")
    assert cgroups_of(cid) == [] and monitors_of(eng) == []


def test_ps_flags_and_info(eng: Path) -> None:
    running = run_d(eng, "--name", "r1", "-l", "tier=web", "bb:1", "sh", "-c", LOOP)
    exited = run_d(eng, "--name", "e1", "bb:1", "sh", "-c", "exit 2")
    poll(lambda: status(eng, exited) == "exited", "e1 exits")
    created = ok(eng, "create", "--name", "c1", "bb:1", "true").strip()

    def names(*flags: str) -> list[str]:
        return ok(eng, "ps", *flags, "--format", "{{.Names}}").split()

    assert names() == ["r1"] and names("-a") == ["c1", "e1", "r1"]  # newest first
    assert names("-a", "--filter", "status=exited") == ["e1"]
    assert names("-a", "--filter", "exited=2") == ["e1"]
    assert names("-a", "--filter", "label=tier=web") == ["r1"]
    assert names("-a", "--filter", "name=c1") == ["c1"]
    assert names("-a", "--filter", f"id={exited[:8]}") == ["e1"]
    assert names("-a", "--filter", "ancestor=bb:1") == ["c1", "e1", "r1"]
    assert names("-n", "2") == ["c1", "e1"] and names("-l") == ["c1"]
    assert ok(eng, "ps", "-a", "-q", "--no-trunc").split() == [created, exited, running]
    rows = [json.loads(line) for line in ok(eng, "ps", "-a", "--format", "json").splitlines()]
    assert [(r["Names"], r["State"]) for r in rows] == [
        ("c1", "created"), ("e1", "exited"), ("r1", "running")]  # fmt: skip
    assert rows[2]["Labels"] == "tier=web" and rows[1]["Status"].startswith("Exited (2)")
    assert cove(eng, "ps", "--filter", "nosuchkey=1").returncode != 0
    info = ok(eng, "info")
    for line in ("Containers: 3", "ContainersRunning: 1", "ContainersStopped: 2", "Images: 1"):
        assert f" {line}\n" in info


def test_run_explain_prints_the_steps_then_runs(eng: Path) -> None:
    res = cove(eng, "run", "--rm", "--explain", "bb:1", "sh", "-c", "echo RAN; exit 3")
    assert res.returncode == 3, res.stderr
    steps, _, output = res.stdout.rpartition("\n\n")
    assert output == "RAN\n" and "mount -t overlay" in steps and "/cove/" in steps
    assert all_ids(eng) == []


def test_name_conflict_is_125(eng: Path) -> None:
    cid = run_d(eng, "--name", "taken", "bb:1", "sh", "-c", LOOP)
    for verb in (["run", "-d"], ["create"]):
        res = cove(eng, *verb, "--name", "taken", "bb:1", "true")
        assert res.returncode == 125 and "already in use" in res.stderr
    assert all_ids(eng) == [cid]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--pull", "never", "no-such-image:1"], "no such image"),  # (no pull from docker.io)
        (["--memory", "5x", "bb:1"], "--memory"),
        (["-u", "nosuchuser", "bb:1"], "nosuchuser"),
        (["-v", "/no/such/source:/x", "bb:1"], "/no/such/source"),
        (["--log-opt", "max-file=2", "bb:1"], "max-size"),
        (["--runtime", "nosuchruntime", "bb:1"], "nosuchruntime"),
    ],
)
def test_refused_requests_create_nothing(eng: Path, flags: list[str], words: str) -> None:
    for verb in (["run", "-d"], ["run", "--rm"], ["create"]):
        res = cove(eng, *verb, *flags, "true")
        assert res.returncode == 125, (verb, res.stderr)
        assert res.stdout == "" and res.stderr.count("\n") == 1 and words in res.stderr
        assert "Traceback" not in res.stderr
    assert ok(eng, "ps", "-a", "-q") == ""
    containers = eng / "containers"
    assert not containers.exists() or list(containers.iterdir()) == []
    assert monitors_of(eng) == []


# --- limits -----------------------------------------------------------------------------------

CGROUP_FILES = " ".join(
    f"/sys/fs/cgroup/{name}"
    for name in ("memory/memory.limit_in_bytes", "cpu/cpu.cfs_quota_us", "pids/pids.max")
)
# the container prints its own cgroup's limits at start and on SIGUSR1
SHOW_LIMITS = f"trap 'echo $(cat {CGROUP_FILES})' USR1; echo $(cat {CGROUP_FILES}); {LOOP}"


def test_limits_are_applied_and_updated(eng: Path) -> None:
    cid = run_d(eng, "--memory", "32m", "--cpus", "0.5", "--pids-limit", "50", "bb:1", "sh",
                "-c", SHOW_LIMITS)  # fmt: skip
    poll(lambda: ok(eng, "logs", cid) != "", "the limits are printed")
    assert ok(eng, "logs", cid) == f"{32 << 20} 50000 50\n"
    host = Path(f"/sys/fs/cgroup/memory/cove/{cid}/memory.limit_in_bytes")
    assert host.read_text().strip() == str(32 << 20)
    assert ok(eng, "update", "--memory", "64m", "--pids-limit", "60", cid).strip() == cid
    assert host.read_text().strip() == str(64 << 20)
    ok(eng, "kill", "-s", "USR1", cid)
    poll(lambda: ok(eng, "logs", cid).count("\n") == 2, "the limits are printed again")
    assert ok(eng, "logs", "--tail", "1", cid) == f"{64 << 20} 50000 60\n"
    assert fmt(eng, "{{.HostConfig.Memory}}", cid) == str(64 << 20)
    ok(eng, "restart", "-t", "0", cid)  # the update is kept for later starts
    poll(lambda: ok(eng, "logs", cid).count("\n") == 3, "the limits after the restart")
    assert ok(eng, "logs", "--tail", "1", cid) == f"{64 << 20} 50000 60\n"
    bad = cove(eng, "update", "--memory", "5x", cid)
    assert bad.returncode != 0 and "--memory" in bad.stderr
    assert host.read_text().strip() == str(64 << 20)


def test_oom_kill_is_recorded(eng: Path) -> None:
    # the string doubles until it outgrows 16m: the kernel's OOM killer takes the shell
    cid = run_d(eng, "--memory", "16m", "bb:1", "sh", "-c", "x=0123456789abcdef; "
                "while true; do x=$x$x; done")  # fmt: skip
    assert cove(eng, "wait", cid).stdout == "137\n"
    assert fmt(eng, "{{.State.OOMKilled}} {{.State.ExitCode}}", cid) == "true 137"
    assert "Exited (137)" in ok(eng, "ps", "-a")


# --- the same through runc and crun -----------------------------------------------------------


@pytest.mark.parametrize("runtime", ["cove", "runc", "crun"])
def test_lifecycle_through_each_runtime(eng: Path, runtime: str) -> None:
    if runtime != "cove" and find_binary(runtime) is None:
        pytest.skip(f"{runtime} is not installed")
    cid = run_d(eng, "--runtime", runtime, "bb:1", "sh", "-c",
                f"echo hello; echo oops >&2; trap 'exit 9' TERM; {LOOP}")  # fmt: skip
    poll(lambda: "hello" in ok(eng, "logs", cid), "the output is logged")
    logs = cove(eng, "logs", cid)
    assert (logs.stdout, logs.stderr) == ("hello\n", "oops\n")
    assert fmt(eng, "{{.HostConfig.Runtime}} {{.State.Status}}", cid) == f"{runtime} running"
    assert re.search(r"\bUp\b", ok(eng, "ps"))
    assert ok(eng, "exec", cid, "sh", "-c", "echo $((6*7))") == "42\n"
    ok(eng, "stop", cid)
    assert fmt(eng, "{{.State.Status}} {{.State.ExitCode}}", cid) == "exited 9"
    ok(eng, "start", cid)
    assert status(eng, cid) == "running"
    ok(eng, "rm", "-f", cid)
    assert all_ids(eng) == [] and cgroups_of(cid) == []
    res = cove(eng, "run", "--rm", "--runtime", runtime, "bb:1", "sh", "-c", "echo $0; exit 3")
    assert (res.returncode, res.stdout) == (3, "sh\n"), res.stderr
    assert cove(eng, "run", "--rm", "--runtime", runtime, "bb:1", "/no/such").returncode == 127
