"""Container lifecycle: run, create/start/kill/delete, state, list, ps, pid files.

Every test runs against cove, runc and crun through the `runtime` fixture.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lib.bundle import Bundle
from tests.lib.probe import wait_for_file
from tests.lib.runtimes import Runtime, process_state, wait_for

pytestmark = pytest.mark.root

BundleFactory = Callable[..., Bundle]


def _alive(pid: int) -> bool:
    return process_state(pid) not in (None, "Z", "X")


def test_run_prints_output(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.shell("echo hello from the container; echo to stderr >&2")
    res = runtime.run(b, b.id)
    res.check()
    assert res.stdout == "hello from the container\n"
    assert "to stderr" in res.stderr


@pytest.mark.parametrize("status", [0, 1, 42, 255])
def test_run_exit_status(runtime: Runtime, bundle: BundleFactory, status: int) -> None:
    b = bundle()
    b.probe("exit", str(status))
    res = runtime.run(b, b.id)
    assert res.returncode == status, res


def test_run_removes_container_afterwards(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("exit", "0")
    runtime.run(b, b.id).check()
    assert not runtime.state(b.id).ok
    assert b.id not in runtime.list("--quiet").check().stdout.split()


def test_run_killed_by_signal(runtime: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    """A foreground `run` whose process dies of SIGKILL exits with 128+9."""
    b = bundle()
    b.probe("sleep", "60")
    with (tmp_path / "out").open("w+b") as out:
        proc = runtime.run_background(b, b.id, stdout=out, stderr=out)
        try:
            assert runtime.wait_status(b.id, "running") == "running"
            runtime.kill(b.id, "KILL").check()
            rc = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 128 + signal.SIGKILL


@pytest.mark.parametrize(
    ("sig", "expected"),
    [(None, "SIGTERM"), ("USR1", "SIGUSR1"), ("SIGUSR2", "SIGUSR2"), ("1", "SIGHUP")],
    ids=["default", "short-name", "full-name", "number"],
)
def test_kill_delivers_signal(
    runtime: Runtime,
    bundle: BundleFactory,
    tmp_path: Path,
    sig: str | None,
    expected: str,
) -> None:
    """`kill ID [SIGNAL]` reaches the container's init (default SIGTERM)."""
    b = bundle()
    b.probe("signals", "/tmp/ready")
    with (tmp_path / "out").open("w+b") as out:
        proc = runtime.run_background(b, b.id, stdout=out, stderr=out)
        try:
            assert wait_for_file(b.host_path("/tmp/ready")), "probe never got ready"
            runtime.kill(b.id, sig).check()
            rc = proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        out.seek(0)
        output = out.read().decode()
    assert rc == 0, output
    assert output.strip() == expected


