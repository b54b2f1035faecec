"""The DNS responder without root: the wire format (parsing, building, compression pointers,
truncation), what dns.json answers, upstream lists, dns.json from the network records, and
the server itself on loopback with a high port and a fake upstream (UDP and TCP)."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.engine.network import dns, dns_control
from cove.engine.network.dns import (
    AA,
    CLASS_IN,
    FORMERR,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    QR,
    RA,
    RD,
    REFUSED,
    SERVFAIL,
    TC,
    TTL,
    TYPE_A,
    TYPE_AAAA,
    TYPE_MX,
    TYPE_OPT,
    TYPE_PTR,
    FormatError,
    Message,
    Question,
    Record,
    Table,
    build_message,
    encode_name,
    fit,
    name_from_text,
    parse_message,
    read_name,
)
from cove.engine.network.networks import Network

NET_A = "a" * 64
NET_B = "b" * 64
NET_I = "c" * 64
WEB_ID = "1234567890ab" + "0" * 52
DB_ID = "abcdef012345" + "0" * 52


def query(name: str, qtype: int = TYPE_A, ident: int = 0x1234, flags: int = RD) -> Message:
    return Message(ident, flags, [Question(name_from_text(name), qtype, CLASS_IN)])


def ipv4(record: Record) -> str:
    return socket.inet_ntoa(record.data)


def table_data() -> dict[str, object]:
    return {
        NET_A: {"name": "front", "gateway": "10.213.1.1", "subnet": "10.213.1.0/24",
                "internal": False,
                "records": {"web": ["10.213.1.2"], WEB_ID[:12]: ["10.213.1.2"],
                            "www": ["10.213.1.2"], "db": ["10.213.1.3"],
                            "db.example": ["10.213.1.3"], "cache": ["10.213.1.4", "10.213.1.5"]},
                "ptr": {"10.213.1.2": "web", "10.213.1.3": "db"}},
        NET_B: {"name": "back", "gateway": "10.213.2.1", "subnet": "10.213.2.0/24",
                "internal": False,
                "records": {"secret": ["10.213.2.2"], "db": ["10.213.2.3"]},
                "ptr": {"10.213.2.2": "secret"}},
        NET_I: {"name": "closed", "gateway": "10.213.3.1", "subnet": "10.213.3.0/24",
                "internal": True, "records": {"lonely": ["10.213.3.2"]}, "ptr": {}},
    }  # fmt: skip


@pytest.fixture
def table() -> Table:
    return Table(table_data())


# --- the wire format -------------------------------------------------------------------------


def test_a_query_round_trips_and_has_the_expected_bytes() -> None:
    message = query("web.example.", ident=0xBEEF)
    wire = build_message(message)
    assert wire == (b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
                    b"\x03web\x07example\x00\x00\x01\x00\x01")  # fmt: skip
    assert parse_message(wire) == message


def test_an_answer_with_every_section_round_trips() -> None:
    name = name_from_text("web.example")
    ptr_name = name_from_text("2.1.213.10.in-addr.arpa")
    message = Message(
        7, QR | AA | RD | RA, [Question(name, TYPE_A)],
        answers=[Record(name, TYPE_A, CLASS_IN, TTL, bytes([10, 213, 1, 2])),
                 Record(ptr_name, TYPE_PTR, CLASS_IN, TTL, encode_name(name))],
        authority=[Record(name_from_text("example"), dns.TYPE_NS, CLASS_IN, 60,
                          encode_name(name_from_text("ns.example")))],
        additional=[Record((), TYPE_OPT, 1232, 0, b"")],
    )  # fmt: skip
    assert parse_message(build_message(message)) == message


def test_names_are_compressed_in_answers() -> None:
    name = name_from_text("cache")
    answers = [Record(name, TYPE_A, CLASS_IN, TTL, bytes([10, 0, 0, n])) for n in (1, 2)]
    wire = build_message(Message(1, QR, [Question(name, TYPE_A)], answers))
    # the question's name at offset 12, then each answer's name is a pointer to it
    assert wire.count(b"\x05cache") == 1
    assert wire.count(b"\xc0\x0c") == 2
    assert len(wire) == 12 + 7 + 4 + 2 * (2 + 10 + 4)


def test_ptr_rdata_is_compressed_against_earlier_names() -> None:
    question = name_from_text("web.front")
    message = Message(1, QR, [Question(question, TYPE_A)],
                      [Record(name_from_text("x.in-addr.arpa"), TYPE_PTR, CLASS_IN, TTL,
                              encode_name(question))])  # fmt: skip
    wire = build_message(message)
    assert wire.endswith(b"\x00\x02\xc0\x0c")  # rdlength 2: a pointer to the question
    assert parse_message(wire) == message


def test_compression_pointers_in_an_incoming_query_are_followed() -> None:
    # two questions: "db.example" then "web" + a pointer to "example" (offset 15)
    wire = (struct.pack("!HHHHHH", 9, RD, 2, 0, 0, 1)
            + b"\x02db\x07example\x00" + b"\x00\x01\x00\x01"
            + b"\x03web\xc0\x0f" + b"\x00\x01\x00\x01"
            + b"\x00" + struct.pack("!HHIH", TYPE_OPT, 4096, 0, 0))  # fmt: skip
    message = parse_message(wire)
    assert [q.name for q in message.questions] == [(b"db", b"example"), (b"web", b"example")]
    assert message.udp_limit() == 4096


def test_a_pointer_to_a_pointer_is_followed() -> None:
    wire = (struct.pack("!HHHHHH", 9, 0, 3, 0, 0, 0) + b"\x01a\x00\x00\x01\x00\x01"
            + b"\x01b\xc0\x0c\x00\x01\x00\x01" + b"\xc0\x13\x00\x01\x00\x01")  # fmt: skip
    names = [q.name for q in parse_message(wire).questions]
    assert names == [(b"a",), (b"b", b"a"), (b"b", b"a")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xc0\x0c", "does not point backwards"),  # to itself
        (b"\x01a\xc0\x0c", "does not point backwards"),  # a loop through a label
        (b"\xc0\x20", "does not point backwards"),  # forwards, past the end
        (b"\xc0", "truncated compression pointer"),  # the last byte of the message
        (b"\x05ab", "past the end"),
        (b"\x41a\x00", "unsupported label type"),
        (b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63
         + b"\x00", "longer than 255"),
    ],
)  # fmt: skip
def test_bad_names_are_format_errors(body: bytes, reason: str) -> None:
    wire = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + body
    if body != b"\xc0":
        wire += b"\x00\x01\x00\x01"
    with pytest.raises(FormatError, match=reason):
        parse_message(wire)


def test_trailing_bytes_and_short_headers_are_format_errors() -> None:
    wire = build_message(query("web"))
    with pytest.raises(FormatError):
        parse_message(wire + b"\x00")
    for end in range(len(wire)):
        with pytest.raises(FormatError):
            parse_message(wire[:end])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_any_bytes_parse_or_are_a_format_error(data: bytes) -> None:
    try:
        parse_message(data)
    except FormatError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(min_size=1, max_size=20).filter(lambda b: b"." not in b), max_size=5),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
)
def test_names_and_types_round_trip(labels: list[bytes], ident: int, flags: int,
                                    qtype: int) -> None:  # fmt: skip
    name = tuple(labels)
    message = Message(ident, flags, [Question(name, qtype)],
                      [Record(name, qtype, CLASS_IN, 5, b"\x01\x02")]
                      if qtype not in dns.NAME_TYPES else [])  # fmt: skip
    assert parse_message(build_message(message)) == message


def test_name_text_rules() -> None:
    assert name_from_text("web.") == name_from_text("web") == (b"web",)
    assert name_from_text(".") == name_from_text("") == ()
    with pytest.raises(ValueError):
        name_from_text("a" * 64)
    with pytest.raises(ValueError):
        name_from_text("a..b")
    with pytest.raises(ValueError):
        name_from_text(".".join(["a" * 63] * 4))
    assert read_name(encode_name((b"A", b"b")), 0) == ((b"A", b"b"), 5)


def test_fit_truncates_to_the_header_and_question_with_tc() -> None:
    name = name_from_text("cache")
    answers = [Record(name, TYPE_A, CLASS_IN, TTL, bytes([10, 0, n // 256, n % 256]))
               for n in range(40)]  # fmt: skip
    wire = build_message(Message(3, QR | RD, [Question(name, TYPE_A)], answers))
    assert len(wire) > 512
    assert fit(wire, 65535) == wire
    short = parse_message(fit(wire, 512))
    assert short.flags & TC and short.id == 3 and short.flags & RD
    assert short.questions == [Question(name, TYPE_A)] and short.answers == []


def test_udp_limit_is_512_without_edns_and_never_less() -> None:
    assert query("web").udp_limit() == 512
    message = query("web")
    message.additional.append(Record((), TYPE_OPT, 256, 0, b""))
    assert message.udp_limit() == 512


def test_error_reply_to_garbage() -> None:
    reply = dns.error_reply(b"\x12\x34\x01\x00" + b"\xff" * 10, FORMERR)
    assert reply is not None
    parsed = parse_message(reply)
    assert parsed.id == 0x1234 and parsed.rcode == FORMERR and parsed.flags & QR
    assert dns.error_reply(b"\x12\x34", FORMERR) is None
    assert dns.error_reply(b"\x12\x34\x80\x00" + b"\0" * 8, FORMERR) is None  # a response


# --- what dns.json answers -------------------------------------------------------------------


def answer(table: Table, network: str, message: Message) -> Message | None:
    result = table.answer(table.networks[network], message)
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


def test_parse_upstreams() -> None:
    parsed = dns.parse_upstreams(["10.0.0.1", "10.0.0.2:5353", "::1", "[fe80::1%lo]:54",
                                  "nonsense", "10.0.0.3:x", "[::1]", "300.1.1.1"])  # fmt: skip
    assert parsed == [(socket.AF_INET, "10.0.0.1", 53), (socket.AF_INET, "10.0.0.2", 5353),
                      (socket.AF_INET6, "::1", 53), (socket.AF_INET6, "fe80::1%lo", 54),
                      (socket.AF_INET6, "::1", 53)]  # fmt: skip


def test_upstreams_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COVE_DNS_UPSTREAMS", raising=False)
    assert dns.upstreams_from_env() is None
    monkeypatch.setenv("COVE_DNS_UPSTREAMS", "10.0.0.1:5300, 10.0.0.2")
    assert dns.upstreams_from_env() == [(socket.AF_INET, "10.0.0.1", 5300),
                                        (socket.AF_INET, "10.0.0.2", 53)]  # fmt: skip
    monkeypatch.setenv("COVE_DNS_UPSTREAMS", "")
    assert dns.upstreams_from_env() == []


def test_host_resolvers_skip_a_loopback_stub(tmp_path: Path) -> None:
    etc, systemd = tmp_path / "resolv.conf", tmp_path / "systemd.conf"
    etc.write_text("# stub\nnameserver 127.0.0.53\noptions edns0\nsearch lan\n")
    systemd.write_text("nameserver 10.1.1.1\nnameserver 10.1.1.2\n")
    assert dns.host_resolvers(str(etc), str(systemd)) == ["10.1.1.1", "10.1.1.2"]
    assert dns.host_resolvers(str(etc), str(tmp_path / "none")) == ["127.0.0.53"]
    etc.write_text("nameserver 10.9.9.9\nnameserver 127.0.0.1\n")
    assert dns.host_resolvers(str(etc), str(systemd)) == ["10.9.9.9", "127.0.0.1"]
    assert dns.host_resolvers(str(tmp_path / "none"), str(systemd)) == []


# --- dns.json from the network records -------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "engine")


def make_networks(root: str) -> tuple[Network, Network]:
    from cove.engine.network.networks import NetworkService

    with NetworkService(root, host_networks=lambda: []) as service:
        front = service.create("front", subnet="10.213.1.0/24")
        back = service.create("back", subnet="10.213.2.0/24", internal=True)
        service.allocate(front, WEB_ID, aliases=["WWW", "site."])
        service.allocate(front, DB_ID)
        service.allocate(back, DB_ID, aliases=["store"])
        service.allocate(service.default(), WEB_ID)
    return front, back


def test_records_of_running_containers_on_user_networks(root: str) -> None:
    front, back = make_networks(root)
    data = dns_control.records(root, {WEB_ID: "Web", DB_ID: "db"})
    assert set(data) == {front.id, back.id}
    assert data[front.id] == {
        "name": "front", "gateway": "10.213.1.1", "subnet": "10.213.1.0/24", "internal": False,
        "records": {WEB_ID[:12]: ["10.213.1.2"], DB_ID[:12]: ["10.213.1.3"],
                    "db": ["10.213.1.3"], "site": ["10.213.1.2"], "web": ["10.213.1.2"],
                    "www": ["10.213.1.2"]},
        "ptr": {"10.213.1.2": "Web", "10.213.1.3": "db"},
    }  # fmt: skip
    assert data[back.id]["internal"] is True
    back_records = {DB_ID[:12]: ["10.213.2.2"], "db": ["10.213.2.2"], "store": ["10.213.2.2"]}
    assert data[back.id]["records"] == back_records
    # only running containers have records
    only_db = dns_control.records(root, {DB_ID: "db"})
    assert "web" not in only_db[front.id]["records"]  # type: ignore[operator]


def test_records_without_networks_or_containers(root: str) -> None:
    assert dns_control.records(root, {}) == {}
    make_networks(root)
    assert all(entry["records"] == {} for entry in dns_control.records(root).values())


def test_nameserver_for_user_networks_only(root: str) -> None:
    from cove.engine.network.networks import NetworkService

    make_networks(root)
    with NetworkService(root) as service:
        assert dns_control.nameserver_for(service.get("front")) == "10.213.1.1"
        assert dns_control.nameserver_for(service.get("bridge")) is None
        assert dns_control.nameserver_for(service.get("host")) is None
        assert dns_control.nameserver_for(service.get("none")) is None


def test_update_writes_dns_json_and_starts_nothing_without_containers(root: str) -> None:
    make_networks(root)
    dns_control.update(root, {})
    path = Path(root) / "networks" / "dns.json"
    first = path.stat()
    assert len(json.loads(path.read_text())) == 2
    assert dns_control.running(root) is None
    dns_control.update(root, {})  # unchanged: not rewritten
    assert path.stat().st_ino == first.st_ino


def test_a_stale_pid_file_is_not_a_running_responder(root: str) -> None:
    folder = Path(root) / "networks"
    folder.mkdir(parents=True)
    pid_file = folder / "dns.pid"
    me = os.getpid()
    pid_file.write_text(f"{me} {dns_control.start_time(me) + 1}\n")  # a recycled pid
    assert dns_control.running(root) is None
    pid_file.write_text(f"{me} {dns_control.start_time(me)}\n")
    assert dns_control.running(root) == me
    pid_file.write_text("garbage\n")
    assert dns_control.running(root) is None
    assert dns_control.stop(root) is False


# --- the server on loopback ------------------------------------------------------------------


def free_port() -> int:
    """A port of 127.0.0.1 that is free for UDP and TCP (for now)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port


