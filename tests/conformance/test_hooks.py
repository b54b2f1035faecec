"""OCI hooks through create/start/kill/delete: which ran, in which order, and what they saw.

Every test runs against cove, runc and crun through the `runtime` fixture.

Each hook is a recording script that appends one tab-separated line to a log in the
test's tmp dir: its label, cwd, namespaces, its parent's command line, the command line
of the state's pid, and the state JSON it read on stdin. Hooks of the runtime namespace
(and createContainer, whose path resolves there) run a host-only script; startContainer
runs a copy that exists only inside the rootfs and logs through a bind mount.

What the reference runtimes do differently (runc 1.1.5 and crun 1.8.1, Debian 12), each
marked as a strict xfail where it is tested:
- runc runs poststart hooks during `create` (state "created"), before the user process
  exists, and a failing one fails `create`; fixed upstream in runc PR #5186.
- runc runs poststop hooks in the cwd of `runc delete`, not the bundle.
- runc stops at the first failing poststop hook; the spec says the rest still run.
- runc waits for end-of-file on the hook's stdout/stderr: a timed-out hook whose child
  still holds them blocks `create` until that child exits.
- crun shows status "created" to prestart/createRuntime/createContainer hooks (runc:
  "creating") and "starting" with bundle "/" to startContainer hooks (runc: "created").
- crun gives pid 0 to createContainer/startContainer hooks (runc: 1, the pid inside).
- crun does not run poststop hooks after a creation hook failed.
- crun prints neither the output of a failing hook nor a warning for poststart/poststop.
- both report success from `start` when a startContainer hook fails (the container
  just ends up stopped); the spec says the operation generates an error.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.lib.bundle import Bundle
from tests.lib.probe import host_namespaces, xfail_on
from tests.lib.runtimes import Result, Runtime, process_state, wait_for

pytestmark = pytest.mark.root

BundleFactory = Callable[..., Bundle]

PHASES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
CREATE_PHASES = ("prestart", "createRuntime", "createContainer")
RUNTIME_NS_PHASES = ("prestart", "createRuntime", "poststart", "poststop")
CONTAINER_NS_PHASES = ("createContainer", "startContainer")
NS_TYPES = ("net", "uts", "ipc", "pid", "mnt")
PATH_ENV = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

EXPECTED_STATUS = {
    "prestart": "creating",
    "createRuntime": "creating",
    "createContainer": "creating",
    "startContainer": "created",
    "poststart": "running",
    "poststop": "stopped",
}

RUNC_POSTSTART = "runc 1.1 runs poststart hooks during create, before the process starts"
CRUN_CREATING = 'crun shows status "created" to creation hooks'
CRUN_STARTING = 'crun shows status "starting" and bundle "/" to startContainer hooks'
CRUN_PID = "crun gives pid 0 to hooks in the container namespaces"

STATUS_DIFFERENCES = {
    ("crun", "prestart"): CRUN_CREATING,
    ("crun", "createRuntime"): CRUN_CREATING,
    ("crun", "createContainer"): CRUN_CREATING,
    ("crun", "startContainer"): CRUN_STARTING,
    ("runc", "poststart"): RUNC_POSTSTART,
}

# Arguments: LABEL LOG [EXIT_STATUS [STDERR_TEXT]]
RECORDER = r"""#!/bin/sh
state=$(cat | tr -d '\n')
pid=$(printf '%s' "$state" | sed -n 's/.*"pid" *: *\([0-9]*\).*/\1/p')
ns=""
for n in net uts ipc pid mnt; do ns="$ns $(readlink /proc/self/ns/$n)"; done
parent=$(tr '\0' ' ' < /proc/$PPID/cmdline)
of_pid=""
if [ -n "$pid" ] && [ "$pid" -gt 0 ]; then
    of_pid=$(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null)
