"""cove.runtime.hooks: running OCI hooks with small shell scripts (no root needed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cove.errors import CoveError, HookFailed
from cove.oci.runtime_spec import Hook
from cove.oci.state import State
from cove.runtime.hooks import OUTPUT_LIMIT, PHASES, WARNING_PHASES, run_hooks

MANDATORY = [phase for phase in PHASES if phase not in WARNING_PHASES]
WARNING_ONLY = sorted(WARNING_PHASES)
PATH_ENV = "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
SH = "/bin/sh"

MakeScript = Callable[..., Hook]


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State(
        id="ct-hooks",
        status="creating",
        pid=4321,
        bundle=str(tmp_path),
        rootfs=str(tmp_path / "rootfs"),
        created="2024-05-01T12:00:00Z",
        annotations={"org.example.key": "value"},
    )


@pytest.fixture
def script(tmp_path: Path) -> MakeScript:
    """Factory: write an executable `#!/bin/sh` script in tmp_path, return its Hook."""
    count = [0]

    def make(body: str, timeout: int | None = None, env: tuple[str, ...] = (PATH_ENV,)) -> Hook:
        count[0] += 1
        path = tmp_path / f"hook{count[0]}.sh"
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
        return Hook(path=str(path), env=env, timeout=timeout)

    return make


@pytest.fixture
def reaper() -> Iterator[list[int]]:
    """Pids of background processes a test's hooks leave behind; killed at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except FileNotFoundError:
        return False
    return data[data.rindex(b")") + 2 :].split()[0] not in (b"Z", b"X")


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_pid(path: Path) -> int:
    assert wait_until(lambda: path.exists() and path.read_text().strip() != "")
    return int(path.read_text())


# --- running in order, with the state, args, env and cwd -----------------------------------


def test_no_hooks_is_a_no_op(state: State, tmp_path: Path) -> None:
    assert run_hooks("createRuntime", (), state, str(tmp_path)) == []


