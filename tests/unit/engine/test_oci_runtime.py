"""cove.engine.oci_runtime without a real runtime: a fake runc-compatible script records its
argv and plays the runtime's answers (JSON on stdout, errors in the --log file)."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cove.engine.oci_runtime import (
    RuntimeState,
    RuntimeTraits,
    SubprocessRuntime,
    error_from_log,
    hybrid_workaround_prefix,
    is_cgroup_hybrid,
    runtime_for,
    traits_for,
)
from cove.errors import RuntimeFailed, RuntimeNoSuchContainer, RuntimeNotFound, RuntimeTimedOut

# The fake runtime: appends its argv (as JSON) to $FAKE_CALLS, then acts on $FAKE_MODE.
FAKE = """\
#!{python}
import json, os, sys, time
argv = sys.argv[1:]
with open(os.environ["FAKE_CALLS"], "a") as f:
    f.write(json.dumps(argv) + "\\n")
log = argv[argv.index("--log") + 1] if "--log" in argv else None
root = argv[argv.index("--root") + 1]
verb = next(a for a in argv if a in (
    "create", "start", "state", "kill", "delete", "pause", "resume", "update", "exec", "ps",
    "events"))
cid = argv[-1]
mode = os.environ.get("FAKE_MODE", "ok")
if verb == "exec":
    cid = argv[-1]
    proc = json.load(open(argv[argv.index("--process") + 1]))
    with open(os.environ["FAKE_CALLS"], "a") as f:
        f.write(json.dumps({{"process": proc}}) + "\\n")
if verb == "update":
    res = json.load(open(argv[argv.index("--resources") + 1]))
    with open(os.environ["FAKE_CALLS"], "a") as f:
        f.write(json.dumps({{"resources": res}}) + "\\n")
if mode == "sleep":
    time.sleep(60)
if mode == "fail":
    if "--log-format" in argv:
        line = json.dumps({{"level": "error", "msg": "something broke: " + verb,
                            "time": "t"}})
        warn = json.dumps({{"level": "warning", "msg": "just a warning", "time": "t"}})
        open(log, "a").write(warn + "\\n" + line + "\\n")
    else:
        open(log, "a").write('time="t" level=error msg="text broke: \\\\"' + verb + '\\\\""\\n')
    sys.stderr.write("stderr noise\\n")
    sys.exit(1)
if mode == "stderr-only":
    sys.stderr.write("first\\nonly on stderr\\n")
    sys.exit(2)
if mode == "exit3":
    sys.exit(3)
if verb == "create":
    os.makedirs(os.path.join(root, cid), exist_ok=True)
    open(argv[argv.index("--pid-file") + 1], "w").write("4242")
if verb == "state":
    print(json.dumps({{"ociVersion": "1.0.2", "id": cid, "status": "running", "pid": 4242,
                      "bundle": "/b", "created": "c", "annotations": {{"k": "v"}}}}))
if verb == "ps":
    print("[3, 1, 2]")
if verb == "events":
    print(json.dumps({{"type": "stats", "id": cid, "data": {{"pids": {{"current": 1}}}}}}))