fi
printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(pwd -P)" "$ns" "$parent" "$of_pid" "$state" >> "$2"
if [ -n "$4" ]; then echo "$4" >&2; fi
exit "${3:-0}"
"""


@dataclass
class Entry:
    """One hook run, as the recorder saw it."""

    label: str
    cwd: str
    namespaces: dict[str, str]
    parent_cmdline: str
    pid_cmdline: str
    state: dict[str, Any]


class Recorder:
    """Recording hooks for one bundle, and the log they write."""

    def __init__(self, b: Bundle, tmp_path: Path) -> None:
        self.bundle = b
        self.log_dir = tmp_path / "hooklog"
        self.log_dir.mkdir()
        self.log = self.log_dir / "log"
        self.host_script = tmp_path / "host-hooks" / "record.sh"  # not in the rootfs
        self.host_script.parent.mkdir()
        self.host_script.write_text(RECORDER)
        self.host_script.chmod(0o755)
        inside = b.rootfs / "hookbin" / "record.sh"  # only in the rootfs
        inside.parent.mkdir()
        inside.write_text(RECORDER)
        inside.chmod(0o755)
        b.add_mount("/hooklog", "bind", str(self.log_dir), ["rbind", "rw"])
        b.config["hooks"] = {}
        # filled by lifecycle(): the container's host pid and namespaces after create
        self.container_pid = 0
        self.container_namespaces: dict[str, str] = {}

    def hook(
        self, phase: str, label: str = "", status: int = 0, stderr: str = ""
    ) -> dict[str, Any]:
        """A recording hook for `phase`: startContainer's path and log are the rootfs's."""
        if phase == "startContainer":
            path, log = "/hookbin/record.sh", "/hooklog/log"
        else:
            path, log = str(self.host_script), str(self.log)
        args = ["record.sh", label or phase, log, str(status)]
        if stderr:
            args.append(stderr)
        return {"path": path, "args": args, "env": [PATH_ENV]}

    def add(self, phase: str, *hooks: dict[str, Any]) -> None:
        self.bundle.config["hooks"].setdefault(phase, []).extend(hooks)

    def record(self, *phases: str) -> None:
        """One recording hook, labelled with its phase, for each of `phases`."""
        for phase in phases:
            self.add(phase, self.hook(phase))

    def entries(self) -> list[Entry]:
        if not self.log.exists():
            return []
        found = []
        for line in self.log.read_text().splitlines():
            label, cwd, ns, parent, of_pid, state = line.split("\t", 5)
            namespaces = dict(zip(NS_TYPES, ns.split(), strict=True))
            found.append(
                Entry(label, cwd, namespaces, parent.strip(), of_pid.strip(), _json(state))
            )
        return found

    def labels(self) -> list[str]:
        return [e.label for e in self.entries()]

    def entry(self, label: str) -> Entry:
        matches = [e for e in self.entries() if e.label == label]
        assert len(matches) == 1, f"{label}: expected one run, log:\n{self.log_text()}"
        return matches[0]

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else "(no log)"


def _json(text: str) -> dict[str, Any]:
    data = json.loads(text)
    assert isinstance(data, dict), text
    return data


@pytest.fixture
def hooked(bundle: BundleFactory, tmp_path: Path) -> Callable[[], Recorder]:
    """Factory: a fresh bundle (process: coveprobe sleep 60) with a Recorder."""

    def make() -> Recorder:
        b = bundle()
        b.probe("sleep", "60")
        return Recorder(b, tmp_path)

    return make


def namespaces_of(pid: int) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NS_TYPES}


def create(runtime: Runtime, rec: Recorder) -> None:
    b = rec.bundle
    runtime.create(b, b.id).check()
    rec.container_pid = int(runtime.state_json(b.id)["pid"])
    rec.container_namespaces = namespaces_of(rec.container_pid)


def stop(runtime: Runtime, container_id: str) -> None:
    runtime.kill(container_id, "KILL").check()
    assert runtime.wait_status(container_id, "stopped") == "stopped"


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return " ".join(arg.decode() for arg in raw.split(b"\0")[:-1])


def start(runtime: Runtime, rec: Recorder) -> None:
    """`start`, then wait until the user program runs: `start` may return before the
    container's init has run the startContainer hooks and exec'd."""
    b = rec.bundle
    runtime.start(b.id).check()
    args = " ".join(b.process["args"])
    assert wait_for(lambda: cmdline(rec.container_pid) == args), rec.log_text()


def lifecycle(runtime: Runtime, rec: Recorder) -> None:
    """create, start, kill, delete; notes the container's pid and namespaces in `rec`."""
    create(runtime, rec)
    start(runtime, rec)
    b = rec.bundle
    stop(runtime, b.id)
    runtime.delete(b.id).check()


def failed_and_gone(runtime: Runtime, res: Result, container_id: str) -> None:
    assert res.returncode != 0, res
    assert not runtime.state(container_id).ok
    assert container_id not in runtime.list("--quiet").check().stdout.split()
    assert not (runtime.root / container_id).exists()


# -- which hooks run, and when -----------------------------------------------------------------


def test_all_phases_in_lifecycle_order(
    runtime: Runtime, hooked: Callable[[], Recorder], request: pytest.FixtureRequest
) -> None:
    xfail_on(request, runtime, ["runc"], RUNC_POSTSTART)
    rec = hooked()
    rec.record(*PHASES)
    lifecycle(runtime, rec)
    assert rec.labels() == list(PHASES)


