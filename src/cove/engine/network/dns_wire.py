"""The DNS wire format (RFC 1035) as the engine's responder (`dns.py`) needs it: messages
parsed and built, names compressed, answers fitted to what a UDP client takes.

- Names are tuples of labels (bytes, case kept as received). Compression pointers in a
  message must point strictly backwards (so no loop is possible); a name is at most 255
  bytes on the wire, a label 63.
- NS, CNAME and PTR rdata (`NAME_TYPES`) are names: `Record.data` holds them uncompressed
  (`encode_name`), whatever the message used; `build_message` compresses them again.
- A UDP answer is at most 512 bytes or the client's EDNS payload size (`Message.udp_limit`);
  `fit` cuts a longer one to the header and question with TC set, and the client asks again
  over TCP.

Only stdlib; nothing here does I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR, TYPE_MX, TYPE_TXT = 1, 2, 5, 6, 12, 15, 16
TYPE_AAAA, TYPE_OPT, TYPE_ANY = 28, 41, 255
CLASS_IN, CLASS_ANY = 1, 255
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
OPCODE_MASK, OPCODE_QUERY = 0x7800, 0
RCODE_MASK = 0x000F

PORT = 53
UDP_LIMIT = 512  # RFC 1035, without EDNS
NAME_TYPES = frozenset({TYPE_NS, TYPE_CNAME, TYPE_PTR})  # rdata is one domain name

HEADER = struct.Struct("!HHHHHH")
QUESTION_FIELDS = struct.Struct("!HH")
_RECORD = struct.Struct("!HHIH")
LENGTH = struct.Struct("!H")


class FormatError(ValueError):
    """A DNS message that cannot be parsed."""


# --- messages --------------------------------------------------------------------------------


class Question:
    """One question: `name` is a tuple of labels (bytes, as received: case kept)."""

    __slots__ = ("name", "qclass", "qtype")

    def __init__(self, name: tuple[bytes, ...], qtype: int, qclass: int = CLASS_IN) -> None:
        self.name, self.qtype, self.qclass = name, qtype, qclass

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Question):
            return NotImplemented
        return (self.name, self.qtype, self.qclass) == (other.name, other.qtype, other.qclass)

    def __repr__(self) -> str:
        return f"Question({name_text(self.name)!r}, {self.qtype}, {self.qclass})"


class Record:
    """One resource record. `data` is the rdata; for NS, CNAME and PTR it is the domain name
    in uncompressed wire form (`encode_name`), whatever the message used."""

    __slots__ = ("data", "name", "rclass", "rtype", "ttl")

    def __init__(
        self, name: tuple[bytes, ...], rtype: int, rclass: int, ttl: int, data: bytes
    ) -> None:
        self.name, self.rtype, self.rclass, self.ttl, self.data = name, rtype, rclass, ttl, data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self._key() == other._key()

    def _key(self) -> tuple[object, ...]:
        return (self.name, self.rtype, self.rclass, self.ttl, self.data)

    def __repr__(self) -> str:
        fields = f"{self.rtype}, {self.rclass}, {self.ttl}, {self.data!r}"
        return f"Record({name_text(self.name)!r}, {fields})"


class Message:
    """A DNS message: id, the 16 flag bits (QR, opcode, AA, TC, RD, RA, Z, rcode) and the four
    sections."""

    __slots__ = ("additional", "answers", "authority", "flags", "id", "questions")

    def __init__(
        self,
        id: int,
        flags: int,
        questions: list[Question] | None = None,
        answers: list[Record] | None = None,
        authority: list[Record] | None = None,
        additional: list[Record] | None = None,
    ) -> None:
        self.id, self.flags = id, flags
        self.questions = questions or []
        self.answers = answers or []
        self.authority = authority or []
        self.additional = additional or []

    @property
    def rcode(self) -> int:
        return self.flags & RCODE_MASK

    @property
    def opcode(self) -> int:
        return (self.flags & OPCODE_MASK) >> 11

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return all(getattr(self, slot) == getattr(other, slot) for slot in self.__slots__)

    def __repr__(self) -> str:
        return (f"Message(id={self.id}, flags={self.flags:#06x}, questions={self.questions}, "
                f"answers={self.answers}, authority={self.authority}, "
                f"additional={self.additional})")  # fmt: skip

    def udp_limit(self) -> int:
        """The largest UDP answer this query's sender takes: 512, or its EDNS payload size."""
        for record in self.additional:
            if record.rtype == TYPE_OPT:
                return max(UDP_LIMIT, record.rclass)
        return UDP_LIMIT


def name_from_text(text: str) -> tuple[bytes, ...]:
    """The labels of "web", "web." -> (b"web",); "." or "" -> () (the root). ValueError for
    an empty label or one longer than 63 bytes, or a name longer than 255 bytes."""
    text = text.removesuffix(".")
    if not text:
        return ()
    labels = tuple(label.encode("ascii") for label in text.split("."))
    encode_name(labels)  # the checks
    return labels


def name_text(labels: Iterable[bytes]) -> str:
    """The presentation form, without the trailing dot ("" for the root)."""
    return ".".join(label.decode("latin-1") for label in labels)


def encode_name(
    labels: tuple[bytes, ...], table: dict[tuple[bytes, ...], int] | None = None, at: int = 0
) -> bytes:
    """The wire form of a name. With `table` (lowercased suffix -> offset in the message), the
    longest suffix already written becomes a pointer, and the suffixes written here are added
    (`at` is where this name starts in the message)."""
    out = bytearray()
    if sum(len(label) + 1 for label in labels) + 1 > 255:
        raise ValueError(f"name too long: {name_text(labels)!r}")
    for index, label in enumerate(labels):
        if not label or len(label) > 63:
            raise ValueError(f"bad label {label!r} in {name_text(labels)!r}")
        if table is not None:
            suffix = tuple(part.lower() for part in labels[index:])
            offset = table.get(suffix)
            if offset is not None:
                out += LENGTH.pack(0xC000 | offset)
                return bytes(out)
            if at + len(out) < 0x4000:
                table[suffix] = at + len(out)
        out.append(len(label))
        out += label
    out.append(0)
    return bytes(out)