def test_unknown_phase_is_a_programming_error(state: State, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown hook phase 'prestop'"):
        run_hooks("prestop", (), state, str(tmp_path))


@pytest.mark.parametrize("phase", PHASES)
def test_hooks_run_in_order(phase: str, state: State, tmp_path: Path, script: MakeScript) -> None:
    log = tmp_path / "log"
    hooks = tuple(script(f"echo {n} >> {log}") for n in ("one", "two", "three"))
    assert run_hooks(phase, hooks, state, str(tmp_path)) == []
    assert log.read_text().split() == ["one", "two", "three"]


def test_stdin_carries_the_state_json(state: State, tmp_path: Path, script: MakeScript) -> None:
    out = tmp_path / "stdin"
    run_hooks("createRuntime", (script(f"cat > {out}"),), state, str(tmp_path))
    assert json.loads(out.read_text()) == state.to_json()


def test_stdin_is_closed_after_the_state(state: State, tmp_path: Path, script: MakeScript) -> None:
    """A second read gets end-of-file: the hook is not left waiting on its stdin."""
    out = tmp_path / "rest"
    hook = script(f"cat > /dev/null; cat > {out}", timeout=10)
    run_hooks("createRuntime", (hook,), state, str(tmp_path))
    assert out.read_text() == ""


def test_args_are_argv_exactly(state: State, tmp_path: Path) -> None:
    """args[0] is argv[0] (not the path), and every argument arrives untouched."""
    out = tmp_path / "cmdline"
    body = f"cat /proc/$$/cmdline > {out}"
    args = ("my-hook-name", "-c", body, "dollar-zero", "two words", "", "*", "$HOME")
    run_hooks("createRuntime", (Hook(path=SH, args=args),), state, str(tmp_path))
    assert out.read_bytes().split(b"\0")[:-1] == [a.encode() for a in args]


def test_empty_args_means_argv_is_the_path(
    state: State, tmp_path: Path, script: MakeScript
) -> None:
    """With no args, argv = [path]: the kernel runs `/bin/sh PATH` and nothing more."""
    out = tmp_path / "cmdline"
    hook = script(f"cat /proc/$$/cmdline > {out}")
    run_hooks("createRuntime", (hook,), state, str(tmp_path))
    assert out.read_bytes().split(b"\0")[:-1] == [SH.encode(), hook.path.encode()]


def test_env_is_exactly_the_given_one(
    state: State, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COVE_TEST_LEAK", "must not be inherited")
    out = tmp_path / "environ"
    env = ("A=1", "B=two words", "EMPTY=", "EQ=x=y")
    hook = Hook(path=SH, args=("sh", "-c", f"cat /proc/$$/environ > {out}"), env=env)
    run_hooks("createRuntime", (hook,), state, str(tmp_path))
    assert out.read_bytes().split(b"\0")[:-1] == [e.encode() for e in env]


def test_no_env_means_an_empty_environment(
    state: State, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COVE_TEST_LEAK", "must not be inherited")
    out = tmp_path / "environ"
    hook = Hook(path=SH, args=("sh", "-c", f"cat /proc/$$/environ > {out}"))
    run_hooks("createRuntime", (hook,), state, str(tmp_path))
    assert out.read_bytes() == b""


def test_runs_in_the_given_cwd(state: State, tmp_path: Path, script: MakeScript) -> None:
    where = tmp_path / "bundle dir"
    where.mkdir()
    out = tmp_path / "cwd"
    run_hooks("poststop", (script(f"pwd -P > '{out}'"),), state, str(where))
    assert out.read_text().strip() == str(where.resolve())
    assert Path.cwd() != where  # the runtime itself did not move


def test_hook_gets_clean_process_attributes(
    state: State, tmp_path: Path, script: MakeScript
) -> None:
    """Own process group, SIGPIPE and SIGXFSZ not ignored, nothing blocked, no stray fds.

    Each hook `exec`s the reader, so what is read is the hook process as we started it."""
    leaked = os.dup2(os.open(os.devnull, os.O_RDONLY), 200, inheritable=True)
    stat, status, fd_list = tmp_path / "stat", tmp_path / "status", tmp_path / "fds"
    hooks = (
        script(f"exec cat /proc/self/stat > {stat}"),
        script(f"exec cat /proc/self/status > {status}"),
        script(f"exec ls /proc/self/fd > {fd_list}"),
    )
    try:
        run_hooks("createRuntime", hooks, state, str(tmp_path))
    finally:
        os.close(leaked)
    raw = stat.read_text()
    pid, pgrp = int(raw.split()[0]), int(raw[raw.rindex(")") + 2 :].split()[2])
    assert pgrp == pid
    fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines())
    ignored, blocked = int(fields["SigIgn"], 16), int(fields["SigBlk"], 16)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (signum - 1)), f"signal {signum} ignored in the hook"
    assert blocked == 0
    # 0-2, and 3 for the directory ls reads
    assert set(fd_list.read_text().split()) <= {"0", "1", "2", "3"}


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("phase", MANDATORY)
def test_nonzero_exit_fails_a_mandatory_phase(
    phase: str, state: State, tmp_path: Path, script: MakeScript
) -> None:
    log = tmp_path / "log"
    hooks = (
        script(f"echo first >> {log}"),
        script(f"echo second >> {log}; exit 3"),
        script(f"echo third >> {log}"),
    )
    with pytest.raises(HookFailed) as caught:
        run_hooks(phase, hooks, state, str(tmp_path))
    err = caught.value
    assert isinstance(err, CoveError)
    assert (err.phase, err.index, err.path) == (phase, 1, hooks[1].path)
    assert err.reason == "exit status 3"
    assert str(err) == f"{phase} hook #1 ({hooks[1].path}): exit status 3"
    assert log.read_text().split() == ["first", "second"]  # the rest did not run


@pytest.mark.parametrize("phase", WARNING_ONLY)
def test_nonzero_exit_is_a_warning_after_start(
    phase: str, state: State, tmp_path: Path, script: MakeScript
) -> None:
    log = tmp_path / "log"
    hooks = (
        script(f"echo first >> {log}; exit 4"),
        script(f"echo second >> {log}"),
        script(f"echo third >> {log}; echo broken >&2; exit 5"),
    )
    warnings = run_hooks(phase, hooks, state, str(tmp_path))
    assert warnings == [
        f"{phase} hook #0 ({hooks[0].path}): exit status 4",
        f"{phase} hook #2 ({hooks[2].path}): exit status 5; output: broken",
    ]
    assert log.read_text().split() == ["first", "second", "third"]  # all of them ran


def test_output_is_in_the_message(state: State, tmp_path: Path, script: MakeScript) -> None:
    hook = script("echo 'on stdout'; echo 'Disk FULL on /dev/sda' >&2; exit 2")
    with pytest.raises(HookFailed) as caught:
        run_hooks("createContainer", (hook,), state, str(tmp_path))
    assert caught.value.reason == "exit status 2; output: on stdout | Disk FULL on /dev/sda"
    assert "\n" not in str(caught.value)


def test_output_is_cut_at_one_kib(state: State, tmp_path: Path, script: MakeScript) -> None:
    hook = script("i=0; while [ $i -lt 400 ]; do printf 'abcdefghij' >&2; i=$((i+1)); done; exit 1")
    with pytest.raises(HookFailed) as caught:
        run_hooks("createRuntime", (hook,), state, str(tmp_path))
    reason = caught.value.reason
    assert reason.startswith("exit status 1; output: abcdefghij")
    assert reason.endswith(" [...]")
    kept = reason[len("exit status 1; output: ") : -len(" [...]")]
    assert len(kept) == OUTPUT_LIMIT


def test_killed_by_a_signal(state: State, tmp_path: Path, script: MakeScript) -> None:
    with pytest.raises(HookFailed, match=r"killed by signal 15 \(SIGTERM\)$"):
        run_hooks("startContainer", (script("kill -TERM $$"),), state, str(tmp_path))


def test_missing_path(state: State, tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-hook")
    with pytest.raises(HookFailed) as caught:
        run_hooks("createRuntime", (Hook(path=missing),), state, str(tmp_path))
    assert caught.value.path == missing
    assert caught.value.reason == "cannot execute: no such file or directory"


def test_missing_path_is_a_warning_in_poststop(
    state: State, tmp_path: Path, script: MakeScript
) -> None:
    log = tmp_path / "log"
    hooks = (Hook(path=str(tmp_path / "gone")), script(f"echo ran >> {log}"))
    warnings = run_hooks("poststop", hooks, state, str(tmp_path))
    assert warnings == [
        f"poststop hook #0 ({tmp_path / 'gone'}): cannot execute: no such file or directory"
    ]
    assert log.read_text() == "ran\n"


def test_not_executable(state: State, tmp_path: Path) -> None:
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/sh\nexit 0\n")
    plain.chmod(0o644)  # without any x bit execve fails even for root
    with pytest.raises(HookFailed, match="cannot execute: permission denied"):
        run_hooks("createRuntime", (Hook(path=str(plain)),), state, str(tmp_path))


def test_missing_cwd(state: State, tmp_path: Path, script: MakeScript) -> None:
    gone = tmp_path / "gone"
    with pytest.raises(HookFailed) as caught:
        run_hooks("createRuntime", (script("exit 0"),), state, str(gone))
    assert caught.value.reason == f"cannot change directory to {gone}: no such file or directory"


def test_nul_in_an_argument(state: State, tmp_path: Path) -> None:
    hook = Hook(path=SH, args=("sh", "-c", "exit 0", "bad\0arg"))
    with pytest.raises(HookFailed, match=r"cannot execute: .*null"):
        run_hooks("createRuntime", (hook,), state, str(tmp_path))


# --- timeouts and stray processes ----------------------------------------------------------


def test_timeout_kills_and_reports(
    state: State, tmp_path: Path, script: MakeScript, reaper: list[int]
) -> None:
    """At the deadline the hook and what it started (its process group) get SIGKILL."""
    pidfile = tmp_path / "child.pid"
    hook = script(f"sleep 60 & echo $! > {pidfile}; wait", timeout=1)
    started = time.monotonic()
    with pytest.raises(HookFailed) as caught:
        run_hooks("createRuntime", (hook,), state, str(tmp_path))
    elapsed = time.monotonic() - started
    reaper.append(read_pid(pidfile))
    assert caught.value.reason == "timed out after 1 s (killed)"
    assert 0.9 <= elapsed < 5, elapsed
    assert wait_until(lambda: not alive(reaper[0])), "the hook's child survived the timeout"


def test_timeout_is_a_warning_in_poststop(state: State, tmp_path: Path, script: MakeScript) -> None:
    log = tmp_path / "log"
    hooks = (script("sleep 60", timeout=1), script(f"echo ran >> {log}"))
    warnings = run_hooks("poststop", hooks, state, str(tmp_path))
    assert warnings == [f"poststop hook #0 ({hooks[0].path}): timed out after 1 s (killed)"]
    assert log.read_text() == "ran\n"


def test_fast_hook_within_its_timeout(state: State, tmp_path: Path, script: MakeScript) -> None:
    assert run_hooks("poststart", (script("exit 0", timeout=5),), state, str(tmp_path)) == []


def test_hook_leaving_a_daemon_does_not_block(
    state: State, tmp_path: Path, script: MakeScript, reaper: list[int]
) -> None:
    """The daemon keeps the output pipe open; the hook is done when its own process exits."""
    pidfile = tmp_path / "daemon.pid"
    hook = script(f"sleep 60 & echo $! > {pidfile}; echo started; exit 0")
    started = time.monotonic()
    assert run_hooks("createRuntime", (hook,), state, str(tmp_path)) == []
    reaper.append(read_pid(pidfile))
    assert time.monotonic() - started < 5
    assert alive(reaper[0]), "a hook that succeeded must not have its children killed"


# --- stdin -------------------------------------------------------------------------------


@pytest.fixture
def big_state(state: State) -> State:
    """A state JSON bigger than a pipe's buffer (64 KiB), so writing it can block."""
    state.annotations = {f"org.example.k{i}": "v" * 1000 for i in range(300)}
    return state


def test_hook_closing_stdin_early(big_state: State, tmp_path: Path, script: MakeScript) -> None:
    """EPIPE while writing the state is the hook's business, not a runtime crash."""
    log = tmp_path / "log"
    hook = script(f"exec 0<&-; sleep 0.2; echo done >> {log}")
    assert run_hooks("createRuntime", (hook,), big_state, str(tmp_path)) == []
    assert log.read_text() == "done\n"


def test_hook_reading_part_of_stdin(big_state: State, tmp_path: Path, script: MakeScript) -> None:
    hook = script("head -c 10 > /dev/null; exit 0")
    assert run_hooks("createRuntime", (hook,), big_state, str(tmp_path)) == []


def test_hook_ignoring_stdin_and_exiting(big_state: State, tmp_path: Path) -> None:
    assert run_hooks("createRuntime", (Hook(path="/bin/true"),), big_state, "/") == []


def test_big_state_arrives_whole(big_state: State, tmp_path: Path, script: MakeScript) -> None:
    out = tmp_path / "stdin"
    run_hooks("createRuntime", (script(f"cat > {out}"),), big_state, str(tmp_path))
    assert json.loads(out.read_text()) == big_state.to_json()


# --- the calling process -------------------------------------------------------------------

CHILD_PROGRAM = """
import os, signal, sys
from cove.oci.runtime_spec import Hook
from cove.oci.state import State
from cove.runtime.hooks import run_hooks
from cove.errors import HookFailed

mode, tmp = sys.argv[1], sys.argv[2]
state = State("ct", "created", 1, tmp, tmp + "/rootfs", "now",
              annotations={f"k{i}": "v" * 1000 for i in range(300)})
if mode == "sigpipe-default":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    hook = Hook("/bin/sh", ("sh", "-c", "exec 0<&-; sleep 0.2"))
elif mode == "stdio-closed":
    for fd in (0, 1, 2):
        os.close(fd)
    hook = Hook("/bin/sh", ("sh", "-c", "cat > " + tmp + "/stdin; echo err >&2; exit 7"))
try:
    result = repr(run_hooks("createRuntime", (hook,), state, tmp))
except HookFailed as exc:
    result = "HookFailed: " + exc.reason
with open(tmp + "/result", "w") as out:
    out.write(result)
"""


def _run_child(mode: str, tmp_path: Path) -> str:
    src = str(Path(__file__).resolve().parents[3] / "src")
    env = dict(os.environ, PYTHONPATH=src)
    res = subprocess.run(
        [sys.executable, "-c", CHILD_PROGRAM, mode, str(tmp_path)],
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert res.returncode == 0, res
    return (tmp_path / "result").read_text()


def test_caller_with_default_sigpipe_survives_epipe(tmp_path: Path) -> None:
    assert _run_child("sigpipe-default", tmp_path) == "[]"


def test_caller_with_closed_stdio(tmp_path: Path) -> None:
    """The pipes may land on fds 0-2; the hook must still get them in the right places."""
    assert _run_child("stdio-closed", tmp_path) == "HookFailed: exit status 7; output: err"
    assert json.loads((tmp_path / "stdin").read_text())["id"] == "ct"


def test_caller_ignoring_sigchld_still_gets_the_status(
    state: State, tmp_path: Path, script: MakeScript
) -> None:
    previous = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        with pytest.raises(HookFailed, match=r"exit status 9$"):
            run_hooks("createRuntime", (script("exit 9"),), state, str(tmp_path))
        assert signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN  # restored
    finally:
        signal.signal(signal.SIGCHLD, previous)


def test_sigpipe_ignored_while_hooks_run() -> None:
    """Writing to a hook that closed its stdin gives EPIPE, never a SIGPIPE death.

    (The runner only writes after poll() says the pipe is open, so the window is too
    small to hit from a test: check the disposition itself.)"""
    from cove.runtime.hooks import _prepare_signals, _restore_signals

    previous = signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        saved = _prepare_signals()
        assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
        _restore_signals(saved)
        assert signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGPIPE, previous)


def test_sigpipe_disposition_restored(state: State, tmp_path: Path, script: MakeScript) -> None:
    def handler(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGPIPE, handler)
    try:
        run_hooks("poststop", (script("exit 0"),), state, str(tmp_path))
        assert signal.getsignal(signal.SIGPIPE) is handler
    finally:
        signal.signal(signal.SIGPIPE, previous)


def _children() -> list[tuple[int, str]]:
    """(pid, state) of this process's children, from /proc."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                data = stat.read()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if int(fields[1]) == os.getpid():
            found.append((int(name), fields[0].decode()))
    return found


def test_every_hook_is_reaped(state: State, tmp_path: Path, script: MakeScript) -> None:
    before = _children()
    hooks = (
        script("exit 0"),
        script("exit 1"),
        script("kill -9 $$"),
        script("sleep 60", timeout=1),
        Hook(path=str(tmp_path / "missing")),
    )
    assert len(run_hooks("poststop", hooks, state, str(tmp_path))) == 4
    assert _children() == before


def test_system_error_fails_the_hook_and_cleans_up(
    state: State, tmp_path: Path, script: MakeScript, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError of the runner itself (here: no pidfd) is the hook's failure; the hook
    process is killed and reaped and no descriptor is left open."""
    import errno

    def no_pidfd(pid: int, flags: int = 0) -> int:
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    fds_before = sorted(os.listdir("/proc/self/fd"))
    children_before = _children()
    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    with pytest.raises(HookFailed) as caught:
        run_hooks("createRuntime", (script("sleep 60"),), state, str(tmp_path))
    assert caught.value.reason == "cannot run: too many open files"
    assert _children() == children_before
    assert sorted(os.listdir("/proc/self/fd")) == fds_before


def test_module_does_not_import_subprocess() -> None:
    code = (
        "import sys; import cove.runtime.hooks; "
        "sys.exit('subprocess' in sys.modules or 'signal' in sys.modules)"
    )
    src = str(Path(__file__).resolve().parents[3] / "src")
    res = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=src), timeout=60
    )
    assert res.returncode == 0, "cove.runtime.hooks imports subprocess or signal"