def test_create_runs_the_creation_hooks_only(
    runtime: Runtime, hooked: Callable[[], Recorder]
) -> None:
    rec = hooked()
    rec.record("prestart", "createRuntime", "createContainer", "startContainer", "poststop")
    b = rec.bundle
    create(runtime, rec)
    assert rec.labels() == ["prestart", "createRuntime", "createContainer"]
    start(runtime, rec)
    assert rec.labels() == ["prestart", "createRuntime", "createContainer", "startContainer"]
    stop(runtime, b.id)
    assert rec.labels()[-1] == "startContainer"  # poststop waits for delete
    runtime.delete(b.id).check()
    assert rec.labels()[-1] == "poststop"


def test_poststart_runs_in_start_after_the_process_started(
    runtime: Runtime, hooked: Callable[[], Recorder], request: pytest.FixtureRequest
) -> None:
    xfail_on(request, runtime, ["runc"], RUNC_POSTSTART)
    rec = hooked()
    rec.record("startContainer", "poststart")
    b = rec.bundle
    runtime.create(b, b.id).check()
    assert rec.labels() == []
    runtime.start(b.id).check()
    # poststart hooks finish before start returns, and they come after startContainer
    assert rec.labels() == ["startContainer", "poststart"]
    # the state's pid already runs the user program
    assert rec.entry("poststart").pid_cmdline == " ".join(b.process["args"])


def test_start_container_runs_before_the_user_program(
    runtime: Runtime, hooked: Callable[[], Recorder]
) -> None:
    """The hook's parent (the container's init) has not exec'd the user program yet."""
    rec = hooked()
    rec.record("startContainer")
    b = rec.bundle
    create(runtime, rec)
    start(runtime, rec)
    parent = rec.entry("startContainer").parent_cmdline
    assert parent and parent != " ".join(b.process["args"])


def test_several_hooks_of_a_phase_run_in_order(
    runtime: Runtime, hooked: Callable[[], Recorder]
) -> None:
    rec = hooked()
    for phase in ("createRuntime", "startContainer", "poststop"):
        rec.add(phase, *(rec.hook(phase, f"{phase}-{n}") for n in range(3)))
    lifecycle(runtime, rec)
    assert rec.labels() == [
        f"{p}-{n}" for p in ("createRuntime", "startContainer", "poststop") for n in range(3)
    ]


# -- what each hook sees ---------------------------------------------------------------------


@pytest.mark.parametrize("phase", PHASES)
def test_state_status_id_and_bundle(
    runtime: Runtime,
    hooked: Callable[[], Recorder],
    request: pytest.FixtureRequest,
    phase: str,
) -> None:
    reason = STATUS_DIFFERENCES.get((runtime.name, phase))
    if reason:
        xfail_on(request, runtime, [runtime.name], reason)
    rec = hooked()
    rec.record(phase)
    lifecycle(runtime, rec)
    state = rec.entry(phase).state
    assert state["id"] == rec.bundle.id
    assert state["bundle"] == str(rec.bundle.path)
    assert state["status"] == EXPECTED_STATUS[phase]


@pytest.mark.parametrize(
    "phase", ("prestart", "createRuntime", "createContainer", "startContainer", "poststart")
)
def test_state_pid(
    runtime: Runtime,
    hooked: Callable[[], Recorder],
    request: pytest.FixtureRequest,
    phase: str,
) -> None:
    """The runtime namespace sees the host pid of the container process, the container
    namespace its pid inside (1). (poststop: the process is gone, pid is optional.)"""
    if runtime.name == "crun" and phase in CONTAINER_NS_PHASES:
        xfail_on(request, runtime, ["crun"], CRUN_PID)
    rec = hooked()
    rec.record(phase)
    lifecycle(runtime, rec)
    expected = 1 if phase in CONTAINER_NS_PHASES else rec.container_pid
    assert rec.entry(phase).state.get("pid") == expected


@pytest.mark.parametrize("phase", PHASES)
def test_namespaces(runtime: Runtime, hooked: Callable[[], Recorder], phase: str) -> None:
    """createContainer and startContainer run in the container's namespaces, the others
    in the runtime's. (The mount namespace is compared for the container's only: the
    harness runs crun in a private mount namespace of its own.)"""
    rec = hooked()
    rec.record(phase)
    lifecycle(runtime, rec)
    seen = rec.entry(phase).namespaces
    container = rec.container_namespaces
    if phase in CONTAINER_NS_PHASES:
        assert seen == container
    else:
        host = host_namespaces(("net", "uts", "ipc", "pid"))
        assert {ns: seen[ns] for ns in host} == host
        assert seen["mnt"] != container["mnt"]