def test_create_start_kill_delete(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("signals", "/tmp/ready")
    ready = b.host_path("/tmp/ready")

    runtime.create(b, b.id).check()
    state = runtime.state_json(b.id)
    assert state["id"] == b.id
    assert state["status"] == "created"
    assert isinstance(state["ociVersion"], str) and state["ociVersion"]
    assert os.path.realpath(state["bundle"]) == os.path.realpath(b.path)
    pid = state["pid"]
    assert isinstance(pid, int) and pid > 0
    assert _alive(pid)
    # the user process must not run before `start`
    assert not wait_for(ready.exists, timeout=0.3)

    runtime.start(b.id).check()
    assert wait_for_file(ready), "process did not start"
    state = runtime.state_json(b.id)
    assert state["status"] == "running"
    assert state["pid"] == pid

    runtime.kill(b.id, "TERM").check()
    assert runtime.wait_status(b.id, "stopped") == "stopped"
    assert wait_for(lambda: not _alive(pid), timeout=5)

    runtime.delete(b.id).check()
    assert not runtime.state(b.id).ok
    assert b.id not in runtime.list("--quiet").check().stdout.split()
    assert not (runtime.root / b.id).exists()


def test_kill_running_container_with_sigkill(runtime: Runtime, bundle: BundleFactory) -> None:
    """SIGKILL stops an init that ignores nothing; then a plain delete works."""
    b = bundle()
    b.probe("sleep", "60")
    runtime.create(b, b.id).check()
    runtime.start(b.id).check()
    assert runtime.status(b.id) == "running"
    runtime.kill(b.id, "KILL").check()
    assert runtime.wait_status(b.id, "stopped") == "stopped"
    runtime.delete(b.id).check()
    assert runtime.status(b.id) is None


def test_delete_created_container(runtime: Runtime, bundle: BundleFactory) -> None:
    """A container that was created but never started can be deleted (its init goes away)."""
    b = bundle()
    b.probe("exit", "0")
    runtime.create(b, b.id).check()
    pid = runtime.state_json(b.id)["pid"]
    runtime.delete(b.id, force=True).check()
    assert runtime.status(b.id) is None
    assert wait_for(lambda: not _alive(pid), timeout=5)


def test_run_detach_pid_file(runtime: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    b = bundle()
    b.probe("sleep", "60")
    pid_file = tmp_path / "run.pid"
    runtime.run(b, b.id, "--detach", "--pid-file", str(pid_file)).check()
    state = runtime.state_json(b.id)
    assert state["status"] == "running"
    assert pid_file.read_text().strip() == str(state["pid"])
    assert _alive(state["pid"])
    runtime.kill(b.id, "KILL").check()
    assert runtime.wait_status(b.id, "stopped") == "stopped"
    runtime.delete(b.id).check()


def test_create_pid_file(runtime: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    b = bundle()
    b.probe("sleep", "60")
    pid_file = tmp_path / "create.pid"
    runtime.create(b, b.id, "--pid-file", str(pid_file)).check()
    state = runtime.state_json(b.id)
    assert state["status"] == "created"
    assert pid_file.read_text().strip() == str(state["pid"])


def test_pid_file_relative(runtime: Runtime, bundle: BundleFactory) -> None:
    """A relative --pid-file, run from inside the bundle directory.

    runc resolves it against its working directory, crun against the bundle
    directory; running from the bundle makes both land on the same file.
    """
    b = bundle()
    b.probe("sleep", "60")
    runtime.create(b, b.id, "--pid-file", "rel.pid", cwd=b.path).check()
    pid = runtime.state_json(b.id)["pid"]
    assert (b.path / "rel.pid").read_text().strip() == str(pid)


def test_list(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("sleep", "60")
    runtime.create(b, b.id).check()
    pid = runtime.state_json(b.id)["pid"]

    table = runtime.list().check()
    assert b.id in table.stdout
    assert runtime.list("--quiet").check().stdout.split() == [b.id]

    entries = runtime.list_json()
    assert [e["id"] for e in entries] == [b.id]
    assert entries[0]["status"] == "created"
    assert entries[0]["pid"] == pid


def test_list_empty(runtime: Runtime) -> None:
    assert runtime.list("--quiet").check().stdout.strip() == ""
    assert runtime.list_json() == []


def test_ps_json_includes_init(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("sleep", "60")
    runtime.run(b, b.id, "--detach").check()
    pid = runtime.state_json(b.id)["pid"]
    pids = runtime.ps(b.id, "--format", "json").check().json()
    assert isinstance(pids, list)
    assert pid in pids


def test_state_of_stopped_container_keeps_metadata(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("exit", "3")
    runtime.create(b, b.id).check()
    runtime.start(b.id).check()
    assert runtime.wait_status(b.id, "stopped") == "stopped"
    state = runtime.state_json(b.id)
    assert state["id"] == b.id
    assert os.path.realpath(state["bundle"]) == os.path.realpath(b.path)
    runtime.delete(b.id).check()
    assert runtime.status(b.id) is None


def test_spec_writes_runnable_config(runtime: Runtime, bundle: BundleFactory) -> None:
    """`spec` (run inside the bundle dir) produces a config that `run` accepts."""
    b = bundle()
    b.config_path.unlink()
    runtime.spec(cwd=b.path).check()
    config = json.loads(b.config_path.read_text())
    assert isinstance(config["ociVersion"], str)
    assert config["root"]["path"] == "rootfs"
    assert config["process"]["args"]
    assert {"pid", "mount", "network", "ipc", "uts"} <= {
        ns["type"] for ns in config["linux"]["namespaces"]
    }
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/coveprobe", "exit", "9"]
    b.config = config
    assert runtime.run(b, b.id).returncode == 9


def test_spec_refuses_to_overwrite(runtime: Runtime, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("keep me\n")
    assert runtime.spec(cwd=tmp_path).returncode != 0
    assert (tmp_path / "config.json").read_text() == "keep me\n"


def test_spec_bundle_option(runtime: Runtime, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    runtime.spec("--bundle", str(target), cwd=tmp_path).check()
    assert json.loads((target / "config.json").read_text())["root"]["path"] == "rootfs"
    assert not (tmp_path / "config.json").exists()
