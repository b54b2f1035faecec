"""Published port specs without root: every `-p` form Docker takes (IPv4), the errors,
`-P` from ExposedPorts, --expose, picking a free host port, `cove port`'s lines, and the
record's settings["ports"] entries."""

from __future__ import annotations

import socket

import pytest

from cove.engine.network.ports import (
    PortBinding,
    expose_all,
    format_host,
    format_port_line,
    parse_expose,
    parse_port_proto,
    parse_publish,
    pick_free_port,
    published,
)
from cove.errors import InvalidArgument, InvalidPort, NetworkError

B = PortBinding


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [B("", 0, 80, "tcp")]),
        ("80/udp", [B("", 0, 80, "udp")]),
        ("8080:80", [B("", 8080, 80, "tcp")]),
        ("8080:80/tcp", [B("", 8080, 80, "tcp")]),
        ("8080:80/UDP", [B("", 8080, 80, "udp")]),
        ("127.0.0.1:8080:80", [B("127.0.0.1", 8080, 80, "tcp")]),
        ("127.0.0.1::80", [B("127.0.0.1", 0, 80, "tcp")]),
        ("127.0.0.1::80/udp", [B("127.0.0.1", 0, 80, "udp")]),
        ("0.0.0.0:8080:80", [B("", 8080, 80, "tcp")]),
        (":8080:80", [B("", 8080, 80, "tcp")]),
        ("0:80", [B("", 0, 80, "tcp")]),
        ("8000-8002:80-82", [B("", 8000, 80, "tcp"), B("", 8001, 81, "tcp"),
                             B("", 8002, 82, "tcp")]),
        ("10.0.0.1:8000-8001:80-81/udp", [B("10.0.0.1", 8000, 80, "udp"),
                                          B("10.0.0.1", 8001, 81, "udp")]),
        ("80-82", [B("", 0, 80, "tcp"), B("", 0, 81, "tcp"), B("", 0, 82, "tcp")]),
        ("127.0.0.1::80-81", [B("127.0.0.1", 0, 80, "tcp"), B("127.0.0.1", 0, 81, "tcp")]),
        ("65535:1", [B("", 65535, 1, "tcp")]),
        (" 8080:80 ", [B("", 8080, 80, "tcp")]),
    ],
)  # fmt: skip
def test_parse_publish(spec: str, expected: list[PortBinding]) -> None:
    assert parse_publish(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no port specified"),
        ("8080:", "no port specified"),
        ("abc", "invalid containerPort: abc"),
        ("x:80", "invalid hostPort: x"),
        ("8080:80/sctp", "invalid proto: sctp"),
        ("8080:80/icmp", "invalid proto: icmp"),
        ("80/", "invalid proto"),
        ("0", "invalid containerPort: 0"),
        ("65536", "invalid containerPort: 65536"),
        ("70000:80", "invalid hostPort: 70000"),
        ("1.2.3:80:80", "invalid ip address: 1.2.3"),
        ("localhost:80:80", "invalid ip address: localhost"),
        ("[::1]:8080:80", "ipv6 host addresses are not supported yet"),
        ("::1:8080:80", "ipv6 host addresses are not supported yet"),
        ("fe80::1:8080:80", "ipv6 host addresses are not supported yet"),
        ("1:2:3:4", "invalid port format"),
        ("8000-8003:80-82", "invalid ranges specified for container and host Ports"),
        ("8080:80-82", "invalid ranges specified"),
        ("8000-8010:80", "host port range for one container port is not supported"),
        ("82-80", "end comes before the start"),
        ("80-", "invalid containerPort"),
        ("8080:-80", "invalid containerPort"),
        ("+80", "invalid containerPort"),
        ("٨٠", "invalid containerPort"),  # digits, but not ASCII ones
    ],
)
def test_parse_publish_errors(spec: str, message: str) -> None:
    with pytest.raises(InvalidPort, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_publish(spec)


def test_invalid_port_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        parse_publish("nope")


def test_parse_port_proto_and_expose() -> None:
    assert parse_port_proto("80") == (80, "tcp")
    assert parse_port_proto("53/udp") == (53, "udp")
    for bad in ("80-81", "x", "80/sctp", ""):
        with pytest.raises(InvalidPort):
            parse_port_proto(bad)
    assert parse_expose("80") == ["80/tcp"]
    assert parse_expose("7000-7002/udp") == ["7000/udp", "7001/udp", "7002/udp"]


def test_expose_all_from_exposed_ports() -> None:
    exposed: dict[str, object] = {"443/tcp": {}, "53/udp": {}, "80": {}, "53/tcp": {},
                                  "80/tcp": {}}  # fmt: skip
    assert expose_all(exposed) == [B("", 0, 53, "tcp"), B("", 0, 53, "udp"),
                                   B("", 0, 80, "tcp"), B("", 0, 443, "tcp")]  # fmt: skip
    assert expose_all({}) == []
    with pytest.raises(InvalidPort):
        expose_all({"eighty/tcp": {}})


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_pick_free_port_binds_and_avoids_taken(protocol: str) -> None:
    port = pick_free_port(protocol, "127.0.0.1", set())
    assert 0 < port < 65536
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", port))  # it was free
    taken = {pick_free_port(protocol, "", set()) for _ in range(5)}
    for _ in range(20):
        assert pick_free_port(protocol, "", taken) not in taken


def test_pick_free_port_errors() -> None:
    with pytest.raises(InvalidPort):
        pick_free_port("sctp", "", set())
    with pytest.raises(NetworkError, match=r"cannot pick a free tcp port on 192.0.2.77"):
        pick_free_port("tcp", "192.0.2.77", set())  # not an address of this host


def test_port_lines() -> None:
    assert format_port_line(B("", 8080, 80, "tcp")) == "80/tcp -> 0.0.0.0:8080"
    assert format_port_line(B("127.0.0.1", 5353, 53, "udp")) == "53/udp -> 127.0.0.1:5353"
    assert format_host(B("", 8080, 80, "tcp")) == "0.0.0.0:8080"


def test_settings_entries_round_trip_and_sort() -> None:
    bindings = [B("127.0.0.1", 9000, 443, "tcp"), B("", 8080, 80, "tcp"),
                B("", 5353, 53, "udp"), B("", 8443, 443, "tcp")]  # fmt: skip
    settings = {"ports": [b.to_dict() for b in bindings] + [{"bogus": 1}, "junk",
                                                             {"container_port": "80"}]}  # fmt: skip
    assert published(settings) == [
        B("", 5353, 53, "udp"), B("", 8080, 80, "tcp"), B("", 8443, 443, "tcp"),
        B("127.0.0.1", 9000, 443, "tcp")]  # fmt: skip
    assert published({}) == [] and published({"ports": "x"}) == []
    assert B("", 1, 2, "udp").to_dict() == {"host_ip": "", "host_port": 1, "container_port": 2,
                                            "protocol": "udp"}  # fmt: skip
    assert B.from_dict({"container_port": 80}) == B("", 0, 80, "tcp")
    assert B("", 0, 80).key == "80/tcp"
