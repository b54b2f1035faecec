"""Shared by the DNS responder's unit tests: network and container ids, a query, an A
record's address."""

from __future__ import annotations

import socket

from cove.engine.network.dns_wire import (
    CLASS_IN,
    RD,
    TYPE_A,
    Message,
    Question,
    Record,
    name_from_text,
)

NET_A = "a" * 64
NET_B = "b" * 64
NET_I = "c" * 64
WEB_ID = "1234567890ab" + "0" * 52
DB_ID = "abcdef012345" + "0" * 52


def query(name: str, qtype: int = TYPE_A, ident: int = 0x1234, flags: int = RD) -> Message:
    return Message(ident, flags, [Question(name_from_text(name), qtype, CLASS_IN)])


def ipv4(record: Record) -> str:
    return socket.inet_ntoa(record.data)
