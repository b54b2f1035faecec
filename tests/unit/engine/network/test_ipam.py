"""Address management without root: Docker's default pools in order, the subnet choice
around the host's routes and other networks, --subnet/--gateway/--ip-range checks, the
lowest free address, explicit addresses, MAC addresses, /proc/net/route parsing."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from cove.engine.network import ipam
from cove.errors import AddressInUse, InvalidArgument, IPAMError, NetworkConflict

N = IPv4Network
A = IPv4Address


def test_default_pools_are_dockers_in_order() -> None:
    pools = list(ipam.default_pools())
    assert pools[:3] == [N("172.17.0.0/16"), N("172.18.0.0/16"), N("172.19.0.0/16")]
    assert pools[14] == N("172.31.0.0/16")
    assert pools[15:17] == [N("192.168.0.0/20"), N("192.168.16.0/20")]
    assert pools[-1] == N("192.168.240.0/20")
    assert len(pools) == 15 + 16


def test_choose_subnet_takes_the_first_free_pool() -> None:
    assert ipam.choose_subnet([], []) == N("172.17.0.0/16")


def test_choose_subnet_skips_host_routes_and_other_networks() -> None:
    host = [N("172.17.0.0/16"), N("172.18.5.0/24")]  # docker0, and a route inside 172.18
    taken = [N("172.19.0.0/16")]
    assert ipam.choose_subnet(taken, host) == N("172.20.0.0/16")
    # a wide route covering several pools skips them all
    assert ipam.choose_subnet([], [N("172.16.0.0/12")]) == N("192.168.0.0/20")
    # a host route of 192.168.0.0/24 skips the first /20 only
    assert ipam.choose_subnet([N("172.16.0.0/12")], [N("192.168.0.0/24")]) == N("192.168.16.0/20")


def test_choose_subnet_when_every_pool_is_used() -> None:
    with pytest.raises(IPAMError, match="non-overlapping IPv4 address pool"):
        ipam.choose_subnet([N("172.16.0.0/12")], [N("192.168.0.0/16")])


def test_parse_subnet() -> None:
    assert ipam.parse_subnet("10.1.0.0/16") == N("10.1.0.0/16")
    assert ipam.parse_subnet("10.1.2.3/16") == N("10.1.0.0/16")  # host bits dropped
    assert ipam.parse_subnet("10.1.0.0/30") == N("10.1.0.0/30")
    for bad, why in [("nonsense", "IPv4 CIDR"), ("10.1.0.0/31", "too small"),
                     ("fd00::/64", "ipv6"), ("10.1.0.0", "prefix length")]:  # fmt: skip
        with pytest.raises(InvalidArgument, match=why):
            ipam.parse_subnet(bad)


def test_parse_gateway_and_ip_range() -> None:
    subnet = N("10.1.0.0/24")
    assert ipam.parse_gateway("", subnet) == A("10.1.0.1")
    assert ipam.parse_gateway("10.1.0.254", subnet) == A("10.1.0.254")
    for bad in ("10.2.0.1", "10.1.0.0", "10.1.0.255", "x"):
        with pytest.raises(InvalidArgument):
            ipam.parse_gateway(bad, subnet)
    assert ipam.parse_ip_range("", subnet) is None
    assert ipam.parse_ip_range("10.1.0.128/25", subnet) == N("10.1.0.128/25")
    with pytest.raises(InvalidArgument, match="not inside subnet"):
        ipam.parse_ip_range("10.1.1.0/25", subnet)


def test_check_overlap_names_the_other_network() -> None:
    ipam.check_overlap(N("10.2.0.0/16"), [("a", N("10.1.0.0/16"))])
    with pytest.raises(NetworkConflict) as caught:
        ipam.check_overlap(N("10.1.2.0/24"), [("a", N("10.1.0.0/16"))])
    assert str(caught.value).startswith("Pool overlaps with other one on this address space")
    assert "network a" in str(caught.value)


def test_first_free_skips_network_gateway_broadcast_and_used() -> None:
    subnet, gateway = N("10.1.0.0/29"), A("10.1.0.1")  # .0 net, .1 gw, .7 broadcast
    assert ipam.first_free(subnet, gateway, None, set()) == A("10.1.0.2")
    used = {int(A(f"10.1.0.{i}")) for i in range(2, 6)}
    assert ipam.first_free(subnet, gateway, None, used) == A("10.1.0.6")
    used.add(int(A("10.1.0.6")))
    assert ipam.first_free(subnet, gateway, None, used) is None
    # a gateway elsewhere frees .1
    assert ipam.first_free(subnet, A("10.1.0.6"), None, set()) == A("10.1.0.1")


def test_first_free_in_an_ip_range() -> None:
    subnet, gateway = N("10.1.0.0/24"), A("10.1.0.1")
    pool = N("10.1.0.128/30")
    assert ipam.first_free(subnet, gateway, pool, set()) == A("10.1.0.128")
    used = {int(A("10.1.0.128")), int(A("10.1.0.129")), int(A("10.1.0.130"))}
    assert ipam.first_free(subnet, gateway, pool, used) == A("10.1.0.131")
    used.add(int(A("10.1.0.131")))
    assert ipam.first_free(subnet, gateway, pool, used) is None
    # a range at the top of the subnet never gives the broadcast address
    top = N("10.1.0.252/30")
    assert ipam.first_free(subnet, gateway, top, {int(A(f"10.1.0.{i}")) for i in (252, 253)}) \
        == A("10.1.0.254")  # fmt: skip
    assert ipam.first_free(subnet, gateway, top, {int(A(f"10.1.0.{i}")) for i in (252, 253, 254)}) \
        is None  # fmt: skip


def test_check_requested() -> None:
    subnet, gateway = N("10.1.0.0/24"), A("10.1.0.1")
    assert ipam.check_requested("10.1.0.9", subnet, gateway, None, "n") == A("10.1.0.9")
    with pytest.raises(AddressInUse, match=r"10.1.0.1 on network n"):
        ipam.check_requested("10.1.0.1", subnet, gateway, None, "n")
    with pytest.raises(IPAMError, match="does not belong"):
        ipam.check_requested("10.2.0.9", subnet, gateway, None, "n")
    with pytest.raises(IPAMError, match="does not belong"):
        ipam.check_requested("10.1.0.9", subnet, gateway, N("10.1.0.128/25"), "n")
    for bad in ("10.1.0.0", "10.1.0.255"):
        with pytest.raises(IPAMError, match="network or broadcast"):
            ipam.check_requested(bad, subnet, gateway, None, "n")
    with pytest.raises(IPAMError, match="want an IPv4 address"):
        ipam.check_requested("ten", subnet, gateway, None, "n")


def test_mac_is_dockers() -> None:
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    assert ipam.mac_for(A("10.255.1.254")) == "02:42:0a:ff:01:fe"


def test_proc_route_networks(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "junk\n"
    )
    assert ipam.proc_route_networks(str(table)) == [N("172.17.0.0/16"), N("192.0.2.0/24")]
    assert ipam.proc_route_networks(str(tmp_path / "missing")) == []


def test_host_networks_reads_this_host() -> None:
    found = ipam.host_networks()
    assert all(isinstance(network, N) and network.prefixlen > 0 for network in found)