def listening_server(root: Path, upstreams: list[dns.Upstream], **kwargs: str) -> dns.Server:
    """A Server on a free port of 127.0.0.1, listening (another process may take a port
    between `free_port` and the bind: then another port)."""
    for _ in range(20):
        server = dns.Server(str(root), upstreams=upstreams, port=free_port(), **kwargs)
        server.reload(force=True)
        if "127.0.0.1" in server.listeners:
            return server
        server.close()
    raise AssertionError(f"no free port for the server: {server.unbound}")


class FakeUpstream:
    """A DNS server on 127.0.0.1 (UDP and TCP, one port): example.test -> 198.51.100.7,
    big.test -> 60 addresses (truncated over UDP), fail.test -> SERVFAIL, else NXDOMAIN.
    `silent` drops every query; `seen` counts UDP and TCP queries."""

    def __init__(self, silent: bool = False, noisy: bool = False) -> None:
        self.silent = silent
        self.noisy = noisy  # a forged answer (another id, another name) before each real one
        self.seen = {"udp": 0, "tcp": 0}
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(4)
        self.udp.settimeout(0.05)
        self.tcp.settimeout(0.05)
        self.done = False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def answer(self, data: bytes, tcp: bool) -> bytes:
        message = parse_message(data)
        asked = message.questions[0].name
        name = b".".join(asked).lower()
        reply = dns.reply_to(message, NXDOMAIN)
        if name in (b"example.test", b"big.test"):
            count = 1 if name == b"example.test" else 60
            first = 7 if count == 1 else 0
            reply = dns.reply_to(message, NOERROR, [
                Record(asked, TYPE_A, CLASS_IN, 30, bytes([198, 51, 100, first + n]))
                for n in range(count)
            ])  # fmt: skip
        elif name == b"fail.test":
            reply = dns.reply_to(message, SERVFAIL)
        wire = build_message(reply)
        return wire if tcp else fit(wire, message.udp_limit())

    def loop(self) -> None:
        while not self.done:
            try:
                data, peer = self.udp.recvfrom(65535)
                self.seen["udp"] += 1
                if self.noisy:
                    wire = self.answer(data, tcp=False)
                    self.udp.sendto(bytes([wire[0] ^ 1]) + wire[1:], peer)
                    other = parse_message(data)
                    other.questions = [Question((b"evil", b"test"), TYPE_A)]
                    self.udp.sendto(self.answer(build_message(other), tcp=False), peer)
                if not self.silent:
                    self.udp.sendto(self.answer(data, tcp=False), peer)
            except TimeoutError:
                pass
            try:
                conn, _ = self.tcp.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2)
                (length,) = struct.unpack("!H", conn.recv(2))
                data = b""
                while len(data) < length:
                    data += conn.recv(length - len(data))
                self.seen["tcp"] += 1
                wire = self.answer(data, tcp=True)
                conn.sendall(struct.pack("!H", len(wire)) + wire)

    def close(self) -> None:
        self.done = True
        self.thread.join()
        self.udp.close()
        self.tcp.close()


