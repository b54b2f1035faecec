"""`cove network` and `cove port` end to end, as root, on a temporary engine root: the
pre-defined networks in ls, create (a default pool clear of this host's routes, or the given
subnet) / ls / inspect / rm / prune, the conflicts Docker reports, rm refused while a
container holds an address (allocated through the API, as the data plane does), and
connect's answer when there is no data plane. No bridge is made here: that is the data
plane's, at container start."""

from __future__ import annotations

import importlib.util
import json
import os
import re
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from cove.engine.network import NetworkService, ipam
from cove.engine.state import ContainerRecord, ContainerStore
from tests.integration.image.test_import import cove

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the engine CLI's default use)"),
]

FULL_ID = re.compile(r"[0-9a-f]{64}")


def ok(root: Path, *args: str) -> str:
    res = cove(root, *args)
    assert res.returncode == 0, f"cove {' '.join(args)}: {res.returncode} {res.stderr}"
    return res.stdout


def fails(root: Path, *args: str, status: int = 1) -> str:
    res = cove(root, *args)
    assert res.returncode == status, f"cove {' '.join(args)}: {res.returncode} {res.stdout}"
    return res.stderr


def table(root: Path, *args: str) -> list[list[str]]:
    return [line.split() for line in ok(root, "network", "ls", *args).splitlines()[1:]]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "engine"


def test_predefined_networks_are_listed_and_kept(root: Path) -> None:
    rows = table(root)
    assert [(name, driver, scope) for _, name, driver, scope in rows] == [
        ("bridge", "bridge", "local"), ("host", "host", "local"),
        ("none", "null", "local")]  # fmt: skip
    bridge = json.loads(ok(root, "network", "inspect", "bridge"))[0]
    subnet = IPv4Network(bridge["IPAM"]["Config"][0]["Subnet"])
    assert not any(subnet.overlaps(route) for route in ipam.host_networks())
    # a root other than /var/lib/cove names its default bridge after the network
    assert bridge["Options"]["com.docker.network.bridge.name"] == f"cv-{bridge['Id'][:12]}"
    # the same network (same id and subnet) on every later use
    assert table(root)[0][0] == bridge["Id"][:12]
    for name in ("bridge", "host", "none"):
        assert f"{name} is a pre-defined network and cannot be removed" in fails(
            root, "network", "rm", name)  # fmt: skip
        assert f"network with name {name} already exists" in fails(
            root, "network", "create", name)  # fmt: skip
    assert ok(root, "network", "inspect", "-f", "{{.Driver}} {{json .IPAM.Config}}", "none") == (
        "null []\n")  # fmt: skip


def test_default_subnet_from_engine_json(root: Path) -> None:
    root.mkdir()
    (root / "engine.json").write_text(json.dumps({"default_subnet": "10.213.0.0/16"}))
    assert ok(root, "network", "inspect", "-f", "{{json .IPAM.Config}}", "bridge") == (
        '[{"Subnet": "10.213.0.0/16", "Gateway": "10.213.0.1"}]\n')  # fmt: skip


def test_create_ls_inspect_rm_prune(root: Path) -> None:
    front = ok(root, "network", "create", "--label", "tier=web", "front").strip()
    assert FULL_ID.fullmatch(front)
    back = ok(root, "network", "create", "--subnet", "10.214.0.0/24", "--gateway",
              "10.214.0.254", "--ip-range", "10.214.0.128/25", "--internal", "-o",
              "com.docker.network.driver.mtu=1400", "-d", "bridge", "back").strip()  # fmt: skip
    assert [row[1] for row in table(root)] == ["back", "bridge", "front", "host", "none"]
    assert ok(root, "network", "ls", "-q", "--no-trunc", "--filter", "label=tier=web") == (
        front + "\n")  # fmt: skip
    assert ok(root, "network", "ls", "--format", "{{.Name}}", "-f", "type=custom") == (
        "back\nfront\n")  # fmt: skip
    docs = json.loads(ok(root, "network", "inspect", "front", back[:12]))
    assert [(d["Name"], d["Id"]) for d in docs] == [("front", front), ("back", back)]
    subnets = {d["Name"]: IPv4Network(d["IPAM"]["Config"][0]["Subnet"]) for d in docs}
    bridge = json.loads(ok(root, "network", "inspect", "bridge"))[0]
    assert not subnets["front"].overlaps(IPv4Network(bridge["IPAM"]["Config"][0]["Subnet"]))
    assert not any(subnets["front"].overlaps(route) for route in ipam.host_networks())
    assert docs[1]["IPAM"]["Config"] == [{"Subnet": "10.214.0.0/24", "IPRange": "10.214.0.128/25",
                                          "Gateway": "10.214.0.254"}]  # fmt: skip
    assert (docs[1]["Internal"], docs[1]["Options"], docs[0]["Labels"]) == (
        True, {"com.docker.network.driver.mtu": "1400"}, {"tier": "web"})  # fmt: skip
    # Docker's conflicts
    assert "network with name front already exists" in fails(root, "network", "create", "front")
    assert "Pool overlaps with other one on this address space" in fails(
        root, "network", "create", "--subnet", "10.214.0.0/16", "other")  # fmt: skip
    assert "network nope not found" in fails(root, "network", "inspect", "nope")
    assert fails(root, "network", "create", "--subnet", "10.9.0.0/16", "bad name") != ""
    assert "unknown flag" in fails(root, "--bogus", "network", "ls", status=125)
    # rm by id prefix, prune the rest (output as Docker's)
    assert ok(root, "network", "rm", front[:12]) == front[:12] + "\n"
    assert "network front not found" in fails(root, "network", "rm", "front")
    assert ok(root, "network", "rm", "-f", "front") == ""
    assert ok(root, "network", "prune", "-f") == "Deleted Networks:\nback\n"
    assert [row[1] for row in table(root)] == ["bridge", "host", "none"]
    assert sorted(p.name for p in (root / "networks").glob("*.json")) == [bridge["Id"] + ".json"]


