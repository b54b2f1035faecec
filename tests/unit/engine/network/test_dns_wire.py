"""The DNS wire format without root: parsing, building, compression pointers, truncation."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.engine.network import dns_wire as dns
from cove.engine.network.dns_table import TTL
from cove.engine.network.dns_wire import (
    AA,
    CLASS_IN,
    FORMERR,
    QR,
    RA,
    RD,
    TC,
    TYPE_A,
    TYPE_OPT,
    TYPE_PTR,
    FormatError,
    Message,
    Question,
    Record,
    build_message,
    encode_name,
    fit,
    name_from_text,
    parse_message,
    read_name,
)
from tests.unit.engine.network.dns_helpers import query

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