"""

HELP_JSON = "usage: fake\\n  --log-format FORMAT\\ncommands:\\n  events   stats\\n"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    script = tmp_path / "fakert"
    script.write_text(FAKE.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls.jsonl"
    calls.touch()
    monkeypatch.setenv("FAKE_CALLS", str(calls))
    return script, calls


def calls_of(calls: Path) -> list[Any]:
    return [json.loads(line) for line in calls.read_text().splitlines()]


def make(fake: tuple[Path, Path], tmp_path: Path, **kw: Any) -> SubprocessRuntime:
    traits = kw.pop("traits", RuntimeTraits())
    return SubprocessRuntime("fake", fake[0], engine_root=tmp_path / "engine", traits=traits, **kw)


def test_argv_of_every_verb(fake: tuple[Path, Path], tmp_path: Path) -> None:
    rt = make(fake, tmp_path)
    root = str(tmp_path / "engine" / "runtime" / "fake")
    rt.create("c1", tmp_path / "bundle", pid_file=tmp_path / "pid", console_socket="/s")
    rt.start("c1")
    state = rt.state("c1")
    rt.kill("c1", 9)
    rt.kill("c1", "SIGTERM", all=True)
    rt.delete("c1")
    rt.delete("c1", force=True)
    rt.pause("c1")
    rt.resume("c1")
    rt.update("c1", {"memory": {"limit": 1048576}})
    assert rt.exec("c1", {"args": ["true"]}, detach=True, pid_file=tmp_path / "xpid") == 0
    assert rt.ps("c1") == [1, 2, 3]
    assert rt.events_stats("c1") == {"pids": {"current": 1}}

    assert state == RuntimeState("c1", "running", 4242, "/b", "c", {"k": "v"})
    seen = calls_of(fake[1])
    argvs = [c for c in seen if isinstance(c, list)]
    docs = [c for c in seen if isinstance(c, dict)]
    for argv in argvs:
        assert argv[:2] == ["--root", root]
        assert argv[2] == "--log" and argv[3].startswith(str(tmp_path / "engine" / "runtime"))
        assert argv[4:6] == ["--log-format", "json"]
        assert "--systemd-cgroup" not in argv
    tails = [argv[6:] for argv in argvs]
    assert tails[0] == [
        "create", "--bundle", str(tmp_path / "bundle"), "--pid-file", str(tmp_path / "pid"),
        "--console-socket", "/s", "c1",
    ]  # fmt: skip
    assert tails[1:9] == [
        ["start", "c1"],
        ["state", "c1"],
        ["kill", "c1", "9"],
        ["kill", "--all", "c1", "SIGTERM"],
        ["delete", "c1"],
        ["delete", "--force", "c1"],
        ["pause", "c1"],
        ["resume", "c1"],
    ]
    assert tails[9][:2] == ["update", "--resources"] and tails[9][-1] == "c1"
    assert tails[10][:2] == ["exec", "--process"]
    assert tails[10][3:] == ["--detach", "--pid-file", str(tmp_path / "xpid"), "c1"]
    assert tails[11] == ["ps", "--format", "json", "c1"]
    assert tails[12] == ["events", "--stats", "c1"]
    assert docs == [{"resources": {"memory": {"limit": 1048576}}}, {"process": {"args": ["true"]}}]
    # per-call log files and data files are gone
    assert list((tmp_path / "engine" / "runtime" / ".logs").iterdir()) == []


def test_text_log_format_and_argv_prefix(fake: tuple[Path, Path], tmp_path: Path) -> None:
    rt = make(fake, tmp_path, traits=RuntimeTraits(log_format="text"))
    rt.start("c1")
    (argv,) = calls_of(fake[1])
    assert "--log-format" not in argv
    wrapped = SubprocessRuntime(
        "fake", fake[0], ("/usr/bin/env",), engine_root=tmp_path / "e2", traits=RuntimeTraits()
    )
    cmd = wrapped.command("start", "c1", log_file="/l")
    assert cmd[:2] == ["/usr/bin/env", str(fake[0])]
    wrapped.start("c1")  # the prefix runs the binary
    assert len(calls_of(fake[1])) == 2


def test_error_from_json_log(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make(fake, tmp_path)
    rt.create("c1", tmp_path / "bundle", pid_file=tmp_path / "pid")
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(RuntimeFailed) as info:
        rt.start("c1")
    assert type(info.value) is RuntimeFailed
    assert (info.value.runtime, info.value.verb, info.value.container_id) == ("fake", "start", "c1")
    assert info.value.message == "something broke: start"
    assert str(info.value) == "fake start c1: something broke: start"


def test_error_from_text_log(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make(fake, tmp_path, traits=RuntimeTraits(log_format="text"))
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(RuntimeFailed) as info:
        rt.pause("c9")
    assert info.value.message == 'text broke: "pause"'


def test_no_such_container_and_create_failure(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make(fake, tmp_path)
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(RuntimeNoSuchContainer):
        rt.state("ghost")
    with pytest.raises(RuntimeFailed) as info:
        rt.create("ghost", tmp_path, pid_file=tmp_path / "pid")
    assert type(info.value) is RuntimeFailed
    assert info.value.message == "something broke: create"


def test_error_falls_back_to_stderr_then_status(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make(fake, tmp_path)
    monkeypatch.setenv("FAKE_MODE", "stderr-only")
    with pytest.raises(RuntimeFailed) as info:
        rt.start("c1")
    assert info.value.message == "only on stderr"
    monkeypatch.setenv("FAKE_MODE", "exit3")
    with pytest.raises(RuntimeFailed) as info:
        rt.start("c1")
    assert info.value.message == "exit status 3"


def test_attached_exec_returns_the_process_status(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make(fake, tmp_path)
    monkeypatch.setenv("FAKE_MODE", "exit3")
    assert rt.exec("c1", {"args": ["false"]}, detach=False) == 3
    with pytest.raises(RuntimeFailed):
        rt.exec("c1", {"args": ["false"]}, detach=True)
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(RuntimeFailed) as info:
        rt.exec("c1", {"args": ["false"]}, detach=False)
    assert info.value.message == "something broke: exec"


def test_timeout_kills_and_reaps(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = make(fake, tmp_path, timeout=0.5)
    monkeypatch.setenv("FAKE_MODE", "sleep")
    fds_before = sorted(os.listdir("/proc/self/fd"))
    # (the session's own children, such as a `cove serve` of tests/compat, are not ours)
    children_path = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    children_before = set(children_path.read_text().split())
    started = time.monotonic()
    with pytest.raises(RuntimeTimedOut) as info:
        rt.start("c1")
    assert time.monotonic() - started < 10
    assert "timed out after 0.5s" in str(info.value)
    with pytest.raises(RuntimeTimedOut):
        rt.state("c1", timeout=0.2)
    assert sorted(os.listdir("/proc/self/fd")) == fds_before
    # no child left, not even a zombie
    assert set(children_path.read_text().split()) - children_before == set()


def test_no_fd_leak_over_many_calls(fake: tuple[Path, Path], tmp_path: Path) -> None:
    rt = make(fake, tmp_path)
    rt.state("c1")
    before = sorted(os.listdir("/proc/self/fd"))
    for _ in range(10):
        rt.state("c1")
        rt.update("c1", {})
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_error_from_log_parsing() -> None:
    assert error_from_log("") == ""
    assert error_from_log('{"level":"debug","msg":"x"}\n{"level":"info","msg":"y"}') == ""
    assert error_from_log('{"level":"error","msg":"a"}\n{"level":"fatal","msg":"b"}\n') == "b"
    assert error_from_log(
        'time="t" level=warning msg="w"\ntime="t" level=error msg="e \\"q\\""'
    ) == ('e "q"')
    assert error_from_log("plain crun text error\n") == "plain crun text error"


def test_traits(tmp_path: Path) -> None:
    assert traits_for("/usr/bin/crun").refuses_hybrid_cgroups
    assert not traits_for("/usr/bin/crun").has_events
    assert traits_for("/usr/sbin/runc") == RuntimeTraits()
    probe = tmp_path / "otherrt"
    probe.write_text(f"#!/bin/sh\nprintf '{HELP_JSON}'\n")
    probe.chmod(0o755)
    assert traits_for(str(probe)) == RuntimeTraits(log_format="json", has_events=True)
    plain = tmp_path / "plainrt"
    plain.write_text("#!/bin/sh\necho 'usage: plain [--log FILE] start|state'\n")
    plain.chmod(0o755)
    assert traits_for(str(plain)) == RuntimeTraits(log_format="text", has_events=False)


def test_hybrid_detection(tmp_path: Path) -> None:
    hybrid = tmp_path / "hybrid"
    hybrid.write_text(
        "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
    )
    v2 = tmp_path / "v2"
    v2.write_text("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")
    v1 = tmp_path / "v1"
    v1.write_text("cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n")
    assert is_cgroup_hybrid(hybrid)
    assert not is_cgroup_hybrid(v2)
    assert not is_cgroup_hybrid(v1)
    prefix = hybrid_workaround_prefix()
    assert prefix[1:5] == ("--mount", "--propagation", "private", "/bin/sh")
    assert prefix[-1] == 'umount /sys/fs/cgroup/unified && exec "$0" "$@"'


def test_runtime_for(tmp_path: Path, fake: tuple[Path, Path]) -> None:
    with pytest.raises(RuntimeNotFound):
        runtime_for("/no/such/runtime", tmp_path)
    with pytest.raises(RuntimeNotFound):
        runtime_for("no-such-runtime-anywhere", tmp_path)
    rt = runtime_for(str(fake[0]), tmp_path)
    assert rt.name == "fakert"
    assert rt.root == tmp_path / "runtime" / "fakert"
    assert rt.argv_prefix == ()
    if os.path.exists("/usr/bin/crun"):
        crun = runtime_for("crun", tmp_path)
        assert bool(crun.argv_prefix) == is_cgroup_hybrid()


class _Ended(Exception):
    pass


def _end(signum: int, _frame: object) -> None:
    raise _Ended(signum)


def test_a_signal_during_the_runtime_start_is_handled_once_it_is_ours_to_kill(
    fake: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A healthcheck's SIGTERM that lands inside Popen must not orphan the runtime: it is
    handled after Popen returns, so the runtime is killed and its scratch files go."""
    import signal
    import subprocess

    rt = make(fake, tmp_path)
    monkeypatch.setenv("FAKE_MODE", "sleep")
    real_popen = subprocess.Popen
    started: list[subprocess.Popen[bytes]] = []

    def popen_hit_by_sigterm(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        os.kill(os.getpid(), signal.SIGTERM)  # as the monitor ends a check
        return proc

    monkeypatch.setattr(subprocess, "Popen", popen_hit_by_sigterm)
    previous = signal.signal(signal.SIGTERM, _end)
    try:
        with pytest.raises(_Ended):
            rt.exec("c1", {"args": ["true"]}, detach=False)
    finally:
        signal.signal(signal.SIGTERM, previous)
        orphans = [proc for proc in started if proc.poll() is None]
        for proc in orphans:
            proc.kill()
            proc.wait()
    assert started and not orphans
    assert started[0].returncode == -signal.SIGKILL  # killed and reaped by the runtime call
    assert os.listdir(rt.log_dir) == []  # the log and the process file went with it


def test_signals_held_outside_the_main_thread_hold_nothing() -> None:
    import threading

    from cove.engine.oci_runtime_subprocess import SignalsHeld

    entered: list[int] = []

    def body() -> None:
        with SignalsHeld() as held:
            entered.append(len(held._handlers))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert entered == [0]
