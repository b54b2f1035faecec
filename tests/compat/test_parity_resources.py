"""Parity with Docker, the other resources: images (list, inspect, tag, rmi, save/load),
volumes, networks (user networks are created in both engines; dockerd's live in its
private network namespace), events, system df/version/info and docker cp. Each
`engine_under_test` test runs once per engine (`cove serve`, and Debian's dockerd 20.10
run privately by tests/lib/dockerd.py) with one set of expectations (Docker's).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from pathlib import Path

import docker as docker_sdk  # type: ignore[import-untyped]
import pytest

from tests.compat.conftest import EngineUnderTest
from tests.compat.parity_support import HEX64, NONE, TIMESTAMP, ok, raw

pytestmark = pytest.mark.root


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
    time.sleep(1)  # (the set-up's events, bb:1's load, fall in earlier seconds)
    since = int(time.time())
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
    time.sleep(0.5)
    image_id = client.images.get("bb:1").id
    seen = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]["name"])
            for e in client.events(since=since, until=int(time.time()) + 1, decode=True,
                                   filters={"type": "image"})
            if e["Action"] in ("save", "load")]  # fmt: skip
    assert seen == [("save", image_id, image_id), ("load", image_id, image_id),
                    ("load", image_id, image_id)], seen  # fmt: skip


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


def test_events_of_networks_volumes_and_images(engine_under_test: EngineUnderTest) -> None:
    """The other objects' events, as dockerd records them: a network's create and destroy,
    a volume's, an image's tag, untag and delete; `type` and `network` filters."""
    _, docker, client = engine_under_test
    time.sleep(1)  # (the set-up's events, bb:1's load and tags, fall in earlier seconds)
    since = int(time.time())
    network = client.networks.create("parity-evnet")
    network.remove()
    client.volumes.create("parity-evvol").remove()
    image = client.images.get("bb:1")
    image.tag("parity-ev", "1")
    client.images.remove("parity-ev:1")
    time.sleep(0.5)
    until = int(time.time()) + 1
    seen = [e for e in client.events(since=since, until=until, decode=True)
            if e["Type"] in ("network", "volume", "image")]  # fmt: skip
    shapes = [(e["Type"], e["Action"], e["Actor"]["ID"]) for e in seen]
    assert shapes == [
        ("network", "create", network.id),
        ("network", "destroy", network.id),
        ("volume", "create", "parity-evvol"),
        ("volume", "destroy", "parity-evvol"),
        ("image", "tag", image.id),
        ("image", "untag", image.id),
    ], shapes
    networks = [e["Actor"]["Attributes"] for e in seen if e["Type"] == "network"]
    assert networks == [{"name": "parity-evnet", "type": "bridge"}] * 2
    volumes = [e["Actor"]["Attributes"] for e in seen if e["Type"] == "volume"]
    assert volumes == [{"driver": "local"}] * 2
    images = [e for e in seen if e["Type"] == "image"]
    assert images[0]["Actor"]["Attributes"] == {"name": "parity-ev:1"}
    assert images[1]["Actor"]["Attributes"] == {"name": image.id}
    assert all(e["status"] == e["Action"] and e["id"] == image.id for e in images)
    assert all(e["scope"] == "local" and isinstance(e["timeNano"], int) for e in seen)
    printed = ok(docker("events", "--since", str(since), "--until", str(until),
                        "--filter", "type=network", "--filter", "network=parity-evnet",
                        "--format", "{{.Type}} {{.Action}}"))  # fmt: skip
    assert printed.splitlines() == ["network create", "network destroy"]


def test_network_events_of_a_container_run(engine_under_test: EngineUnderTest) -> None:
    """A container's start connects it to its network and its exit disconnects it: the
    network's events name the container."""
    _, _, client = engine_under_test
    network = client.networks.create("parity-evrun")
    time.sleep(1)  # (the create falls in an earlier second)
    since = int(time.time())
    container = client.containers.run("bb:1", ["true"], network="parity-evrun", detach=True)
    assert container.wait(timeout=30)["StatusCode"] == 0
    container.remove()
    network.remove()
    time.sleep(0.5)
    until = int(time.time()) + 1
    seen = list(client.events(since=since, until=until, decode=True,
                              filters={"type": "network"}))  # fmt: skip
    actions = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in seen]
    attributes = {"container": container.id, "name": "parity-evrun", "type": "bridge"}
    destroyed = {"name": "parity-evrun", "type": "bridge"}
    assert actions == [("connect", network.id, attributes), ("disconnect", network.id, attributes),
                       ("destroy", network.id, destroyed)]  # fmt: skip


def test_volume_events_of_a_container_run(engine_under_test: EngineUnderTest) -> None:
    """A named volume that a run makes, mounts at the start and unmounts at the exit."""
    _, _, client = engine_under_test
    time.sleep(1)  # (the set-up's events fall in earlier seconds)
    since = int(time.time())
    container = client.containers.run("bb:1", ["true"], volumes={"parity-mnt": {"bind": "/data"}},
                                      network_mode="none", detach=True)  # fmt: skip
    assert container.wait(timeout=30)["StatusCode"] == 0
    container.remove()
    client.volumes.get("parity-mnt").remove()
    time.sleep(0.5)
    seen = [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"])
            for e in client.events(since=since, until=int(time.time()) + 1, decode=True,
                                   filters={"type": "volume"})]  # fmt: skip
    used = {"container": container.id, "destination": "/data", "driver": "local",
            "propagation": "", "read/write": "true"}  # fmt: skip
    local = {"driver": "local"}
    left = {"container": container.id, "driver": "local"}
    assert seen == [("create", "parity-mnt", local), ("mount", "parity-mnt", used),
                    ("unmount", "parity-mnt", left), ("destroy", "parity-mnt", local)]  # fmt: skip


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