@pytest.mark.parametrize("phase", RUNTIME_NS_PHASES)
def test_cwd_is_the_bundle(
    runtime: Runtime,
    hooked: Callable[[], Recorder],
    request: pytest.FixtureRequest,
    phase: str,
) -> None:
    if phase == "poststop":
        xfail_on(request, runtime, ["runc"], "runc runs poststop hooks in the cwd of delete")
    rec = hooked()
    rec.record(phase)
    lifecycle(runtime, rec)
    assert rec.entry(phase).cwd == str(rec.bundle.path.resolve())


def test_args_and_env_exactly_as_given(
    runtime: Runtime, hooked: Callable[[], Recorder], tmp_path: Path
) -> None:
    rec = hooked()
    out = tmp_path / "hooklog"
    body = f"cat /proc/$$/cmdline > {out}/cmdline; cat /proc/$$/environ > {out}/environ"
    args = ["my-argv0", "-c", body, "dollar-zero", "two words", ""]
    env = ["HOOK_A=1", "HOOK_B=two words", "PATH=/bin:/usr/bin"]
    rec.add("createRuntime", {"path": "/bin/sh", "args": args, "env": env})
    b = rec.bundle
    runtime.create(b, b.id).check()
    assert (out / "cmdline").read_bytes().split(b"\0")[:-1] == [a.encode() for a in args]
    assert (out / "environ").read_bytes().split(b"\0")[:-1] == [e.encode() for e in env]


# -- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", CREATE_PHASES)
def test_failing_creation_hook_fails_create_and_leaves_nothing(
    runtime: Runtime, hooked: Callable[[], Recorder], phase: str
) -> None:
    rec = hooked()
    b = rec.bundle
    b.shell("echo ran > /hooklog/ran; exec sleep 60")
    rec.add(phase, rec.hook(phase, "bad", status=3), rec.hook(phase, "after"))
    res = runtime.create(b, b.id)
    failed_and_gone(runtime, res, b.id)
    assert "after" not in rec.labels()  # the next hooks of the phase did not run
    assert not (rec.log_dir / "ran").exists()
    # the id can be used again at once (the harness checks state dirs and cgroups too)
    b.config["hooks"] = {}
    runtime.create(b, b.id).check()
    assert runtime.state_json(b.id)["status"] == "created"


@pytest.mark.parametrize("phase", CREATE_PHASES)
def test_failing_creation_hook_runs_poststop(
    runtime: Runtime,
    hooked: Callable[[], Recorder],
    request: pytest.FixtureRequest,
    phase: str,
) -> None:
    """The spec: "stop the container, and continue the lifecycle at step 12" (destroy,
    then the poststop hooks)."""
    xfail_on(request, runtime, ["crun"], "crun skips poststop hooks when create fails")
    rec = hooked()
    rec.add(phase, rec.hook(phase, "bad", status=3))
    rec.record("poststop")
    b = rec.bundle
    failed_and_gone(runtime, runtime.create(b, b.id), b.id)
    assert rec.labels() == ["bad", "poststop"]


def test_failing_hook_output_in_the_error(
    runtime: Runtime, hooked: Callable[[], Recorder], request: pytest.FixtureRequest
) -> None:
    xfail_on(request, runtime, ["crun"], "crun reports only the hook's exit code")
    rec = hooked()
    rec.add("createRuntime", rec.hook("createRuntime", status=3, stderr="no-bridge-cove0"))
    b = rec.bundle
    res = runtime.create(b, b.id)
    failed_and_gone(runtime, res, b.id)
    assert "no-bridge-cove0" in res.stderr


def test_missing_hook_binary_fails_create(
    runtime: Runtime, hooked: Callable[[], Recorder], tmp_path: Path
) -> None:
    rec = hooked()
    rec.add("createRuntime", {"path": str(tmp_path / "no-such-hook")})
    b = rec.bundle
    failed_and_gone(runtime, runtime.create(b, b.id), b.id)
    b.config["hooks"] = {}
    runtime.create(b, b.id).check()


def test_timed_out_hook_fails_create(runtime: Runtime, hooked: Callable[[], Recorder]) -> None:
    rec = hooked()
    rec.add(
        "createRuntime",
        {"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 30"], "env": [PATH_ENV], "timeout": 1},
    )
    b = rec.bundle
    started = time.monotonic()
    res = runtime.create(b, b.id)
    elapsed = time.monotonic() - started
    failed_and_gone(runtime, res, b.id)
    assert elapsed < 15, f"create took {elapsed:.1f}s with a 1s hook timeout"


