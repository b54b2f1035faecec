"""`exec` into a running container.

Every test runs against cove, runc and crun through the `runtime` fixture.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.lib.bundle import Bundle
from tests.lib.probe import host_namespaces, key_values, last_json, wait_for_file
from tests.lib.runtimes import Runtime

pytestmark = pytest.mark.root

BundleFactory = Callable[..., Bundle]


@pytest.fixture
def running(runtime: Runtime, bundle: BundleFactory) -> Iterator[Bundle]:
    """A running container (id = bundle.id) whose init sleeps; hostname "exec-box"."""
    b = bundle()
    b.config["hostname"] = "exec-box"
    b.process["env"] = ["PATH=/bin", "FROM_CONFIG=yes"]
    b.probe("sleep", "120")
    runtime.run(b, b.id, "--detach").check()
    yield b


def test_exec_output_and_status(runtime: Runtime, running: Bundle) -> None:
    res = runtime.exec(running.id, "/bin/sh", "-c", "echo out; echo err >&2; exit 7")
    assert res.returncode == 7, res
    assert res.stdout == "out\n"
    assert "err" in res.stderr


def test_exec_zero_status(runtime: Runtime, running: Bundle) -> None:
    assert runtime.exec(running.id, "/bin/coveprobe", "exit", "0").returncode == 0


def test_exec_shares_pid_namespace(runtime: Runtime, running: Bundle) -> None:
    res = runtime.exec(running.id, "/bin/sh", "-c", "coveprobe pid; cat /proc/1/cmdline")
    res.check()
    ids = last_json(res.stdout.splitlines()[0])
    assert ids["pid"] != 1
    cmdline = res.stdout.splitlines()[1].split("\0")
    assert cmdline[:3] == ["/bin/coveprobe", "sleep", "120"]


def test_exec_joins_namespaces(runtime: Runtime, running: Bundle) -> None:
    init_pid = runtime.state_json(running.id)["pid"]
    names = ("ipc", "mnt", "net", "pid", "uts")
    res = runtime.exec(
        running.id,
        "/bin/sh",
        "-c",
        "; ".join(f"echo {ns}=$(readlink /proc/self/ns/{ns})" for ns in names),
    )
    inside = key_values(res.check().stdout)
    host = host_namespaces(names)
    init = {ns: os.readlink(f"/proc/{init_pid}/ns/{ns}") for ns in names}
    for ns in names:
        assert inside[ns] == init[ns], ns
        assert inside[ns] != host[ns], ns


def test_exec_sees_hostname(runtime: Runtime, running: Bundle) -> None:
    assert runtime.exec(running.id, "/bin/hostname").check().stdout == "exec-box\n"


def test_exec_env_option(runtime: Runtime, running: Bundle) -> None:
    res = runtime.exec(
        running.id, "/bin/env", options=("--env", "EXTRA=one two", "--env", "OTHER=2")
    )
    env = res.check().stdout.splitlines()
    assert "EXTRA=one two" in env
    assert "OTHER=2" in env
    # whether the config's environment is kept next to --env differs:
    # runc appends --env to it, crun replaces it


def test_exec_inherits_config_env(runtime: Runtime, running: Bundle) -> None:
    env = runtime.exec(running.id, "/bin/env").check().stdout.splitlines()
    assert "FROM_CONFIG=yes" in env
    assert "PATH=/bin" in env


def test_exec_cwd_option(runtime: Runtime, running: Bundle) -> None:
    res = runtime.exec(running.id, "/bin/coveprobe", "cwd", options=("--cwd", "/etc"))
    assert last_json(res.check().stdout) == {"cwd": "/etc"}


def test_exec_default_cwd_from_config(runtime: Runtime, running: Bundle) -> None:
    res = runtime.exec(running.id, "/bin/coveprobe", "cwd")
    assert last_json(res.check().stdout) == {"cwd": "/"}


def test_exec_user_option(runtime: Runtime, running: Bundle) -> None:
    res = runtime.exec(running.id, "/bin/coveprobe", "ids", options=("--user", "1000:1000"))
    ids = last_json(res.check().stdout)
    assert (ids["uid"], ids["gid"], ids["euid"], ids["egid"]) == (1000, 1000, 1000, 1000)


def test_exec_process_json(runtime: Runtime, running: Bundle, tmp_path: Path) -> None:
    """`exec --process FILE` takes a whole OCI process object."""
    process = {
        "terminal": False,
        "user": {"uid": 1000, "gid": 1000},
        "args": ["/bin/sh", "-c", "echo $WHO; coveprobe cwd"],
        "env": ["PATH=/bin", "WHO=process-file"],
        "cwd": "/tmp",
    }
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    res = runtime.exec(running.id, options=("--process", str(path)))
    lines = res.check().stdout.splitlines()
    assert lines[0] == "process-file"
    assert json.loads(lines[1]) == {"cwd": "/tmp"}


def test_exec_nonexistent_binary_fails(runtime: Runtime, running: Bundle) -> None:
    res = runtime.exec(running.id, "/bin/does-not-exist")
    assert res.returncode != 0
    # the container itself is unaffected
    assert runtime.status(running.id) == "running"


def test_exec_detached(runtime: Runtime, running: Bundle) -> None:
    res = runtime.exec(
        running.id, "/bin/sh", "-c", "echo detached > /tmp/detached", options=("--detach",)
    )
    res.check()
    assert wait_for_file(running.host_path("/tmp/detached"))


def test_exec_into_stopped_container_fails(runtime: Runtime, running: Bundle) -> None:
    runtime.kill(running.id, "KILL").check()
    assert runtime.wait_status(running.id, "stopped") == "stopped"
    res = runtime.exec(running.id, "/bin/true")
    assert res.returncode != 0


def test_exec_unknown_container_fails(runtime: Runtime) -> None:
    res = runtime.exec(runtime.new_id(), "/bin/true")
    assert res.returncode != 0