def test_rm_refused_while_a_container_holds_an_address(root: Path) -> None:
    ok(root, "network", "create", "--subnet", "10.215.0.0/24", "busy")
    container_id = os.urandom(32).hex()
    with ContainerStore(root) as store:
        store.add(ContainerRecord(id=container_id, name="web", image_id="sha256:0",
                                  image_name="img"))  # fmt: skip
    with NetworkService(str(root)) as service:
        network = service.get("busy")
        lease = service.allocate(network, container_id, aliases=["www"])
    assert (lease.ip, lease.mac) == ("10.215.0.2", "02:42:0a:d7:00:02")
    assert "has active endpoints (containers: web)" in fails(root, "network", "rm", "busy")
    assert ok(root, "network", "prune", "-f") == ""
    assert ok(root, "network", "ls", "-q", "-f", "dangling=false", "-f", "type=custom") == (
        network.id[:12] + "\n")  # fmt: skip
    doc = json.loads(ok(root, "network", "inspect", "busy"))[0]
    assert doc["Containers"] == {container_id: {
        "Name": "web", "EndpointID": lease.endpoint_id, "MacAddress": "02:42:0a:d7:00:02",
        "IPv4Address": "10.215.0.2/24", "IPv6Address": ""}}  # fmt: skip
    with NetworkService(str(root)) as service:
        service.release(network, container_id)
    assert ok(root, "network", "rm", "busy") == "busy\n"


def test_port_of_a_container_that_publishes_nothing(root: Path) -> None:
    container_id = os.urandom(32).hex()
    with ContainerStore(root) as store:
        store.add(ContainerRecord(id=container_id, name="quiet", image_id="sha256:0",
                                  image_name="img"))  # fmt: skip
    assert ok(root, "port", "quiet") == ""
    assert "no public port '80/tcp' published for quiet" in fails(root, "port", "quiet", "80")
    assert "invalid proto: sctp" in fails(root, "port", "quiet", "80/sctp")
    assert "does not exist" in fails(root, "port", "nobody")


def test_connect_and_disconnect_a_created_container(root: Path) -> None:
    """Without the data plane: its error. With it: a created container is plugged in only at
    its start, so this is IPAM and the record (settings["connected"])."""
    container_id = os.urandom(32).hex()
    with ContainerStore(root) as store:
        store.add(ContainerRecord(id=container_id, name="web", image_id="sha256:0",
                                  image_name="img", config={"network": "bridge"}))  # fmt: skip
    ok(root, "network", "create", "--subnet", "10.216.0.0/24", "app")
    if importlib.util.find_spec("cove.engine.network.attach") is None:
        for verb in ("connect", "disconnect"):
            err = fails(root, "network", verb, "app", "web", status=125)
            assert err == f"cove: network {verb} needs the data plane (not available)\n"
        return
    ok(root, "network", "connect", "--ip", "10.216.0.9", "--alias", "www", "app", "web")
    with NetworkService(str(root)) as service, ContainerStore(root) as store:
        (lease,) = service.leases_of(container_id)
        assert (lease.ip, lease.aliases) == ("10.216.0.9", ("www",))
        assert store.get(container_id).settings["connected"] == ["app"]
    assert "endpoint with name web already exists in network app" in fails(
        root, "network", "connect", "app", "web")  # fmt: skip
    assert "endpoint with name web already exists in network bridge" in fails(
        root, "network", "connect", "bridge", "web")  # fmt: skip
    assert "has active endpoints (containers: web)" in fails(root, "network", "rm", "app")
    ok(root, "network", "disconnect", "app", "web")
    with NetworkService(str(root)) as service, ContainerStore(root) as store:
        assert service.leases_of(container_id) == []
        assert "connected" not in store.get(container_id).settings
    assert "is not connected to network app" in fails(root, "network", "disconnect", "app", "web")
    assert ok(root, "network", "rm", "app") == "app\n"
