"""What the DNS responder answers by itself (dns_table), without root: names, aliases,
PTR, per-network scoping (a client on several networks), what is forwarded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cove.engine.network import dns_wire as dns
from cove.engine.network.dns_table import Table
from cove.engine.network.dns_wire import (
    AA,
    FORMERR,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    QR,
    RA,
    RD,
    SERVFAIL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_MX,
    TYPE_PTR,
    Message,
    Question,
    build_message,
    name_from_text,
    parse_message,
    read_name,
)
from tests.unit.engine.network.dns_helpers import NET_A, NET_B, NET_I, WEB_ID, ipv4, query


def table_data() -> dict[str, object]:
    return {
        NET_A: {"name": "front", "gateway": "10.213.1.1", "subnet": "10.213.1.0/24",
                "internal": False,
                "records": {"web": ["10.213.1.2"], WEB_ID[:12]: ["10.213.1.2"],
                            "www": ["10.213.1.2"], "db": ["10.213.1.3"],
                            "db.example": ["10.213.1.3"], "cache": ["10.213.1.4", "10.213.1.5"]},
                "ptr": {"10.213.1.2": "web", "10.213.1.3": "db"},
                "clients": {"10.213.1.3": {"networks": [NET_A, NET_B]},
                            "10.213.1.2": {"networks": [NET_A]}}},
        NET_B: {"name": "back", "gateway": "10.213.2.1", "subnet": "10.213.2.0/24",
                "internal": False,
                "records": {"secret": ["10.213.2.2"], "db": ["10.213.2.3"]},
                "ptr": {"10.213.2.2": "secret", "10.213.2.3": "db"},
                # db is on both networks (front first); secret on back only
                "clients": {"10.213.2.3": {"networks": [NET_A, NET_B]},
                            "10.213.2.2": {"networks": [NET_B]}}},
        NET_I: {"name": "closed", "gateway": "10.213.3.1", "subnet": "10.213.3.0/24",
                "internal": True, "records": {"lonely": ["10.213.3.2"]}, "ptr": {},
                # .9 is also on the default bridge: it has egress
                "clients": {"10.213.3.2": {"networks": [NET_I], "egress": False},
                            "10.213.3.9": {"networks": [NET_I], "egress": True}}},
    }  # fmt: skip


@pytest.fixture
def table() -> Table:
    return Table(table_data())


# --- what dns.json answers -------------------------------------------------------------------


def answer(table: Table, network: str, message: Message, client: str = "") -> Message | None:
    result = table.answer(table.networks[network], message, client)
    if result is not None:  # what goes out on the wire
        result = parse_message(build_message(result))
    return result


@pytest.mark.parametrize("name", ["web", "web.", "WEB", "Web.", WEB_ID[:12], "www",
                                  WEB_ID[:12].upper() + "."])  # fmt: skip
def test_a_record_of_a_name_short_id_or_alias(table: Table, name: str) -> None:
    result = answer(table, NET_A, query(name, ident=77))
    assert result is not None
    assert result.id == 77 and result.rcode == NOERROR
    assert result.flags & (QR | AA | RD | RA) == QR | AA | RD | RA
    assert [(r.name, r.rtype, r.ttl, ipv4(r)) for r in result.answers] == [
        (name_from_text(name), TYPE_A, 600, "10.213.1.2")
    ]
    assert result.questions == query(name).questions  # the case as asked


def test_a_name_followed_by_its_network_resolves_as_docker_does(table: Table) -> None:
    for name in ("web.front", "WWW.Front.", "db.example.front"):
        result = answer(table, NET_A, query(name))
        assert result is not None and result.rcode == NOERROR and result.answers, name
        assert result.answers[0].name == name_from_text(name)
    assert answer(table, NET_B, query("web.front")) is None  # not known there: forwarded
    assert answer(table, NET_A, query("secret.back")) is None


def test_dotted_container_names_resolve(table: Table) -> None:
    result = answer(table, NET_A, query("DB.Example."))
    assert result is not None and [ipv4(r) for r in result.answers] == ["10.213.1.3"]


def test_names_resolve_to_the_addresses_of_the_network_asked_on(table: Table) -> None:
    on_a = answer(table, NET_A, query("db"))
    on_b = answer(table, NET_B, query("db"))
    assert on_a is not None and on_b is not None
    assert [ipv4(r) for r in on_a.answers] == ["10.213.1.3"]
    assert [ipv4(r) for r in on_b.answers] == ["10.213.2.3"]


def test_a_name_of_another_network_is_nxdomain_not_forwarded(table: Table) -> None:
    for qtype in (TYPE_A, TYPE_AAAA):
        result = answer(table, NET_A, query("secret", qtype))
        assert result is not None and result.rcode == NXDOMAIN and result.answers == []
    result = answer(table, NET_B, query("www"))
    assert result is not None and result.rcode == NXDOMAIN


def test_aaaa_and_other_types_of_a_known_name_are_noerror_without_answers(table: Table) -> None:
    for qtype in (TYPE_AAAA, TYPE_MX, dns.TYPE_TXT, 65, 4242):
        result = answer(table, NET_A, query("web", qtype))
        assert result is not None
        assert (result.rcode, result.answers) == (NOERROR, [])
        assert result.flags & AA


def test_any_gives_the_a_records(table: Table) -> None:
    result = answer(table, NET_A, query("web", dns.TYPE_ANY))
    assert result is not None and [ipv4(r) for r in result.answers] == ["10.213.1.2"]


def test_several_addresses_are_rotated(table: Table) -> None:
    seen = set()
    for _ in range(4):
        result = answer(table, NET_A, query("cache"))
        assert result is not None
        addresses = [ipv4(r) for r in result.answers]
        assert sorted(addresses) == ["10.213.1.4", "10.213.1.5"]
        seen.add(addresses[0])
    assert seen == {"10.213.1.4", "10.213.1.5"}


def test_ptr_of_a_container_address(table: Table) -> None:
    result = answer(table, NET_A, query("2.1.213.10.in-addr.arpa.", TYPE_PTR))
    assert result is not None and result.rcode == NOERROR
    [record] = result.answers
    assert record.rtype == TYPE_PTR and record.ttl == 600
    assert read_name(record.data, 0)[0] == (b"web",)
    upper = answer(table, NET_A, query("3.1.213.10.IN-ADDR.ARPA", TYPE_PTR))
    assert upper is not None and read_name(upper.answers[0].data, 0)[0] == (b"db",)


def test_ptr_inside_the_engine_subnets_but_unknown_here_is_nxdomain(table: Table) -> None:
    for address in ("9.1.213.10", "2.2.213.10"):  # free on A; a container of network B
        result = answer(table, NET_A, query(f"{address}.in-addr.arpa", TYPE_PTR))
        assert result is not None and result.rcode == NXDOMAIN


def test_other_names_are_forwarded(table: Table) -> None:
    for message in (query("example.org"), query("4.3.2.1.in-addr.arpa", TYPE_PTR),
                    query("web.back"), query("1.213.10.in-addr.arpa", TYPE_PTR),
                    query("example.org", 4242), query("secret.example")):  # fmt: skip
        assert table.answer(table.networks[NET_A], message) is None


def test_other_classes_and_labels_with_dots_are_forwarded(table: Table) -> None:
    chaos = Message(1, RD, [Question((b"version", b"bind"), dns.TYPE_TXT, 3)])
    assert table.answer(table.networks[NET_A], chaos) is None
    dotted = Message(1, RD, [Question((b"db.example",), TYPE_A)])
    assert table.answer(table.networks[NET_A], dotted) is None


def test_an_internal_network_does_not_forward(table: Table) -> None:
    result = answer(table, NET_I, query("example.org"))
    assert result is not None and result.rcode == SERVFAIL
    known = answer(table, NET_I, query("lonely"))
    assert known is not None and [ipv4(r) for r in known.answers] == ["10.213.3.2"]


def test_other_opcodes_and_question_counts(table: Table) -> None:
    status = query("web", flags=RD | (2 << 11))
    result = answer(table, NET_A, status)
    assert result is not None and result.rcode == NOTIMP
    two = query("web")
    two.questions.append(Question((b"db",), TYPE_A))
    result = answer(table, NET_A, two)
    assert result is not None and result.rcode == FORMERR
    none = Message(5, RD)
    result = answer(table, NET_A, none)
    assert result is not None and result.rcode == FORMERR


def test_the_table_reads_dns_json(tmp_path: Path) -> None:
    path = tmp_path / "dns.json"
    path.write_text(json.dumps(table_data()))
    table = Table.load(str(path))
    assert set(table.by_gateway) == {"10.213.1.1", "10.213.2.1", "10.213.3.1"}
    assert table.by_gateway["10.213.1.1"].accepts("10.213.1.77")
    assert not table.by_gateway["10.213.1.1"].accepts("10.213.2.2")
    assert not table.by_gateway["10.213.1.1"].accepts("fe80::1")
    path.write_text("[]")
    with pytest.raises(ValueError):
        Table.load(str(path))


def test_unencodable_names_get_no_ptr() -> None:
    long_name = "x" * 70
    data = {NET_A: {"gateway": "10.0.0.1", "subnet": "10.0.0.0/24",
                    "records": {long_name: ["10.0.0.2"]},
                    "ptr": {"10.0.0.2": long_name}}}  # fmt: skip
    table = Table(data)  # type: ignore[arg-type]
    assert table.networks[NET_A].ptr == {}
    result = answer(table, NET_A, query("2.0.0.10.in-addr.arpa", TYPE_PTR))
    assert result is not None and result.rcode == NXDOMAIN


# --- upstreams -------------------------------------------------------------------------------


# --- a container on several networks -----------------------------------------------------------


def addresses(result: Message | None) -> list[str]:
    assert result is not None and result.rcode == NOERROR
    return [ipv4(r) for r in result.answers]


def test_a_client_on_two_networks_resolves_the_names_of_both(table: Table) -> None:
    # db asks on front (its first network), from its address there
    assert addresses(answer(table, NET_A, query("secret"), "10.213.1.3")) == ["10.213.2.2"]
    assert addresses(answer(table, NET_A, query("web"), "10.213.1.3")) == ["10.213.1.2"]
    assert addresses(answer(table, NET_A, query("secret.back"), "10.213.1.3")) == ["10.213.2.2"]
    ptr = answer(table, NET_A, query("2.2.213.10.in-addr.arpa", TYPE_PTR), "10.213.1.3")
    assert ptr is not None and read_name(ptr.answers[0].data, 0)[0] == (b"secret",)
    # and asking on back, from its address there
    assert addresses(answer(table, NET_B, query("www"), "10.213.2.3")) == ["10.213.1.2"]


def test_a_name_on_both_networks_resolves_on_the_network_asked_first(table: Table) -> None:
    assert addresses(answer(table, NET_A, query("db"), "10.213.1.3")) == ["10.213.1.3"]
    assert addresses(answer(table, NET_B, query("db"), "10.213.2.3")) == ["10.213.2.3"]


def test_clients_on_one_network_resolve_the_one_on_two_but_not_the_other_side(
    table: Table,
) -> None:
    # web (front only) finds db by its front address; not secret (back only)
    assert addresses(answer(table, NET_A, query("db"), "10.213.1.2")) == ["10.213.1.3"]
    hidden = answer(table, NET_A, query("secret"), "10.213.1.2")
    assert hidden is not None and hidden.rcode == NXDOMAIN
    ptr = answer(table, NET_A, query("2.2.213.10.in-addr.arpa", TYPE_PTR), "10.213.1.2")
    assert ptr is not None and ptr.rcode == NXDOMAIN
    # secret (back only) finds db by its back address; not web
    assert addresses(answer(table, NET_B, query("db"), "10.213.2.2")) == ["10.213.2.3"]
    other = answer(table, NET_B, query("web"), "10.213.2.2")
    assert other is not None and other.rcode == NXDOMAIN
    assert answer(table, NET_B, query("web.front"), "10.213.2.2") is None  # as any dotted name


def test_a_client_with_egress_on_an_internal_network_forwards(table: Table) -> None:
    assert answer(table, NET_I, query("example.org"), "10.213.3.9") is None
    closed = answer(table, NET_I, query("example.org"), "10.213.3.2")
    assert closed is not None and closed.rcode == SERVFAIL


def test_clients_are_read_from_dns_json() -> None:
    table = Table(table_data())
    client = table.networks[NET_A].client("::ffff:10.213.1.3")
    assert client is not None and client.networks == (NET_A, NET_B) and client.egress
    assert client.dns == () and client.pid == 0
    assert table.networks[NET_A].client("10.213.1.99") is None
    data = table_data()
    data[NET_B]["clients"]["10.213.2.2"] = {"dns": ["10.9.9.9"], "pid": 42, "start": 7}  # type: ignore[index]
    lone = Table(data).networks[NET_B].client("10.213.2.2")
    assert lone is not None and (lone.networks, lone.dns, lone.pid, lone.start) == (
        (NET_B,), ("10.9.9.9",), 42, 7)  # fmt: skip
    data[NET_B]["clients"]["10.213.2.2"] = {"pid": "42"}  # type: ignore[index]
    with pytest.raises(ValueError):
        Table(data)
