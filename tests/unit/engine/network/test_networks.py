"""The network service without root: the default network (first free pool, engine.json),
pseudo-networks, create and its checks (names, conflicts, subnets), get/list/filters,
remove and prune against leases, and IPAM: allocation order, exhaustion, explicit
addresses, release and reuse, ip ranges, idempotence, 20 processes at once; inspect's
shape. The host's routes are passed in (`host_networks`)."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from cove.engine.network import Lease, Network, NetworkService
from cove.engine.network.defaults import DEFAULT_OPTIONS
from cove.engine.network.records import pseudo_network
from cove.engine.state import ContainerRecord, ContainerStore
from cove.errors import (
    AddressInUse,
    AmbiguousNetwork,
    InvalidArgument,
    IPAMError,
    NetworkConflict,
    NetworkError,
    NetworkInUse,
    NoSuchNetwork,
    PredefinedNetwork,
)

HOST = [IPv4Network("172.17.0.0/16"), IPv4Network("192.0.2.0/24")]  # as if docker0 existed


def cid(n: int) -> str:
    return f"{n:064x}"


@pytest.fixture
def service(tmp_path: Path) -> NetworkService:
    return NetworkService(str(tmp_path), host_networks=lambda: HOST)


# --- networks -------------------------------------------------------------------------------


def test_default_network_takes_the_first_free_pool_once(
    service: NetworkService, tmp_path: Path
) -> None:
    bridge = service.default()
    # a root other than /var/lib/cove names its default bridge after the network
    assert (bridge.name, bridge.driver, bridge.bridge) == (
        "bridge",
        "bridge",
        f"cv-{bridge.id[:12]}",
    )
    assert (bridge.subnet, bridge.gateway, bridge.ip_range) == ("172.18.0.0/16", "172.18.0.1", "")
    assert len(bridge.id) == 64 and bridge.builtin and not bridge.pseudo
    assert bridge.options == {**DEFAULT_OPTIONS, "com.docker.network.bridge.name": bridge.bridge}
    assert bridge.mtu == 0 and bridge.created
    # kept: another service whose host now covers 172.18 still finds the same network
    other = NetworkService(str(tmp_path), host_networks=lambda: [IPv4Network("172.18.0.0/16")])
    assert other.default() == bridge
    assert other.get("bridge") == bridge
    assert json.loads((tmp_path / "networks" / f"{bridge.id}.json").read_text())["name"] == "bridge"


def test_default_subnet_from_engine_json(tmp_path: Path) -> None:
    (tmp_path / "engine.json").write_text(json.dumps({"default_subnet": "10.88.0.0/16"}))
    bridge = NetworkService(str(tmp_path), host_networks=lambda: HOST).default()
    assert (bridge.subnet, bridge.gateway) == ("10.88.0.0/16", "10.88.0.1")


def test_engine_json_errors_name_the_file(tmp_path: Path) -> None:
    service = NetworkService(str(tmp_path), host_networks=lambda: HOST)
    (tmp_path / "engine.json").write_text(json.dumps({"default_subnet": "10.88.0.0/33"}))
    with pytest.raises(InvalidArgument, match=r"engine.json: default_subnet"):
        service.default()
    (tmp_path / "engine.json").write_text("{")
    with pytest.raises(NetworkError, match=r"engine.json"):
        service.default()
    (tmp_path / "engine.json").write_text("{}")
    assert service.default().subnet == "172.18.0.0/16"


def test_pseudo_networks(service: NetworkService) -> None:
    host, none = service.get("host"), service.get("none")
    assert (host.driver, none.driver) == ("host", "null")
    assert host.subnet == host.gateway == host.bridge == "" and host.pseudo and host.builtin
    assert host.id == pseudo_network("host").id and len(none.id) == 64
    assert service.get(host.id) == host and service.get(none.id[:10]) == none
    assert not (service.dir / f"{host.id}.json").exists()


def test_create_chooses_around_routes_and_networks(service: NetworkService) -> None:
    a = service.create("a")
    b = service.create("b", labels={"k": "v"}, options={"com.docker.network.driver.mtu": "1400"})
    assert service.default().subnet == "172.18.0.0/16"  # made first, as Docker's bridge
    assert (a.subnet, a.gateway, a.bridge) == ("172.19.0.0/16", "172.19.0.1", "cv-" + a.id[:12])
    assert (b.subnet, b.mtu, b.labels) == ("172.20.0.0/16", 1400, {"k": "v"})
    assert len(a.bridge) <= 15


def test_create_with_subnet_gateway_range(service: NetworkService) -> None:
    net = service.create("n", subnet="10.9.0.0/24", gateway="10.9.0.254",
                         ip_range="10.9.0.128/25", internal=True)  # fmt: skip
    assert (net.subnet, net.gateway, net.ip_range, net.internal) == (
        "10.9.0.0/24", "10.9.0.254", "10.9.0.128/25", True)  # fmt: skip
    # a given subnet may overlap the host's routes (as Docker), not another network
    assert service.create("h", subnet="192.0.2.0/25").subnet == "192.0.2.0/25"
    with pytest.raises(NetworkConflict, match="Pool overlaps with other one on this address space"):
        service.create("m", subnet="10.9.0.128/25")
    with pytest.raises(NetworkConflict, match="Pool overlaps"):
        service.create("m", subnet="10.0.0.0/8")
    with pytest.raises(NetworkConflict, match="Pool overlaps"):
        service.create("m", subnet="172.18.1.0/24")  # the default network's
    with pytest.raises(InvalidArgument, match="corresponding subnet"):
        service.create("m", gateway="10.9.1.1")
    with pytest.raises(InvalidArgument, match="not in subnet"):
        service.create("m", subnet="10.10.0.0/24", gateway="10.9.1.1")
    assert [n.name for n in service.list({"type": ["custom"]})] == ["h", "n"]


def test_names_and_conflicts(service: NetworkService) -> None:
    service.create("web.net_1-a")
    with pytest.raises(NetworkConflict, match=r"network with name web.net_1-a already exists"):
        service.create("web.net_1-a", subnet="10.1.0.0/16")
    for reserved in ("bridge", "host", "none"):
        with pytest.raises(NetworkConflict, match=f"network with name {reserved} already exists"):
            service.create(reserved)
    for bad in ("", "-x", "a b", "_x", "é"):
        with pytest.raises(InvalidArgument, match="invalid network name"):
            service.create(bad)
    with pytest.raises(PredefinedNetwork, match='only one instance of "host" network'):
        service.create("x", driver="host")
    with pytest.raises(InvalidArgument, match="driver 'overlay' is not supported"):
        service.create("x", driver="overlay")
    with pytest.raises(InvalidArgument, match="mtu"):
        service.create("x", options={"com.docker.network.driver.mtu": "9"})
    with pytest.raises(InvalidArgument, match="invalid subnet"):
        service.create("x", subnet="fd00::/64")


def test_get_by_id_name_prefix(service: NetworkService) -> None:
    nets = [service.create(f"n{i}") for i in range(3)]
    for net in nets:
        assert service.get(net.id) == net == service.get(net.name) == service.get(net.id[:12])
    with pytest.raises(NoSuchNetwork, match="network nope not found"):
        service.get("nope")
    with pytest.raises(NoSuchNetwork):
        service.get("")
    # a name wins over an id prefix; a prefix of several ids is ambiguous
    named = service.create(nets[0].id[:6])
    assert service.get(nets[0].id[:6]) == named
    ids = [n.id for n in service.list()]
    shared = next((a[:1] for a in ids for b in ids if a != b and a[0] == b[0]), None)
    if shared is not None:
        with pytest.raises(AmbiguousNetwork, match="ambiguous"):
            service.get(shared)


def test_list_shows_builtins_and_filters(service: NetworkService) -> None:
    assert [(n.name, n.driver) for n in service.list()] == [
        ("bridge", "bridge"), ("host", "host"), ("none", "null")]  # fmt: skip
    front = service.create("front", labels={"tier": "web", "x": ""})
    back = service.create("back", labels={"tier": "db"})
    service.allocate(back, cid(1))
    names = lambda **f: [n.name for n in service.list(f)]  # noqa: E731
    assert names() == ["back", "bridge", "front", "host", "none"]
    assert names(name=["ro"]) == ["front"]
    assert names(name=["^b"]) == ["back", "bridge"]
    assert names(id=[front.id[:5]]) == ["front"]
    assert names(label=["tier"]) == ["back", "front"]
    assert names(label=["tier=web", "x"]) == ["front"]
    assert names(driver=["null", "host"]) == ["host", "none"]
    assert names(type=["builtin"]) == ["bridge", "host", "none"]
    assert names(type=["custom"]) == ["back", "front"]
    assert names(dangling=["true"]) == ["front"]
    assert names(dangling=["false"]) == ["back", "bridge", "host", "none"]
    for bad in ({"colour": ["x"]}, {"type": ["weird"]}, {"dangling": ["maybe"]}):
        with pytest.raises(InvalidArgument, match="invalid filter"):
            service.list(bad)


def test_remove_and_prune(service: NetworkService, tmp_path: Path) -> None:
    a, b, c = service.create("net-a"), service.create("net-b"), service.create("net-c")
    for name in ("bridge", "host", "none"):
        with pytest.raises(PredefinedNetwork, match=f"{name} is a pre-defined network"):
            service.remove(name)
    with pytest.raises(PredefinedNetwork):
        service.remove(service.default().id)
    service.allocate(b, cid(7))
    service.allocate(b, cid(8))
    with ContainerStore(str(tmp_path)) as store:  # names the containers it knows
        store.add(ContainerRecord(id=cid(7), name="web", image_id="sha256:0", image_name="i"))
    with pytest.raises(NetworkInUse) as caught:
        service.remove("net-b")
    assert str(caught.value) == (f"error while removing network: network net-b id {b.id[:12]} has "
                                 f"active endpoints (containers: web, {cid(8)[:12]})")  # fmt: skip
    assert service.remove(a.id[:12]) == a
    with pytest.raises(NoSuchNetwork):
        service.remove("net-a")
    assert service.prune() == [c]
    assert [n.name for n in service.list()] == ["bridge", "host", "net-b", "none"]
    service.release(b, cid(7))
    service.release(b, cid(8))
    assert service.remove("net-b") == b
    assert service.prune() == []
    assert [name for name in os.listdir(service.dir) if "json" in name] == [
        f"{service.default().id}.json"]  # fmt: skip


# --- leases ---------------------------------------------------------------------------------


def test_allocation_order_and_lease_fields(service: NetworkService) -> None:
    net = service.create("n", subnet="10.7.0.0/24")
    leases = [service.allocate(net, cid(i), aliases=["db"] if i == 2 else ()) for i in range(3)]
    assert [lease.ip for lease in leases] == ["10.7.0.2", "10.7.0.3", "10.7.0.4"]
    first = leases[0]
    assert first == Lease(network_id=net.id, container_id=cid(0), ip="10.7.0.2", prefixlen=24,
                          gateway="10.7.0.1", mac="02:42:0a:07:00:02", aliases=())  # fmt: skip
    assert first.address == "10.7.0.2/24" and len(first.endpoint_id) == 64
    assert leases[2].aliases == ("db",)
    assert service.leases(net) == leases
    assert service.leases_of(cid(2)) == [leases[2]]
    # idempotent: the same container gets its lease back
    assert service.allocate(net, cid(1)) == leases[1]
    assert service.allocate(net, cid(1), ip="10.7.0.3") == leases[1]
    with pytest.raises(IPAMError, match=r"already has address 10.7.0.3"):
        service.allocate(net, cid(1), ip="10.7.0.50")


def test_exhaustion_of_a_slash_30(service: NetworkService) -> None:
    net = service.create("tiny", subnet="10.7.0.0/30")  # .1 gateway, .2 the only address
    assert service.allocate(net, cid(1)).ip == "10.7.0.2"
    with pytest.raises(IPAMError, match=r"no available IPv4 addresses .* tiny"):
        service.allocate(net, cid(2))
    service.release(net, cid(1))
    assert service.allocate(net, cid(2)).ip == "10.7.0.2"


def test_explicit_addresses(service: NetworkService) -> None:
    net = service.create("n", subnet="10.7.0.0/24", ip_range="10.7.0.128/25")
    assert service.allocate(net, cid(1), ip="10.7.0.200").ip == "10.7.0.200"
    with pytest.raises(AddressInUse, match=r"10.7.0.200 on network n"):
        service.allocate(net, cid(2), ip="10.7.0.200")
    with pytest.raises(AddressInUse, match=r"10.7.0.1"):
        service.allocate(net, cid(2), ip="10.7.0.1")  # the gateway
    with pytest.raises(IPAMError, match="does not belong"):
        service.allocate(net, cid(2), ip="10.7.0.5")  # on the subnet, outside the range
    with pytest.raises(IPAMError, match="does not belong"):
        service.allocate(net, cid(2), ip="10.8.0.5")
    with pytest.raises(IPAMError, match="ipv6"):
        service.allocate(net, cid(2), ip="fd00::5")
    assert service.allocate(net, cid(2)).ip == "10.7.0.128"  # dynamic ones from the range
    assert [lease.ip for lease in service.leases(net)] == ["10.7.0.128", "10.7.0.200"]


def test_release_and_reuse(service: NetworkService) -> None:
    net = service.create("n", subnet="10.7.0.0/24")
    for i in range(4):
        service.allocate(net, cid(i))
    service.release(net, cid(1))
    service.release(net, cid(1))  # idempotent
    service.release(net, cid(99))
    assert service.allocate(net, cid(5)).ip == "10.7.0.3"  # the lowest free again
    assert service.allocate(net, cid(6)).ip == "10.7.0.6"
    assert service.release_all(cid(5)) == [net.id]
    assert service.leases_of(cid(5)) == []


def test_leases_on_several_networks(service: NetworkService) -> None:
    a = service.create("a", subnet="10.1.0.0/24")
    b = service.create("b", subnet="10.2.0.0/24")
    bridge = service.default()
    for net in (b, bridge, a):
        service.allocate(net, cid(1))
    assert [lease.network_id for lease in service.leases_of(cid(1))] == [a.id, b.id, bridge.id]
    assert service.leases_of(cid(1))[2].ip == "172.18.0.2"
    assert service.lease_holders() == [cid(1)]
    assert [n.name for n in service.stored()] == sorted(["a", "b", "bridge"], key=lambda name: {
        a.name: a.id, b.name: b.id, "bridge": bridge.id}[name])  # fmt: skip
    assert sorted(service.release_all(cid(1))) == sorted([a.id, b.id, bridge.id])
    assert service.lease_holders() == []


def test_allocate_refuses_pseudo_and_removed_networks(service: NetworkService) -> None:
    with pytest.raises(IPAMError, match="gives out no addresses"):
        service.allocate(service.get("host"), cid(1))
    net = service.create("gone", subnet="10.7.0.0/24")
    service.remove("gone")
    with pytest.raises(NoSuchNetwork):
        service.allocate(net, cid(1))
    with pytest.raises(InvalidArgument):
        service.allocate(service.default(), "")


def _allocate_in_child(root: str, network: Network, n: int, start: Any, out: Any) -> None:
    service = NetworkService(root, host_networks=lambda: HOST)
    start.wait()
    try:
        out.put((n, service.allocate(network, cid(n)).ip))
    except Exception as exc:
        out.put((n, f"error: {exc}"))


def test_twenty_processes_allocating_at_once(tmp_path: Path) -> None:
    service = NetworkService(str(tmp_path), host_networks=lambda: HOST)
    net = service.create("busy", subnet="10.7.0.0/24")
    context = multiprocessing.get_context("fork")
    start, out = context.Barrier(20), context.Queue()
    children = [context.Process(target=_allocate_in_child, args=(str(tmp_path), net, n, start, out))
                for n in range(20)]  # fmt: skip
    for child in children:
        child.start()
    results = dict(out.get(timeout=60) for _ in children)
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    assert sorted(results) == list(range(20))
    assert sorted(results.values(), key=lambda ip: int(ip.rsplit(".", 1)[1])) == [
        f"10.7.0.{i}" for i in range(2, 22)]  # fmt: skip
    by_lease = {lease.container_id: lease.ip for lease in service.leases(net)}
    assert by_lease == {cid(n): ip for n, ip in results.items()}


# --- inspect --------------------------------------------------------------------------------


def test_inspect_shape(service: NetworkService) -> None:
    net = service.create("n", subnet="10.7.0.0/24", ip_range="10.7.0.0/25",
                         labels={"b": "2", "a": "1"}, options={"o": "v"})  # fmt: skip
    lease = service.allocate(net, cid(1))
    service.allocate(net, cid(2))
    doc = service.inspect("n", {cid(1): "web"})
    assert list(doc) == ["Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM",
                         "Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly",
                         "Containers", "Options", "Labels"]  # fmt: skip
    assert doc["IPAM"] == {"Driver": "default", "Options": {}, "Config": [
        {"Subnet": "10.7.0.0/24", "IPRange": "10.7.0.0/25", "Gateway": "10.7.0.1"}]}  # fmt: skip
    assert (doc["Name"], doc["Id"], doc["Scope"], doc["Driver"]) == ("n", net.id, "local", "bridge")
    assert (doc["EnableIPv6"], doc["Internal"], doc["Attachable"], doc["Ingress"]) == (
        False, False, False, False)  # fmt: skip
    assert doc["ConfigFrom"] == {"Network": ""} and doc["ConfigOnly"] is False
    assert doc["Containers"] == {
        cid(1): {"Name": "web", "EndpointID": lease.endpoint_id, "MacAddress": "02:42:0a:07:00:02",
                 "IPv4Address": "10.7.0.2/24", "IPv6Address": ""},
        cid(2): {"Name": "", "EndpointID": service.leases(net)[1].endpoint_id,
                 "MacAddress": "02:42:0a:07:00:03", "IPv4Address": "10.7.0.3/24",
                 "IPv6Address": ""},
    }  # fmt: skip
    assert doc["Options"] == {"o": "v"} and list(doc["Labels"]) == ["a", "b"]
    assert json.loads(json.dumps(doc)) == doc
    host = service.inspect("host")
    assert (host["Driver"], host["IPAM"], host["Containers"]) == (
        "host", {"Driver": "default", "Options": {}, "Config": []}, {})  # fmt: skip
    bridge = service.inspect("bridge")
    assert bridge["IPAM"]["Config"] == [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]
    assert bridge["Options"]["com.docker.network.bridge.name"] == f"cv-{bridge['Id'][:12]}"


def test_records_on_disk_survive_a_new_service(tmp_path: Path) -> None:
    make: Callable[[], NetworkService] = lambda: NetworkService(  # noqa: E731
        str(tmp_path), host_networks=lambda: HOST)  # fmt: skip
    net = make().create("n", labels={"a": "b"}, internal=True)
    make().allocate(net, cid(3), aliases=["x", "y"])
    again = make()
    assert again.get("n") == net
    assert again.leases(net)[0].aliases == ("x", "y")
    leftovers = [name for name in os.listdir(again.dir) if ".json." in name]
    assert leftovers == []
