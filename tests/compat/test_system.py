"""System routes through the real clients: ping, version negotiation, info, system df,
and events (history and live). /build: tests/compat/test_build.py."""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from cove import __version__
from tests.compat.conftest import ApiServer, DockerCli, docker_binary


def test_docker_version_negotiates_down_to_the_servers_api(
    api: ApiServer, docker: DockerCli
) -> None:
    res = docker("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}}")
    assert res.returncode == 0, res.stderr
    server_version, client_version = res.stdout.split()
    assert server_version == "1.44"
    assert client_version == "1.44"  # negotiated down from the client's own


def test_sdk_ping_and_version(client: Any) -> None:
    assert client.ping() is True
    assert client.version()["ApiVersion"] == "1.44"


# --- info ------------------------------------------------------------------------------------


def docker_info(docker: DockerCli) -> dict[str, Any]:
    res = docker("info", "--format", "{{json .}}")
    assert res.returncode == 0, res.stderr
    info: dict[str, Any] = json.loads(res.stdout)
    return info


def image_count(api: ApiServer) -> int:
    listed = api.cove("images", "-q", "--no-trunc")
    assert listed.returncode == 0, listed.stderr
    return len(set(listed.stdout.split()))


def run_detached(api: ApiServer, *args: str) -> str:
    res = api.cove("run", "-d", *args)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_docker_info_describes_the_engine_and_counts_containers(
    api: ApiServer, docker: DockerCli
) -> None:
    before = docker_info(docker)
    assert before["ServerVersion"] == __version__
    assert before["OSType"] == "linux" and before["Architecture"] == os.uname().machine
    assert before["KernelVersion"] == os.uname().release
    assert before["NCPU"] == os.cpu_count()
    assert before["Name"] == socket.gethostname()
    assert before["DockerRootDir"] == str(api.root)
    assert before["Driver"] in ("overlay2", "vfs")
    assert ["Backing Filesystem", before["DriverStatus"][0][1]] == before["DriverStatus"][0]
    assert before["Plugins"]["Volume"] == ["local"]
    assert before["Plugins"]["Network"] == ["bridge", "host", "none"]
    assert before["Plugins"]["Log"] == ["json-file"]
    assert before["CgroupDriver"] == "cgroupfs"
    v2 = os.path.exists("/sys/fs/cgroup/cgroup.controllers")
    assert before["CgroupVersion"] == ("2" if v2 else "1")
    assert before["DefaultRuntime"] == "cove" and "cove" in before["Runtimes"]
    assert before["SecurityOptions"] == ["name=seccomp,profile=builtin"]
    assert before["MemoryLimit"] is True and before["CPUShares"] is True
    assert before["Images"] == image_count(api)  # busybox:latest and bb:1: one image
    assert before["MemTotal"] > 0 and before["ID"]
    assert before["Swarm"]["LocalNodeState"] == "inactive"
    assert (
        before["ContainersRunning"] + before["ContainersPaused"] + before["ContainersStopped"]
        == before["Containers"]
    )

    run_detached(api, "--name", "counted", "bb:1", "sleep", "30")
    stopped = api.cove("create", "bb:1", "true")
    assert stopped.returncode == 0, stopped.stderr
    after = docker_info(docker)
    assert after["Containers"] == before["Containers"] + 2
    assert after["ContainersRunning"] == before["ContainersRunning"] + 1
    assert after["ContainersStopped"] == before["ContainersStopped"] + 1
    assert after["ID"] == before["ID"]  # the engine's id is kept

    text = docker("info")
    assert text.returncode == 0, text.stderr
    assert f"Server Version: {__version__}" in text.stdout
    assert f"Storage Driver: {after['Driver']}" in text.stdout
    assert f" Containers: {after['Containers']}\n  Running: {after['ContainersRunning']}" in (
        text.stdout
    )


def test_sdk_info(api: ApiServer, client: Any) -> None:
    info = client.info()
    assert info["ServerVersion"] == __version__
    run_detached(api, "bb:1", "sleep", "30")
    assert client.info()["ContainersRunning"] == info["ContainersRunning"] + 1


# --- system df -------------------------------------------------------------------------------


def test_docker_system_df_counts_images_containers_volumes(
    api: ApiServer, docker: DockerCli
) -> None:
    cid = run_detached(api, "--name", "writer", "-v", "dfvol:/vol", "bb:1", "sh", "-c",
                       "echo hello > /data; echo 12345 > /vol/f; sleep 30")  # fmt: skip
    deadline = time.monotonic() + 10
    while api.cove("exec", cid, "cat", "/vol/f").stdout != "12345\n":
        assert time.monotonic() < deadline, "the container did not write its files"
        time.sleep(0.1)
    res = docker("system", "df", "--format", "{{json .}}")
    assert res.returncode == 0, res.stderr
    rows = {row["Type"]: row for row in map(json.loads, res.stdout.splitlines())}
    assert (rows["Images"]["TotalCount"], rows["Images"]["Active"]) == (str(image_count(api)), "1")
    assert (rows["Containers"]["TotalCount"], rows["Containers"]["Active"]) == ("1", "1")
    assert rows["Containers"]["Size"] == "6B"  # "hello\n" in its upper layer
    assert (rows["Local Volumes"]["TotalCount"], rows["Local Volumes"]["Active"]) == ("1", "1")
    assert rows["Local Volumes"]["Size"] == "6B"  # "12345\n"
    assert rows["Build Cache"]["TotalCount"] == "0"

    verbose = docker("system", "df", "-v", "--format", "{{json .}}")
    assert verbose.returncode == 0, verbose.stderr
    detail = json.loads(verbose.stdout)
    [container] = detail["Containers"]
    assert (container["Names"], container["ID"], container["State"]) == ("writer", cid, "running")
    assert container["LocalVolumes"] == "1" and container["Mounts"] == "dfvol"
    [volume] = detail["Volumes"]
    assert (volume["Name"], volume["Links"], volume["Size"]) == ("dfvol", "1", "6B")
    used = [(i["Repository"], i["Tag"]) for i in detail["Images"] if i["Containers"] == "1"]
    assert len(used) == 1 and used[0] in (("bb", "1"), ("busybox", "latest"))  # one row each
    assert detail["BuildCache"] == []