ServerFactory = Callable[..., tuple[dns.Server, int]]


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream()
    yield fake
    fake.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start a Server on 127.0.0.1:PORT in a thread, with dns.json: one network whose
    gateway is 127.0.0.1 (subnet 127.0.0.0/8) and `records`."""
    started: list[tuple[dns.Server, threading.Thread]] = []

    def factory(
        records: dict[str, list[str]],
        upstreams: list[dns.Upstream],
        subnet: str = "127.0.0.0/8",
        internal: bool = False,
    ) -> tuple[dns.Server, int]:
        root = tmp_path / "engine"
        (root / "networks").mkdir(parents=True, exist_ok=True)
        (root / "networks" / "dns.json").write_text(json.dumps({NET_A: {
            "name": "front", "gateway": "127.0.0.1", "subnet": subnet, "internal": internal,
            "records": records, "ptr": {},
        }}))  # fmt: skip
        server = listening_server(root, upstreams, log_path=str(root / "networks" / "dns.log"))
        port = server.port
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        return server, port

    yield factory
    for server, thread in started:
        server.stop()
        thread.join(5)
        assert not thread.is_alive()


def ask_udp(port: int, message: Message, timeout: float = 5.0) -> Message:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(build_message(message), ("127.0.0.1", port))
        data = sock.recv(65535)
    return parse_message(data)


def ask_tcp(port: int, message: Message) -> Message:
    wire = build_message(message)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(struct.pack("!H", len(wire)) + wire)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack_from("!H", data)[0]:
            chunk = sock.recv(65535)
            assert chunk
            data += chunk
    return parse_message(data[2:])


def test_server_answers_names_over_udp_and_tcp(serve: ServerFactory) -> None:
    _, port = serve({"web": ["10.9.0.2"]}, [])
    for ask in (ask_udp, ask_tcp):
        result = ask(port, query("WEB.", ident=4242))
        assert result.id == 4242 and result.rcode == NOERROR
        assert [ipv4(r) for r in result.answers] == ["10.9.0.2"]


def test_server_forwards_to_the_upstream(serve: ServerFactory, upstream: FakeUpstream) -> None:
    _, port = serve({}, [(socket.AF_INET, "127.0.0.1", upstream.port)])
    result = ask_udp(port, query("example.test", ident=999))
    assert result.id == 999 and [ipv4(r) for r in result.answers] == ["198.51.100.7"]
    assert ask_udp(port, query("nothing.test")).rcode == NXDOMAIN
    assert ask_tcp(port, query("example.test")).answers[0].data == bytes([198, 51, 100, 7])


def test_server_ignores_answers_that_are_not_for_its_query(serve: ServerFactory) -> None:
    noisy = FakeUpstream(noisy=True)
    try:
        _, port = serve({}, [(socket.AF_INET, "127.0.0.1", noisy.port)])
        result = ask_udp(port, query("example.test", ident=12))
        assert result.id == 12 and [ipv4(r) for r in result.answers] == ["198.51.100.7"]
    finally:
        noisy.close()


def test_server_falls_back_to_tcp_when_the_upstream_truncates(
    serve: ServerFactory, upstream: FakeUpstream
) -> None:
    _, port = serve({}, [(socket.AF_INET, "127.0.0.1", upstream.port)])
    # over TCP the client gets all 60 addresses, fetched upstream over TCP
    full = ask_tcp(port, query("big.test"))
    assert len(full.answers) == 60 and not full.flags & TC
    assert upstream.seen == {"udp": 1, "tcp": 1}
    # a UDP client with a large EDNS payload gets them all too
    edns = query("big.test")
    edns.additional.append(Record((), TYPE_OPT, 4096, 0, b""))
    assert len(ask_udp(port, edns).answers) == 60
    # a plain UDP client: truncated, so that it asks again over TCP
    short = ask_udp(port, query("big.test", ident=5))
    assert short.flags & TC and short.answers == [] and short.id == 5
    assert short.questions == query("big.test").questions


def test_server_tries_the_next_upstream_then_answers_servfail(
    serve: ServerFactory, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dns, "UPSTREAM_TIMEOUT", 0.3)
    silent = FakeUpstream(silent=True)
    try:
        closed = (socket.AF_INET, "127.0.0.1", free_port())  # refused at once
        quiet = (socket.AF_INET, "127.0.0.1", silent.port)  # times out
        good = (socket.AF_INET, "127.0.0.1", upstream.port)
        _, port = serve({}, [closed, quiet, good])
        began = time.monotonic()
        result = ask_udp(port, query("example.test"))
        assert [ipv4(r) for r in result.answers] == ["198.51.100.7"]
        assert 0.25 < time.monotonic() - began < 2
        # SERVFAIL upstream counts as a failure too; all failed: SERVFAIL
        _, port = serve({}, [closed, quiet, good])
        result = ask_udp(port, query("fail.test", ident=31))
        assert result.rcode == SERVFAIL and result.id == 31 and result.flags & QR
    finally:
        silent.close()


def test_server_without_upstreams_answers_servfail(serve: ServerFactory) -> None:
    _, port = serve({"web": ["10.9.0.2"]}, [])
    assert ask_udp(port, query("example.test")).rcode == SERVFAIL


def test_server_never_forwards_to_itself(serve: ServerFactory, tmp_path: Path) -> None:
    server, port = serve({}, [])
    server.fixed_upstreams = [(socket.AF_INET, "127.0.0.1", port)]
    assert server.upstreams() == []
    assert ask_udp(port, query("example.test")).rcode == SERVFAIL


def test_server_internal_network_does_not_forward(
    serve: ServerFactory, upstream: FakeUpstream
) -> None:
    _, port = serve({"web": ["10.9.0.2"]}, [(socket.AF_INET, "127.0.0.1", upstream.port)],
                    internal=True)  # fmt: skip
    assert ask_udp(port, query("example.test")).rcode == SERVFAIL
    assert upstream.seen == {"udp": 0, "tcp": 0}
    assert ask_udp(port, query("web")).rcode == NOERROR


def test_server_truncates_a_long_local_answer_over_udp(serve: ServerFactory) -> None:
    addresses = [f"10.9.{n // 250}.{n % 250 + 1}" for n in range(100)]
    _, port = serve({"crowd": addresses}, [])
    short = ask_udp(port, query("crowd"))
    assert short.flags & TC and short.answers == []
    assert sorted(ipv4(r) for r in ask_tcp(port, query("crowd")).answers) == sorted(addresses)


def test_server_refuses_clients_outside_the_network(serve: ServerFactory) -> None:
    _, port = serve({"web": ["10.9.0.2"]}, [], subnet="10.9.0.0/24")
    assert ask_udp(port, query("web")).rcode == REFUSED


def test_server_answers_formerr_to_garbage_and_ignores_responses(serve: ServerFactory) -> None:
    _, port = serve({"web": ["10.9.0.2"]}, [])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(b"\x00\x07\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05ab", ("127.0.0.1", port))
        reply = parse_message(sock.recv(512))
        assert (reply.id, reply.rcode) == (7, FORMERR)
        response = query("web", ident=8, flags=QR)
        sock.sendto(build_message(response), ("127.0.0.1", port))
        sock.sendto(build_message(query("web", ident=9)), ("127.0.0.1", port))
        assert parse_message(sock.recv(512)).id == 9  # the response got no answer


def test_server_reloads_dns_json_when_it_changes(serve: ServerFactory, tmp_path: Path) -> None:
    server, port = serve({"web": ["10.9.0.2"]}, [])
    assert ask_udp(port, query("db")).rcode == SERVFAIL  # unknown, and no upstream
    path = tmp_path / "engine" / "networks" / "dns.json"
    data = json.loads(path.read_text())
    data[NET_A]["records"]["db"] = ["10.9.0.3"]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    time.sleep(dns.RELOAD_EVERY + 0.05)
    result = ask_udp(port, query("db"))
    assert [ipv4(r) for r in result.answers] == ["10.9.0.3"]
    # a network that is gone: its sockets close
    path.write_text("{}")
    time.sleep(dns.RELOAD_EVERY + 0.05)
    with pytest.raises(TimeoutError):
        ask_udp(port, query("db"), timeout=0.3)  # this one triggers the reload...
    assert server.listeners == {}  # ...which closed the sockets
    assert "stopped listening on 127.0.0.1" in (path.parent / "dns.log").read_text()


def test_a_tcp_client_may_send_several_queries_on_one_connection(serve: ServerFactory) -> None:
    _, port = serve({"web": ["10.9.0.2"], "db": ["10.9.0.3"]}, [])
    wires = [build_message(query(name, ident=n)) for n, name in enumerate(["web", "db"])]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(w)) + w for w in wires))
        data = b""
        answers: list[Message] = []
        while len(answers) < 2:
            data += sock.recv(65535)
            while len(data) >= 2 and len(data) >= 2 + struct.unpack_from("!H", data)[0]:
                length = struct.unpack_from("!H", data)[0]
                answers.append(parse_message(data[2 : 2 + length]))
                data = data[2 + length :]
    assert [(a.id, ipv4(a.answers[0])) for a in answers] == [(0, "10.9.0.2"), (1, "10.9.0.3")]


def test_sighup_reloads_at_once_and_sigterm_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server in this (main) thread with its signal handlers; a helper thread asks."""
    monkeypatch.setattr(dns, "RELOAD_EVERY", 3600.0)  # only SIGHUP reloads now
    monkeypatch.setattr(dns, "IDLE_CHECK", 3600.0)
    folder = tmp_path / "engine" / "networks"
    folder.mkdir(parents=True)
    path = folder / "dns.json"

    def write(records: dict[str, list[str]]) -> None:
        entry = {"gateway": "127.0.0.1", "subnet": "127.0.0.0/8", "records": records, "ptr": {}}
        tmp = folder / "dns.json.tmp"
        tmp.write_text(json.dumps({NET_A: entry}))
        os.replace(tmp, path)

    write({"web": ["10.9.0.2"]})
    server = listening_server(tmp_path / "engine", [])
    port = server.port
    before = signal.getsignal(signal.SIGTERM)
    server.setup_signals()
    seen: list[int] = []

    def client() -> None:
        try:
            seen.append(ask_udp(port, query("db")).rcode)  # unknown, no upstream: SERVFAIL
            write({"web": ["10.9.0.2"], "db": ["10.9.0.3"]})
            seen.append(ask_udp(port, query("db")).rcode)  # not reloaded yet
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.2)
            seen.append(ask_udp(port, query("db")).rcode)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=client)
    helper.start()
    server.run()  # until SIGTERM
    helper.join(5)
    assert seen == [SERVFAIL, SERVFAIL, NOERROR]
    assert signal.getsignal(signal.SIGTERM) is before  # handlers given back
    assert server.listeners == {}


def test_a_broken_dns_json_keeps_the_last_table(serve: ServerFactory, tmp_path: Path) -> None:
    _, port = serve({"web": ["10.9.0.2"]}, [])
    path = tmp_path / "engine" / "networks" / "dns.json"
    path.write_text("{not json")
    time.sleep(dns.RELOAD_EVERY + 0.05)
    assert [ipv4(r) for r in ask_udp(port, query("web")).answers] == ["10.9.0.2"]
    log = (path.parent / "dns.log").read_text()
    assert log.count("cannot load") == 1 and "the last one stays" in log
