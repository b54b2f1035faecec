"""The same flows against `cove serve` and against Debian's dockerd 20.10 (run privately,
tests/lib/dockerd.py), through the same clients (the docker CLI and docker-py), asserting
the same observable results: output, exit codes, HTTP statuses and messages, JSON field
presence and types. Each `engine_under_test` test runs once per engine, with one set of
expectations (Docker's): a difference from Docker shows up as a failure of the cove run.

The cross-engine tests at the end put cove's and dockerd's documents side by side (both
clients pinned to API 1.41, dockerd's version, so that version-dependent fields match) and
compare their shapes field by field.

Containers run with `--network none` (dockerd runs with `--bridge=none`); user networks
are created in both (dockerd's live in its private network namespace). Nothing here pulls:
an unknown image is asked for with `--pull never` or through the API's create, which never
pulls.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker as docker_sdk  # type: ignore[import-untyped]
import pytest

from tests.compat.conftest import ApiServer, EngineUnderTest
from tests.lib.dockerd import PrivateDockerd

pytestmark = pytest.mark.root

NONE = ("--network", "none")
HEX64 = re.compile(r"[0-9a-f]{64}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def ok(res: Any) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return str(res.stdout)


def raw(client: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """One request through docker-py's HTTP session (same transport, no model layer):
    (status, JSON body or text)."""
    url = f"{client.api.base_url}/v{client.api.api_version}{path}"
    response = getattr(client.api, method)(url, **kwargs)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def api_error(call: Any) -> Any:
    with pytest.raises(docker_sdk.errors.APIError) as caught:
        call()
    return caught.value


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


# --- images ---------------------------------------------------------------------------------


def test_images_list_and_inspect(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    listed = {image.id: image for image in client.images.list()}
    image = client.images.get("bb:1")
    assert image.id in listed and {"bb:1", "busybox:latest"} <= set(image.tags)
    status, rows = raw(client, "get", "/images/json")
    assert status == 200
    row = next(r for r in rows if r["Id"] == image.id)
    for key, kind in (("Id", str), ("ParentId", str), ("RepoTags", list), ("Created", int),
                      ("Size", int), ("SharedSize", int), ("Containers", int)):  # fmt: skip
        assert isinstance(row[key], kind), key
    assert isinstance(row["RepoDigests"], list | None) and isinstance(row["Labels"], dict | None)

    inspected = json.loads(ok(docker("image", "inspect", "bb:1")))[0]
    assert inspected["Id"] == image.id and image.id.startswith("sha256:")
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "amd64")
    assert inspected["RootFS"]["Type"] == "layers" and len(inspected["RootFS"]["Layers"]) == 1
    assert inspected["Config"]["Cmd"] is None and inspected["Config"]["Entrypoint"] is None
    assert TIMESTAMP.fullmatch(inspected["Created"])
    assert isinstance(inspected["Size"], int) and inspected["Size"] > 1_000_000
    assert isinstance(inspected["RepoDigests"], list) and isinstance(inspected["Parent"], str)
    short = image.id.split(":")[1][:12]
    table = ok(docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"))
    assert {f"bb:1 {short}", f"busybox:latest {short}"} <= set(table.splitlines())
    history = client.api.history("bb:1")
    assert history and {"Id", "Created", "CreatedBy", "Tags", "Size", "Comment"} <= set(history[0])


def test_tag_and_rmi(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    assert ok(docker("tag", "bb:1", "parity/tagged:2")) == ""
    image_id = client.images.get("bb:1").id
    assert client.images.get("parity/tagged:2").id == image_id
    names = ok(docker("images", "--format", "{{.Repository}}:{{.Tag}}", "parity/tagged"))
    assert names.split() == ["parity/tagged:2"]
    assert ok(docker("rmi", "parity/tagged:2")) == "Untagged: parity/tagged:2\n"
    res = docker("rmi", "parity/tagged:2")
    assert res.returncode == 1 and "No such image: parity/tagged:2" in res.stderr
    status, body = raw(client, "get", "/images/parity/nosuch/json")
    assert status == 404 and body["message"].endswith("No such image: parity/nosuch:latest")
    # an id that more than one name points at is not deleted without force
    res = docker("rmi", image_id.split(":")[1][:12])
    assert res.returncode == 1
    assert "must be forced" in res.stderr and "referenced in multiple repositories" in res.stderr


def test_save_load_round_trip(engine_under_test: EngineUnderTest, tmp_path: Path) -> None:
    _, docker, client = engine_under_test
    ok(docker("tag", "bb:1", "parity/saved:1"))
    archive = tmp_path / "saved.tar"
    ok(docker("save", "-o", str(archive), "parity/saved:1"))
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "manifest.json" in names
    assert ok(docker("rmi", "parity/saved:1")) == "Untagged: parity/saved:1\n"
    assert ok(docker("load", "-i", str(archive))) == "Loaded image: parity/saved:1\n"
    assert client.images.get("parity/saved:1").id == client.images.get("bb:1").id
    ok(docker("rmi", "parity/saved:1"))
    loaded = client.images.load(archive.read_bytes())
    assert len(loaded) == 1 and "parity/saved:1" in loaded[0].tags
    assert docker("save", "-o", str(tmp_path / "none.tar"), "parity/nosuch:1").returncode == 1


# --- volumes and networks -------------------------------------------------------------------


def test_volume_create_inspect_rm(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    assert ok(docker("volume", "create", "--label", "k=v", "parity-vol")) == "parity-vol\n"
    inspected = json.loads(ok(docker("volume", "inspect", "parity-vol")))[0]
    assert (inspected["Name"], inspected["Driver"], inspected["Scope"]) == (
        "parity-vol", "local", "local")  # fmt: skip
    assert inspected["Labels"] == {"k": "v"} and isinstance(inspected["Mountpoint"], str)
    assert TIMESTAMP.fullmatch(inspected["CreatedAt"])
    assert "parity-vol" in ok(docker("volume", "ls", "-q")).split()
    assert client.volumes.get("parity-vol").attrs["Name"] == "parity-vol"
    cid = ok(docker("create", "-v", "parity-vol:/data", *NONE, "bb:1", "true")).strip()
    res = docker("volume", "rm", "parity-vol")
    assert res.returncode == 1 and "volume is in use" in res.stderr and cid in res.stderr
    ok(docker("rm", cid))
    assert ok(docker("volume", "rm", "parity-vol")) == "parity-vol\n"
    with pytest.raises(docker_sdk.errors.NotFound) as caught:
        client.volumes.get("parity-vol")
    assert caught.value.explanation == "get parity-vol: no such volume"
    res = docker("volume", "rm", "parity-vol")
    assert res.returncode == 1 and "no such volume" in res.stderr


def test_network_create_inspect_rm(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    network_id = ok(docker("network", "create", "--label", "k=v", "parity-net")).strip()
    assert HEX64.fullmatch(network_id)
    inspected = json.loads(ok(docker("network", "inspect", "parity-net")))[0]
    assert (inspected["Name"], inspected["Id"], inspected["Driver"], inspected["Scope"]) == (
        "parity-net", network_id, "bridge", "local")  # fmt: skip
    assert inspected["IPAM"]["Driver"] == "default"
    subnet = inspected["IPAM"]["Config"][0]["Subnet"]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+/\d+", subnet)
    assert inspected["Internal"] is False and inspected["EnableIPv6"] is False
    assert inspected["Containers"] == {} and inspected["Labels"] == {"k": "v"}
    res = docker("network", "create", "parity-net")
    assert res.returncode == 1 and "network with name parity-net already exists" in res.stderr
    assert client.networks.get("parity-net").id == network_id
    assert ok(docker("network", "rm", "parity-net")) == "parity-net\n"
    with pytest.raises(docker_sdk.errors.NotFound) as caught:
        client.networks.get("parity-net")
    assert caught.value.explanation == "network parity-net not found"


def test_containers_on_a_user_network(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    ok(docker("network", "create", "parity-net"))
    cid = ok(docker("run", "-d", "--name", "parity-on", "--network", "parity-net",
                    "--network-alias", "web", "bb:1", "sleep", "300")).strip()  # fmt: skip
    endpoint = json.loads(ok(docker("inspect", "parity-on")))[0]["NetworkSettings"]["Networks"]
    assert list(endpoint) == ["parity-net"]
    settings = endpoint["parity-net"]
    assert sorted(settings["Aliases"]) == sorted(["web", cid[:12]])
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", settings["IPAddress"])
    assert settings["IPPrefixLen"] == 16 and settings["NetworkID"] == client.networks.get(
        "parity-net").id  # fmt: skip
    members = client.networks.get("parity-net").attrs["Containers"]
    assert list(members) == [cid] and members[cid]["Name"] == "parity-on"
    res = docker("network", "rm", "parity-net")
    assert res.returncode == 1 and "has active endpoints" in res.stderr
    ok(docker("network", "disconnect", "parity-net", "parity-on"))
    assert client.networks.get("parity-net").attrs["Containers"] == {}
    # a container with --network none joins no other network
    ok(docker("create", "--name", "parity-alone", *NONE, "bb:1", "true"))
    res = docker("network", "connect", "parity-net", "parity-alone")
    assert res.returncode == 1
    assert ("container cannot be connected to multiple networks with one of the networks in "
            "private (none) mode") in res.stderr  # fmt: skip
    assert ok(docker("network", "rm", "parity-net")) == "parity-net\n"


# --- events, system -------------------------------------------------------------------------


def test_events_of_a_container_lifecycle(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    since = int(time.time()) - 1
    container = client.containers.create("bb:1", ["sh", "-c", "exit 3"], name="parity-ev",
                                         network_mode="none", labels={"parity": "ev"})  # fmt: skip
    container.start()
    assert container.wait(timeout=20)["StatusCode"] == 3
    container.remove()
    time.sleep(0.5)
    until = int(time.time()) + 1
    events = list(client.events(since=since, until=until, decode=True,
                                filters={"container": "parity-ev"}))  # fmt: skip
    assert [e["Action"] for e in events] == ["create", "start", "die", "destroy"]
    for event in events:
        assert event["Type"] == "container" and event["Actor"]["ID"] == container.id
        assert event["id"] == container.id and event["status"] == event["Action"]
        assert event["from"] == "bb:1" and event["scope"] == "local"
        assert isinstance(event["time"], int) and isinstance(event["timeNano"], int)
        attributes = event["Actor"]["Attributes"]
        assert attributes["name"] == "parity-ev" and attributes["image"] == "bb:1"
        assert attributes["parity"] == "ev"
    assert events[2]["Actor"]["Attributes"]["exitCode"] == "3"
    printed = ok(docker("events", "--since", str(since), "--until", str(until),
                        "--filter", "label=parity=ev", "--format", "{{.Action}}"))  # fmt: skip
    assert printed.split() == ["create", "start", "die", "destroy"]


def test_system_df_version_info(engine_under_test: EngineUnderTest) -> None:
    _, docker, client = engine_under_test
    df = client.df()
    assert {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"} <= set(df)
    assert isinstance(df["LayersSize"], int) and isinstance(df["Images"], list)
    kinds = ok(docker("system", "df", "--format", "{{.Type}}")).splitlines()
    assert kinds == ["Images", "Containers", "Local Volumes", "Build Cache"]

    version = client.version()
    for key in ("Version", "ApiVersion", "MinAPIVersion", "GitCommit", "GoVersion", "Os", "Arch",
                "KernelVersion", "BuildTime", "Components"):  # fmt: skip
        assert isinstance(version[key], str | list), key
    assert (version["Os"], version["Arch"]) == ("linux", "amd64")
    engine = next(c for c in version["Components"] if c["Name"] == "Engine")
    assert {"ApiVersion", "MinAPIVersion", "GitCommit", "GoVersion", "Os", "Arch",
            "KernelVersion"} <= set(engine["Details"])  # fmt: skip
    server = ok(docker("version", "--format", "{{.Server.Os}}/{{.Server.Arch}}"))
    assert server == "linux/amd64\n"

    info = client.info()
    for key, kind in (("ID", str), ("Containers", int), ("ContainersRunning", int),
                      ("Images", int), ("Driver", str), ("MemTotal", int), ("NCPU", int),
                      ("OperatingSystem", str), ("OSType", str), ("Architecture", str),
                      ("ServerVersion", str), ("KernelVersion", str), ("Name", str),
                      ("DockerRootDir", str), ("CgroupDriver", str), ("CgroupVersion", str),
                      ("Runtimes", dict), ("DefaultRuntime", str), ("SecurityOptions", list),
                      ("Plugins", dict), ("RegistryConfig", dict), ("Swarm", dict),
                      ("LoggingDriver", str), ("IndexServerAddress", str)):  # fmt: skip
        assert isinstance(info[key], kind), key
    assert info["OSType"] == "linux" and info["Images"] >= 1


# --- docker cp ------------------------------------------------------------------------------


def test_cp_in_and_out(engine_under_test: EngineUnderTest, tmp_path: Path) -> None:
    _, docker, client = engine_under_test
    ok(docker("run", "-d", "--name", "parity-cp", *NONE, "bb:1", "sleep", "300"))
    source = tmp_path / "hello.txt"
    source.write_text("hello cp\n")
    assert ok(docker("cp", str(source), "parity-cp:/tmp/")) == ""
    assert ok(docker("exec", "parity-cp", "cat", "/tmp/hello.txt")) == "hello cp\n"
    target = tmp_path / "out.txt"
    ok(docker("cp", "parity-cp:/tmp/hello.txt", str(target)))
    assert target.read_text() == "hello cp\n"
    res = docker("cp", "parity-cp:/nope", str(tmp_path / "x"))
    assert res.returncode == 1
    assert "Could not find the file /nope in container parity-cp" in res.stderr
    container = client.containers.get("parity-cp")
    stream, stat = container.get_archive("/tmp/hello.txt")
    assert stat["name"] == "hello.txt" and stat["size"] == 9
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None and member.read() == b"hello cp\n"
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        info = tarfile.TarInfo("put.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"put\n"))
    assert container.put_archive("/tmp", payload.getvalue()) is True
    assert ok(docker("exec", "parity-cp", "cat", "/tmp/put.txt")) == "put\n"


# --- cove and dockerd side by side -------------------------------------------------------------


def shape(doc: Any, path: str = "") -> dict[str, str]:
    """path -> JSON type of every field (lists by their first item)."""
    found = {path: type(doc).__name__}
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.update(shape(value, f"{path}.{key}"))
    elif isinstance(doc, list) and doc:
        found.update(shape(doc[0], f"{path}[]"))
    return found


def compare(cove_doc: Any, docker_doc: Any, allowed: dict[str, str]) -> list[str]:
    """What dockerd's document has that cove's lacks, or has with another type; null and
    an empty list or map count as the same (Go's nil slices and maps). Paths listed in
    ``allowed`` (with the reason) and everything below them are not compared."""
    ours, theirs = shape(cove_doc), shape(docker_doc)
    nullable = {"NoneType", "list", "dict"}

    def excused(path: str) -> bool:
        return any(path == p or path.startswith(p + ".") or path.startswith(p + "[")
                   for p in allowed)  # fmt: skip

    problems = []
    for path, kind in sorted(theirs.items()):
        if excused(path):
            continue
        if path not in ours:
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            if ours.get(parent) != "NoneType":  # cove has null where dockerd has a map
                problems.append(f"{path}: missing (dockerd: {kind})")
        elif ours[path] != kind and not {ours[path], kind} <= nullable:
            problems.append(f"{path}: {ours[path]} (dockerd: {kind})")
    return problems


def _remove_test_objects(client: Any) -> None:
    """Every container, and the network and volume the shape test made; a failure shows
    up as the next test's conflict, if it matters."""
    steps: tuple[tuple[Any, dict[str, Any], dict[str, Any]], ...] = (
        (client.containers.list, {"all": True}, {"force": True}),
        (client.networks.list, {"names": ["parity-shape"]}, {}),
        (client.volumes.list, {"filters": {"name": "parity-shape"}}, {"force": True}),
    )
    for lister, query, options in steps:
        try:
            for item in lister(**query):
                item.remove(**options)
        except docker_sdk.errors.APIError:
            pass


@pytest.fixture
def both(api: ApiServer, dockerd: PrivateDockerd) -> Iterator[dict[str, Any]]:
    """docker-py clients for cove and dockerd, both pinned to API 1.41."""
    clients = {name: docker_sdk.DockerClient(base_url=url, version="1.41", timeout=60)
               for name, url in (("cove", api.url), ("dockerd", dockerd.url))}  # fmt: skip
    try:
        yield clients
    finally:
        for client in clients.values():
            _remove_test_objects(client)
            client.close()


# Fields dockerd 20.10 has that cove leaves out on purpose, with the reason.
NOT_COMPARED = {
    "container": {
        ".GraphDriver.Data": "storage-driver specific (vfs has none, cove's overlay has dirs)",
        ".HostConfig.KernelMemory": "cgroup v1 kmem, dropped by Docker in API 1.42",
        ".HostConfig.KernelMemoryTCP": "cgroup v1 kmem, dropped by Docker in API 1.42",
    },
    "image": {
        ".GraphDriver.Data": "storage-driver specific",
        ".ContainerConfig": "the builder's container config: cove's images have none",
        ".Container": "the builder's container id: cove's images have none",
        ".VirtualSize": "equal to Size; dropped by Docker in API 1.44",
    },
    "info": {
        ".Runtimes": "each engine names its own runtimes",
        ".KernelMemory": "cgroup v1 kmem, dropped by Docker in API 1.42",
        ".ContainerdCommit": "cove has no containerd",
        ".RuncCommit.Expected": "dropped by Docker in API 1.44",
        ".InitCommit.Expected": "dropped by Docker in API 1.44",
        ".Swarm": "cove has no swarm mode: its Swarm answer is the inactive one",
        ".Plugins": "each engine lists its own drivers",
        ".DriverStatus": "storage-driver specific",
        ".Warnings": "host-specific",
    },
    "version": {},
    "df": {
        ".BuilderSize": "deprecated, dropped by Docker in API 1.42",
        ".Containers[].SizeRootFs": "only with a size computation, as ps --size",
    },
    "network": {},
    "volume": {},
    "stats": {},
    "container-list": {},
    "image-list": {},
}


def _documents(client: Any, what: str) -> Any:
    if what == "container":
        return client.api.inspect_container("parity-shape")
    if what == "image":
        return client.api.inspect_image("bb:1")
    if what == "info":
        return client.info()
    if what == "version":
        return client.version()
    if what == "df":
        return client.df()
    if what == "network":
        return client.api.inspect_network("parity-shape")
    if what == "stats":
        return client.api.stats("parity-shape", stream=False)
    if what == "container-list":
        return client.api.containers(all=True)
    if what == "image-list":
        return client.api.images()
    return client.api.inspect_volume("parity-shape")


@pytest.mark.parametrize("what", sorted(NOT_COMPARED))
def test_documents_have_dockerds_shape(both: dict[str, Any], what: str) -> None:
    for client in both.values():
        client.containers.run("bb:1", ["sleep", "300"], name="parity-shape", detach=True,
                              network_mode="none", mem_limit="64m", labels={"a": "b"})  # fmt: skip
        client.networks.create("parity-shape", labels={"a": "b"})
        client.volumes.create("parity-shape", labels={"a": "b"})
    cove_doc, docker_doc = (_documents(both[name], what) for name in ("cove", "dockerd"))
    problems = compare(cove_doc, docker_doc, NOT_COMPARED[what])
    assert not problems, f"{what}: cove's document differs from dockerd's:\n" + "\n".join(problems)


def test_the_private_dockerd_leaves_the_host_alone(dockerd: PrivateDockerd) -> None:
    """dockerd and containerd run in namespaces of their own: a network dockerd creates
    is a bridge there, not on the host; their /run is theirs."""
    assert dockerd.daemon is not None
    for kind in ("net", "mnt"):
        theirs = os.readlink(f"/proc/{dockerd.daemon.pid}/ns/{kind}")
        assert theirs == os.readlink(f"/proc/{dockerd.containerd.pid}/ns/{kind}")
        assert theirs != os.readlink(f"/proc/self/ns/{kind}"), kind
    network_id = ok(dockerd.docker("network", "create", "parity-private")).strip()
    try:
        bridge = f"br-{network_id[:12]}"
        host_links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True)
        assert host_links.returncode == 0 and bridge not in host_links.stdout
        inside = subprocess.run(["nsenter", f"--net=/proc/{dockerd.daemon.pid}/ns/net", "ip",
                                 "-o", "link"], capture_output=True, text=True)  # fmt: skip
        assert bridge in inside.stdout  # it exists, in dockerd's namespace
    finally:
        ok(dockerd.docker("network", "rm", "parity-private"))
    assert not Path("/run/containerd/containerd.sock").exists()


def test_the_image_is_the_same_in_both(both: dict[str, Any]) -> None:
    cove_image, docker_image = (both[name].images.get("bb:1") for name in ("cove", "dockerd"))
    assert cove_image.id == docker_image.id
    assert sorted(cove_image.tags) == sorted(docker_image.tags) == ["bb:1", "busybox:latest"]
    for key in ("RootFS", "Os", "Architecture", "Created"):
        assert cove_image.attrs[key] == docker_image.attrs[key], key
    for key in ("Cmd", "Entrypoint", "Env", "WorkingDir", "User", "Labels"):
        assert cove_image.attrs["Config"].get(key) == docker_image.attrs["Config"].get(key), key