def test_sdk_df(api: ApiServer, client: Any) -> None:
    cid = run_detached(api, "bb:1", "sleep", "30")
    usage = client.df()
    assert set(usage) >= {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    assert len(usage["Images"]) == image_count(api)
    [image] = [i for i in usage["Images"] if "bb:1" in i["RepoTags"]]
    assert image["Id"].startswith("sha256:") and image["Containers"] == 1
    assert sorted(image["RepoTags"]) == ["bb:1", "busybox:latest"]
    assert usage["LayersSize"] >= image["Size"] > 0
    [container] = usage["Containers"]
    assert container["Id"] == cid and container["State"] == "running"
    assert container["SizeRootFs"] >= image["Size"]
    assert usage["BuildCache"] == []


# --- events ----------------------------------------------------------------------------------


def test_docker_events_between_since_and_until(api: ApiServer, docker: DockerCli) -> None:
    since = time.time()
    ran = api.cove("run", "--rm", "--name", "evt", "bb:1", "sh", "-c", "exit 3")
    assert ran.returncode == 3, ran.stderr
    until = time.time()
    window = ("--since", f"{since:.9f}", "--until", f"{until:.9f}")
    res = docker("events", *window, "--format", "{{json .}}", timeout=30)
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    mine = [e for e in events if e["Actor"]["Attributes"].get("name") == "evt"]
    assert [e["Action"] for e in mine] == ["create", "start", "die", "destroy"]
    cid = mine[0]["Actor"]["ID"]
    for event in mine:
        assert event["Type"] == "container" and event["scope"] == "local"
        assert (event["status"], event["id"]) == (event["Action"], cid)  # legacy fields
        assert event["Actor"]["Attributes"]["image"] == event["from"] == "bb:1"
        assert since <= event["timeNano"] / 1e9 <= until
        assert event["time"] == event["timeNano"] // 1_000_000_000
    assert mine[2]["Actor"]["Attributes"]["exitCode"] == "3"

    dies = docker("events", *window, "--filter", "event=die", "--filter", "container=evt",
                  "--format", "{{.Action}} {{.Actor.Attributes.name}}", timeout=30)  # fmt: skip
    assert dies.returncode == 0, dies.stderr
    assert dies.stdout == "die evt\n"
    none = docker("events", *window, "--filter", "type=volume", timeout=30)
    assert (none.returncode, none.stdout) == (0, "")
    shape = "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}"
    plugged = docker("events", *window, "--filter", "type=network", "--format", shape)
    assert plugged.stdout.splitlines() == [f"connect bridge {cid}", f"disconnect bridge {cid}"]
    bad = docker("events", *window, "--filter", "colour=blue", timeout=30)
    assert bad.returncode != 0 and "invalid filter 'colour'" in bad.stderr


def wait_for_listeners(client: Any, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while client.info()["NEventsListener"] != count:
        assert time.monotonic() < deadline, f"never {count} event listeners"
        time.sleep(0.05)


def test_docker_events_streams_a_start_as_it_happens(
    api: ApiServer, client: Any, tmp_path: Path
) -> None:
    listeners = client.info()["NEventsListener"]
    config = tmp_path / "docker-config"
    config.mkdir()
    env = {**os.environ, "DOCKER_HOST": api.url, "DOCKER_CONFIG": str(config)}
    watcher = subprocess.Popen(
        [docker_binary(), "events", "--filter", "event=start", "--format",
         "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        wait_for_listeners(client, listeners + 1)  # it is connected: nothing gets lost
        run_detached(api, "--name", "streamed", "bb:1", "sleep", "30")
        assert watcher.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(watcher.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=15), "no event within 15 s"
        assert watcher.stdout.readline() == b"container start streamed\n"
    finally:
        watcher.kill()  # by its pid
        watcher.wait()
    # the server notices the client left and ends the stream (and its reader thread)
    wait_for_listeners(client, listeners)


def test_sdk_events_generator_reads_a_start(api: ApiServer, client: Any) -> None:
    events = client.events(decode=True, filters={"event": "start", "container": "sdkevt"},
                           until=int(time.time()) + 20)  # fmt: skip
    try:
        cid = run_detached(api, "--name", "sdkevt", "bb:1", "sleep", "30")
        got: list[dict[str, Any]] = []
        reader = threading.Thread(target=lambda: got.append(next(events)), daemon=True)
        reader.start()
        reader.join(20)
        assert got, "no start event"
        event = got[0]
        assert (event["Type"], event["Action"], event["status"]) == ("container", "start",
                                                                       "start")  # fmt: skip
        assert event["Actor"]["ID"] == event["id"] == cid
        assert event["Actor"]["Attributes"]["name"] == "sdkevt"
    finally:
        events.close()