def test_timed_out_hook_with_a_child_holding_its_output(
    runtime: Runtime, hooked: Callable[[], Recorder], request: pytest.FixtureRequest
) -> None:
    xfail_on(request, runtime, ["runc"], "runc waits for the hook's output pipes to close")
    rec = hooked()
    script = "sleep 8 & wait"
    rec.add(
        "createRuntime",
        {"path": "/bin/sh", "args": ["sh", "-c", script], "env": [PATH_ENV], "timeout": 1},
    )
    b = rec.bundle
    started = time.monotonic()
    res = runtime.create(b, b.id)
    elapsed = time.monotonic() - started
    failed_and_gone(runtime, res, b.id)
    assert elapsed < 6, f"create took {elapsed:.1f}s with a 1s hook timeout"


def test_failing_start_container_hook_stops_the_container(
    runtime: Runtime, hooked: Callable[[], Recorder]
) -> None:
    rec = hooked()
    b = rec.bundle
    b.shell("echo ran > /hooklog/ran; exec sleep 60")
    rec.add("startContainer", rec.hook("startContainer", "bad", status=3))
    rec.add("startContainer", rec.hook("startContainer", "after"))
    runtime.create(b, b.id).check()
    pid = int(runtime.state_json(b.id)["pid"])
    runtime.start(b.id)
    # stopped (runc, crun) or already destroyed (the spec's "continue at step 12")
    assert wait_for(lambda: runtime.status(b.id) in ("stopped", None)), runtime.status(b.id)
    assert process_state(pid) in (None, "Z", "X")
    assert not (rec.log_dir / "ran").exists()
    assert rec.labels() == ["bad"]
    if runtime.state(b.id).ok:
        runtime.delete(b.id).check()


def test_failing_start_container_hook_fails_start(
    runtime: Runtime, hooked: Callable[[], Recorder], request: pytest.FixtureRequest
) -> None:
    xfail_on(request, runtime, ["runc", "crun"], "start reports success, init fails after it")
    rec = hooked()
    rec.add("startContainer", rec.hook("startContainer", "bad", status=3))
    b = rec.bundle
    runtime.create(b, b.id).check()
    res = runtime.start(b.id)
    assert res.returncode != 0, res


def test_failing_poststart_hook_is_a_warning(
    runtime: Runtime, hooked: Callable[[], Recorder], request: pytest.FixtureRequest
) -> None:
    xfail_on(request, runtime, ["runc"], RUNC_POSTSTART + "; a failure fails create")
    rec = hooked()
    rec.add("poststart", rec.hook("poststart", "bad", status=3), rec.hook("poststart", "after"))
    b = rec.bundle
    runtime.create(b, b.id).check()
    runtime.start(b.id).check()
    assert rec.labels() == ["bad", "after"]
    assert runtime.status(b.id) == "running"


def test_failing_poststop_hook_is_a_warning(
    runtime: Runtime, hooked: Callable[[], Recorder], request: pytest.FixtureRequest
) -> None:
    xfail_on(request, runtime, ["runc"], "runc skips the poststop hooks after a failing one")
    rec = hooked()
    rec.add("poststop", rec.hook("poststop", "bad", status=3), rec.hook("poststop", "after"))
    b = rec.bundle
    runtime.create(b, b.id).check()
    runtime.start(b.id).check()
    stop(runtime, b.id)
    runtime.delete(b.id).check()
    assert rec.labels() == ["bad", "after"]
    assert not runtime.state(b.id).ok


@pytest.mark.parametrize("phase", ("poststart", "poststop"))
def test_failing_post_hook_warning_shows_its_output(
    runtime: Runtime,
    hooked: Callable[[], Recorder],
    request: pytest.FixtureRequest,
    phase: str,
) -> None:
    xfail_on(request, runtime, ["crun"], "crun prints no warning for failing post hooks")
    if phase == "poststart":
        xfail_on(request, runtime, ["runc"], RUNC_POSTSTART + "; a failure fails create")
    rec = hooked()
    rec.add(phase, rec.hook(phase, "bad", status=3, stderr=f"{phase}-went-wrong"))
    b = rec.bundle
    runtime.create(b, b.id).check()
    res = runtime.start(b.id).check()
    if phase == "poststop":
        stop(runtime, b.id)
        res = runtime.delete(b.id).check()
    assert f"{phase}-went-wrong" in res.stderr