def read_name(data: bytes, offset: int) -> tuple[tuple[bytes, ...], int]:
    """The name at `offset` and the offset after it. Pointers must go strictly backwards of
    the segment they end (so a loop is impossible); FormatError for a bad message."""
    labels: list[bytes] = []
    after = -1
    segment = offset
    wire = 1
    while True:
        if offset >= len(data):
            raise FormatError("name runs past the end of the message")
        length = data[offset]
        if length >= 0xC0:
            if offset + 1 >= len(data):
                raise FormatError("truncated compression pointer")
            target = ((length & 0x3F) << 8) | data[offset + 1]
            if after < 0:
                after = offset + 2
            if target >= segment:
                raise FormatError("compression pointer does not point backwards")
            offset = segment = target
            continue
        if length >= 0x40:
            raise FormatError(f"unsupported label type {length >> 6}")
        if length == 0:
            return tuple(labels), (offset + 1 if after < 0 else after)
        wire += length + 1
        if wire > 255:
            raise FormatError("name longer than 255 bytes")
        label = data[offset + 1 : offset + 1 + length]
        if len(label) != length:
            raise FormatError("label runs past the end of the message")
        labels.append(label)
        offset += 1 + length


def _read_record(data: bytes, offset: int) -> tuple[Record, int]:
    name, offset = read_name(data, offset)
    if offset + _RECORD.size > len(data):
        raise FormatError("truncated resource record")
    rtype, rclass, ttl, length = _RECORD.unpack_from(data, offset)
    offset += _RECORD.size
    end = offset + length
    if end > len(data):
        raise FormatError("rdata runs past the end of the message")
    if rtype in NAME_TYPES:
        target, used = read_name(data, offset)
        if used != end:
            raise FormatError("rdata length does not match its name")
        rdata = encode_name(target)
    else:
        rdata = data[offset:end]
    return Record(name, rtype, rclass, ttl, rdata), end


def parse_message(data: bytes) -> Message:
    """Parse a whole message (FormatError if anything is wrong or left over)."""
    if len(data) < HEADER.size:
        raise FormatError("shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    offset = HEADER.size
    questions = []
    for _ in range(qdcount):
        name, offset = read_name(data, offset)
        if offset + QUESTION_FIELDS.size > len(data):
            raise FormatError("truncated question")
        qtype, qclass = QUESTION_FIELDS.unpack_from(data, offset)
        offset += QUESTION_FIELDS.size
        questions.append(Question(name, qtype, qclass))
    sections: list[list[Record]] = []
    for count in (ancount, nscount, arcount):
        records = []
        for _ in range(count):
            record, offset = _read_record(data, offset)
            records.append(record)
        sections.append(records)
    if offset != len(data):
        raise FormatError("bytes after the last record")
    return Message(ident, flags, questions, *sections)


def build_message(message: Message) -> bytes:
    """The wire form, names compressed (NS, CNAME, PTR rdata too)."""
    out = bytearray(HEADER.pack(message.id, message.flags, len(message.questions),
                                 len(message.answers), len(message.authority),
                                 len(message.additional)))  # fmt: skip
    table: dict[tuple[bytes, ...], int] = {}
    for question in message.questions:
        out += encode_name(question.name, table, len(out))
        out += QUESTION_FIELDS.pack(question.qtype, question.qclass)
    for record in (*message.answers, *message.authority, *message.additional):
        out += encode_name(record.name, table, len(out))
        if record.rtype in NAME_TYPES:
            target, _ = read_name(record.data, 0)
            rdata = encode_name(target, table, len(out) + _RECORD.size)
        else:
            rdata = record.data
        out += _RECORD.pack(record.rtype, record.rclass, record.ttl, len(rdata))
        out += rdata
    return bytes(out)


def reply_to(query: Message, rcode: int, answers: list[Record] | None = None) -> Message:
    """An answer to `query`: same id, opcode, RD and CD, question copied; RA set (we recurse
    through the upstreams)."""
    flags = QR | RA | (query.flags & (OPCODE_MASK | RD | 0x0010)) | rcode
    if answers is not None or rcode == NXDOMAIN:
        flags |= AA
    return Message(query.id, flags, list(query.questions), answers or [])


def error_reply(data: bytes, rcode: int) -> bytes | None:
    """A bare error answer (no question) to raw bytes that did not parse; None when they do
    not even hold a header, or are a response themselves."""
    if len(data) < HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & QR:
        return None
    return HEADER.pack(ident, QR | RA | (flags & (OPCODE_MASK | RD)) | rcode, 0, 0, 0, 0)


def fit(answer: bytes, limit: int) -> bytes:
    """`answer` if it fits in `limit` bytes; else its header (TC set, no records) and its
    question, so that the client asks again over TCP."""
    if len(answer) <= limit:
        return answer
    ident, flags, qdcount = struct.unpack_from("!HHH", answer)
    end = HEADER.size
    try:
        for _ in range(qdcount):
            _, end = read_name(answer, end)
            end += QUESTION_FIELDS.size
    except FormatError:
        qdcount, end = 0, HEADER.size
    if end > limit or end > len(answer):
        qdcount, end = 0, HEADER.size
    return HEADER.pack(ident, flags | TC, qdcount, 0, 0, 0) + answer[HEADER.size : end]
