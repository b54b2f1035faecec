"""Parity with Docker, containers: run, ps, inspect, logs, exec, stop/start/restart/rm,
kill, the 404 and 409 refusals, and wait conditions. Each `engine_under_test` test runs
once against `cove serve` and once against Debian's dockerd 20.10 (run privately,
tests/lib/dockerd.py), through the same clients (the docker CLI and docker-py), with one
set of expectations (Docker's): a difference from Docker shows up as a failure of the
cove run.

Containers run with `--network none` (dockerd runs with `--bridge=none`). Nothing here
pulls: an unknown image is asked for with `--pull never` or through the API's create,
which never pulls.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import docker as docker_sdk  # type: ignore[import-untyped]
import pytest

from tests.compat.conftest import EngineUnderTest
from tests.compat.parity_support import HEX64, NONE, TIMESTAMP, api_error, ok, raw

pytestmark = pytest.mark.root


# --- run, ps, inspect ---------------------------------------------------------------------------


def test_run_rm_output_and_exit_codes(engine_under_test: EngineUnderTest) -> None:
    _, docker, _ = engine_under_test
    res = docker("run", "--rm", *NONE, "bb:1", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (res.returncode, res.stdout, res.stderr) == (3, "out\n", "err\n")
    res = docker("run", "--rm", *NONE, "-e", "FOO=bar", "-w", "/tmp", "-u", "65534", "bb:1",
                 "sh", "-c", 'echo "$FOO $(pwd) $(id -u)"')  # fmt: skip
    assert ok(res) == "bar /tmp 65534\n"
    assert ok(docker("run", "--rm", "-i", *NONE, "bb:1", "cat", input="piped\n")) == "piped\n"
    env = ok(docker("run", "--rm", *NONE, "bb:1", "env")).split()
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in env
    assert "HOME=/root" in env and any(line.startswith("HOSTNAME=") for line in env)
    # the command cannot be found / cannot be invoked: 127 / 126, as chroot(8)
    assert docker("run", "--rm", *NONE, "bb:1", "no-such-command").returncode == 127
    assert docker("run", "--rm", *NONE, "bb:1", "/etc").returncode == 126
    assert ok(docker("ps", "-aq")) == ""


def test_run_detached_ps_and_inspect(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    cid = ok(docker("run", "-d", "--name", "parity-top", *NONE, "--memory", "64m",
                    "-l", "tier=front", "-e", "A=1", "bb:1", "sleep", "300")).strip()  # fmt: skip
    assert HEX64.fullmatch(cid)
    line = ok(docker("ps", "--format", "{{.ID}}|{{.Names}}|{{.Image}}|{{.Command}}|{{.Status}}"))
    short, name, image, command, status = line.strip().split("|")
    assert (short, name, image, command) == (cid[:12], "parity-top", "bb:1", '"sleep 300"')
    assert status.startswith("Up ")
    assert ok(docker("ps", "-q", "--filter", "label=tier=front")).split() == [cid[:12]]

    inspected = json.loads(ok(docker("inspect", "parity-top")))[0]
    assert inspected["Id"] == cid and inspected["Name"] == "/parity-top"
    assert inspected["Path"] == "sleep" and inspected["Args"] == ["300"]
    assert TIMESTAMP.fullmatch(inspected["Created"])
    image_id = json.loads(ok(docker("image", "inspect", "bb:1")))[0]["Id"]
    assert inspected["Image"] == image_id
    state = inspected["State"]
    assert state["Status"] == "running" and state["Running"] is True
    assert state["Paused"] is False and state["ExitCode"] == 0
    assert isinstance(state["Pid"], int) and state["Pid"] > 0
    assert TIMESTAMP.fullmatch(state["StartedAt"])
    config = inspected["Config"]
    assert config["Cmd"] == ["sleep", "300"] and config["Image"] == "bb:1"
    assert config["Labels"] == {"tier": "front"} and config["Hostname"] == cid[:12]
    assert config["Tty"] is False and config["OpenStdin"] is False
    # the image's Env (none) and the container's: not the process's (PATH, HOSTNAME...)
    assert config["Env"] == ["A=1"]
    host = inspected["HostConfig"]
    assert host["Memory"] == 64 * 1024 * 1024 and host["NetworkMode"] == "none"
    assert host["AutoRemove"] is False and host["RestartPolicy"]["Name"] == "no"
    assert inspected["RestartCount"] == 0 and inspected["Mounts"] == []
    assert set(inspected["NetworkSettings"]["Networks"]) == {"none"}

    container = client.containers.get("parity-top")
    assert container.id == cid and container.status == "running"
    assert container.attrs["Config"]["Cmd"] == ["sleep", "300"]
    assert [c.name for c in client.containers.list(filters={"name": "parity-top"})] == [
        "parity-top"
    ]


def test_logs(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    ok(docker("run", "--name", "parity-logs", *NONE, "bb:1", "sh", "-c",
              "echo one; echo two >&2; echo three"))  # fmt: skip
    assert json.loads(ok(docker("inspect", "parity-logs")))[0]["Config"]["Env"] is None
    res = docker("logs", "parity-logs")
    assert (res.returncode, res.stdout, res.stderr) == (0, "one\nthree\n", "two\n")
    stamped = ok(docker("logs", "-t", "parity-logs")).splitlines()
    assert [line.split(" ", 1)[1] for line in stamped] == ["one", "three"]
    assert all(TIMESTAMP.fullmatch(line.split(" ", 1)[0]) for line in stamped)
    container = client.containers.get("parity-logs")
    assert container.logs(stdout=True, stderr=False) == b"one\nthree\n"
    assert container.logs(stdout=False, stderr=True) == b"two\n"
    assert sorted(container.logs().splitlines()) == [b"one", b"three", b"two"]


def test_exec(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    ok(docker("run", "-d", "--name", "parity-exec", *NONE, "bb:1", "sleep", "300"))
    res = docker("exec", "parity-exec", "sh", "-c", "echo in; echo err >&2; exit 4")
    assert (res.returncode, res.stdout, res.stderr) == (4, "in\n", "err\n")
    res = docker("exec", "-e", "X=1", "-w", "/tmp", "-u", "65534", "parity-exec", "sh", "-c",
                 'echo "$X $(pwd) $(id -u)"')  # fmt: skip
    assert ok(res) == "1 /tmp 65534\n"
    assert ok(docker("exec", "-i", "parity-exec", "cat", input="fed\n")) == "fed\n"
    container = client.containers.get("parity-exec")
    result = container.exec_run(["sh", "-c", "echo x; echo y >&2; exit 2"], demux=True)
    assert result.exit_code == 2 and result.output == (b"x\n", b"y\n")
    exec_id = client.api.exec_create(container.id, ["true"])["Id"]
    client.api.exec_start(exec_id)
    inspected = client.api.exec_inspect(exec_id)
    assert inspected["ExitCode"] == 0 and inspected["Running"] is False
    assert inspected["ContainerID"] == container.id
    assert inspected["ProcessConfig"]["entrypoint"] == "true"


def test_exec_that_cannot_start_is_126(engine_under_test: EngineUnderTest) -> None:
    """dockerd: an exec whose process cannot start ends with 126 (whatever the cause: no
    such command, no such user), its error written to the stream."""
    _, docker, _ = engine_under_test
    ok(docker("run", "-d", "--name", "parity-exec", *NONE, "bb:1", "sleep", "300"))
    res = docker("exec", "parity-exec", "no-such-command")
    assert res.returncode == 126
    assert "no-such-command" in res.stdout + res.stderr
    res = docker("exec", "-u", "no-such-user", "parity-exec", "true")
    assert res.returncode == 126
    assert "no-such-user" in res.stdout + res.stderr


def test_exec_in_a_stopped_container_is_409(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    cid = ok(docker("create", "--name", "parity-idle", *NONE, "bb:1", "true")).strip()
    res = docker("exec", "parity-idle", "true")
    assert res.returncode == 1
    assert f"Container {cid} is not running" in res.stderr
    status, body = raw(client, "post", "/containers/parity-idle/exec", json={"Cmd": ["true"]})
    assert (status, body) == (409, {"message": f"Container {cid} is not running"})


def test_stop_start_restart_rm(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    cid = ok(docker("run", "-d", "--name", "parity-life", *NONE, "bb:1", "sleep", "300")).strip()
    assert ok(docker("stop", "-t", "1", "parity-life")) == "parity-life\n"
    state = json.loads(ok(docker("inspect", "parity-life")))[0]["State"]
    assert (state["Status"], state["Running"], state["ExitCode"]) == ("exited", False, 137)
    assert TIMESTAMP.fullmatch(state["FinishedAt"])
    # already stopped / already running: 304, which the CLI takes as success
    assert ok(docker("stop", "parity-life")) == "parity-life\n"
    assert raw(client, "post", "/containers/parity-life/stop") == (304, "")
    assert ok(docker("start", "parity-life")) == "parity-life\n"
    assert raw(client, "post", "/containers/parity-life/start") == (304, "")
    assert client.containers.get("parity-life").status == "running"
    ok(docker("restart", "-t", "1", "parity-life"))
    assert json.loads(ok(docker("inspect", "parity-life")))[0]["State"]["Running"] is True

    res = docker("rm", "parity-life")
    assert res.returncode == 1
    message = (f"You cannot remove a running container {cid}. Stop the container before "
               "attempting removal or force remove")  # fmt: skip
    assert message in res.stderr
    assert raw(client, "delete", "/containers/parity-life") == (409, {"message": message})
    assert ok(docker("rm", "-f", "parity-life")) == "parity-life\n"
    res = docker("inspect", "parity-life")
    assert res.returncode == 1 and "No such object: parity-life" in res.stderr


def test_kill_of_a_stopped_container_is_409(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    cid = ok(docker("create", "--name", "parity-dead", *NONE, "bb:1", "true")).strip()
    error = api_error(lambda: client.containers.get("parity-dead").kill())
    assert not isinstance(error, docker_sdk.errors.NotFound)
    assert error.status_code == 409
    # the message names the container as the request did (docker-py: by id)
    assert error.explanation == f"Cannot kill container: {cid}: Container {cid} is not running"
    assert raw(client, "post", "/containers/parity-dead/kill") == (
        409,
        {"message": f"Cannot kill container: parity-dead: Container {cid} is not running"},
    )
    res = docker("kill", "parity-dead")
    assert res.returncode == 1 and f"Container {cid} is not running" in res.stderr


def test_unknown_container_is_404(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    expected = {"message": "No such container: parity-nope"}
    for method, path in (("get", "/containers/parity-nope/json"),
                         ("get", "/containers/parity-nope/logs?stdout=1"),
                         ("post", "/containers/parity-nope/start"),
                         ("post", "/containers/parity-nope/stop"),
                         ("post", "/containers/parity-nope/wait"),
                         ("delete", "/containers/parity-nope")):  # fmt: skip
        assert raw(client, method, path) == (404, expected), (method, path)
    assert raw(client, "post", "/containers/parity-nope/kill") == (
        404,
        {"message": "Cannot kill container: parity-nope: No such container: parity-nope"},
    )
    with pytest.raises(docker_sdk.errors.NotFound) as caught:
        client.containers.get("parity-nope")
    assert caught.value.explanation == "No such container: parity-nope"
    for verb in ("logs", "stop", "start", "rm"):
        res = docker(verb, "parity-nope")
        assert res.returncode == 1, verb
        assert "No such container: parity-nope" in res.stderr, verb


def test_name_conflict_is_409(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    cid = ok(docker("create", "--name", "parity-dup", *NONE, "bb:1", "true")).strip()
    message = (f'Conflict. The container name "/parity-dup" is already in use by container '
               f'"{cid}". You have to remove (or rename) that container to be able to reuse '
               "that name.")  # fmt: skip
    status, body = raw(client, "post", "/containers/create?name=parity-dup",
                       json={"Image": "bb:1", "Cmd": ["true"]})  # fmt: skip
    assert (status, body) == (409, {"message": message})
    res = docker("create", "--name", "parity-dup", *NONE, "bb:1", "true")
    assert res.returncode == 1 and message in res.stderr
    res = docker("run", "--name", "parity-dup", *NONE, "bb:1", "true")
    assert res.returncode == 125 and message in res.stderr


def test_create_refusals(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    status, body = raw(client, "post", "/containers/create",
                       json={"Image": "parity/nosuch:1", "Cmd": ["true"]})  # fmt: skip
    assert (status, body) == (404, {"message": "No such image: parity/nosuch:1"})
    with pytest.raises(docker_sdk.errors.ImageNotFound):
        client.containers.create("parity/nosuch:1", "true")
    res = docker("create", "--pull", "never", "parity/nosuch:1", "true")
    assert res.returncode == 1 and "No such image: parity/nosuch:1" in res.stderr
    res = docker("run", "--pull", "never", "parity/nosuch:1", "true")
    assert res.returncode == 125 and "No such image: parity/nosuch:1" in res.stderr
    # the image has no Cmd: a container without a command is refused
    status, body = raw(client, "post", "/containers/create", json={"Image": "bb:1"})
    assert (status, body) == (400, {"message": "No command specified"})
    status, body = raw(client, "post", "/containers/create?name=x",
                       json={"Image": "bb:1", "Cmd": ["true"]})  # fmt: skip
    assert status == 400
    assert body == {"message": "Invalid container name (x), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                               "are allowed"}  # fmt: skip


# --- wait -----------------------------------------------------------------------------------


def test_wait_conditions(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    created = client.containers.create("bb:1", ["sh", "-c", "sleep 1; exit 5"], name="parity-w",
                                       network_mode="none")  # fmt: skip
    # not-running: a created container is not running, so the wait ends at once
    assert created.wait(condition="not-running", timeout=10) == {"StatusCode": 0, "Error": None}
    created.start()
    assert created.wait(condition="next-exit", timeout=20) == {"StatusCode": 5, "Error": None}
    assert ok(docker("wait", "parity-w")) == "5\n"
    answer: dict[str, Any] = {}
    waiter = threading.Thread(
        target=lambda: answer.update(created.wait(condition="removed", timeout=20))
    )
    waiter.start()
    time.sleep(0.5)
    assert not answer  # still there: the wait goes on
    created.remove()
    waiter.join(25)
    assert answer == {"StatusCode": 5, "Error": None}
