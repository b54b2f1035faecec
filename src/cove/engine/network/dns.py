"""The engine's DNS responder: container names on user-defined networks, as Docker's embedded
DNS and Podman's aardvark-dns answer them, and everything else forwarded to the host's
resolvers.

One process serves a whole engine root (`cove --root R network dns-serve`, started and
stopped by `dns_control`). It listens on UDP and TCP port 53 of each user network's gateway
(the bridge's address; IP_FREEBIND, so a socket may be bound before its bridge exists) and
reads what to answer from `<root>/networks/dns.json`, which `dns_control.update` writes:

    {network_id: {"name": str, "gateway": ip, "subnet": cidr, "internal": bool,
                  "records": {name: [ip, ...]}, "ptr": {ip: name}}}

Rules (the network is the one whose gateway the query arrived on):

- A for a name of `records` (container name, 12-digit short id, aliases; any case, with or
  without the trailing dot; also followed by ".NETWORK", as Docker takes them): the
  addresses, TTL 600, rotated on each answer. Any other type
  of a known name: NOERROR without answers (AAAA included). ANY: the A records.
- PTR for `d.c.b.a.in-addr.arpa` of an address in `ptr`: the container's name. An address
  inside one of the engine's subnets that is not in this network's `ptr`: NXDOMAIN.
- A name known on another network of the engine only: NXDOMAIN (it is not sent upstream).
- Anything else: forwarded to the host's resolvers (`host_upstreams`; COVE_DNS_UPSTREAMS,
  `IP[:PORT],...`, replaces them, for tests) over UDP, 2 s each, in order; over TCP when an
  answer comes back truncated; SERVFAIL when all fail. An internal network does not
  forward: SERVFAIL, as Docker.
- A query from outside the network's subnet is REFUSED: the responder is no open resolver.

A UDP answer is at most 512 bytes or the client's EDNS payload size; a longer one goes out
as the header and question with TC set, and the client asks again over TCP.

The process is single-threaded (selectors), imports little (no asyncio: it would double the
memory), and reloads dns.json when its inode or mtime changes: on SIGHUP, at most every
100 ms when a query arrives, and every 2 s when idle. SIGTERM ends it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import selectors
import signal
import socket
import struct
import time
from collections.abc import Callable, Iterable

TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR, TYPE_MX, TYPE_TXT = 1, 2, 5, 6, 12, 15, 16
TYPE_AAAA, TYPE_OPT, TYPE_ANY = 28, 41, 255
CLASS_IN, CLASS_ANY = 1, 255
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
OPCODE_MASK, OPCODE_QUERY = 0x7800, 0
RCODE_MASK = 0x000F

TTL = 600  # Docker's TTL for container records
PORT = 53
UDP_LIMIT = 512  # RFC 1035, without EDNS
MAX_UDP_ANSWER = 4096  # the largest EDNS payload we honour for our own answers
UPSTREAM_TIMEOUT = 2.0
RELOAD_EVERY = 0.1  # at most this often, when queries arrive
IDLE_CHECK = 2.0  # the longest sleep: then check dns.json, retry failed binds
TCP_IDLE = 10.0
MAX_TCP_CLIENTS = 64
MAX_FORWARDS = 512
IP_FREEBIND = 15  # linux/in.h; socket.IP_FREEBIND arrives in Python 3.12
NAME_TYPES = frozenset({TYPE_NS, TYPE_CNAME, TYPE_PTR})  # rdata is one domain name

_HEADER = struct.Struct("!HHHHHH")
_QUESTION = struct.Struct("!HH")
_RECORD = struct.Struct("!HHIH")
_LENGTH = struct.Struct("!H")


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
                out += _LENGTH.pack(0xC000 | offset)
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
    if len(data) < _HEADER.size:
        raise FormatError("shorter than a DNS header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    offset = _HEADER.size
    questions = []
    for _ in range(qdcount):
        name, offset = read_name(data, offset)
        if offset + _QUESTION.size > len(data):
            raise FormatError("truncated question")
        qtype, qclass = _QUESTION.unpack_from(data, offset)
        offset += _QUESTION.size
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
    out = bytearray(_HEADER.pack(message.id, message.flags, len(message.questions),
                                 len(message.answers), len(message.authority),
                                 len(message.additional)))  # fmt: skip
    table: dict[tuple[bytes, ...], int] = {}
    for question in message.questions:
        out += encode_name(question.name, table, len(out))
        out += _QUESTION.pack(question.qtype, question.qclass)
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
    if len(data) < _HEADER.size:
        return None
    ident, flags = struct.unpack_from("!HH", data)
    if flags & QR:
        return None
    return _HEADER.pack(ident, QR | RA | (flags & (OPCODE_MASK | RD)) | rcode, 0, 0, 0, 0)


def fit(answer: bytes, limit: int) -> bytes:
    """`answer` if it fits in `limit` bytes; else its header (TC set, no records) and its
    question, so that the client asks again over TCP."""
    if len(answer) <= limit:
        return answer
    ident, flags, qdcount = struct.unpack_from("!HHH", answer)
    end = _HEADER.size
    try:
        for _ in range(qdcount):
            _, end = read_name(answer, end)
            end += _QUESTION.size
    except FormatError:
        qdcount, end = 0, _HEADER.size
    if end > limit or end > len(answer):
        qdcount, end = 0, _HEADER.size
    return _HEADER.pack(ident, flags | TC, qdcount, 0, 0, 0) + answer[_HEADER.size : end]


# --- addresses -------------------------------------------------------------------------------


def _ipv4(text: str) -> int | None:
    try:
        return int.from_bytes(socket.inet_aton(text), "big") if text.count(".") == 3 else None
    except OSError:
        return None


def _cidr(text: str) -> tuple[int, int] | None:
    """The IPv4 CIDR "10.89.0.0/24" -> (network, mask) as ints; None if not an IPv4 CIDR."""
    address, _, length = text.partition("/")
    base = _ipv4(address)
    if base is None or not length.isdigit() or int(length) > 32:
        return None
    mask = (0xFFFFFFFF << (32 - int(length))) & 0xFFFFFFFF
    return base & mask, mask


def _in(address: int, cidr: tuple[int, int] | None) -> bool:
    return cidr is not None and address & cidr[1] == cidr[0]


def reverse_ipv4(labels: tuple[bytes, ...]) -> str | None:
    """(b"4", b"3", b"2", b"1", b"in-addr", b"arpa") -> "1.2.3.4"; None for other names."""
    if len(labels) != 6 or [label.lower() for label in labels[4:]] != [b"in-addr", b"arpa"]:
        return None
    parts = labels[3::-1]
    if not all(part.isdigit() and len(part) <= 3 and int(part) <= 255 for part in parts):
        return None
    return ".".join(str(int(part)) for part in parts)


# --- what to answer --------------------------------------------------------------------------


class NetworkTable:
    """One network's part of dns.json."""

    __slots__ = ("gateway", "id", "internal", "name", "ptr", "records", "subnet")

    def __init__(self, network_id: str, data: dict[str, object]) -> None:
        self.id = network_id
        self.name = str(data.get("name", ""))
        self.gateway = str(data["gateway"])
        self.subnet = _cidr(str(data.get("subnet", "")))
        self.internal = bool(data.get("internal", False))
        records = data.get("records") or {}
        ptr = data.get("ptr") or {}
        if not isinstance(records, dict) or not isinstance(ptr, dict):
            raise ValueError(f"network {network_id}: records and ptr must be objects")
        self.records: dict[str, list[int]] = {}
        for name, addresses in records.items():
            values = [_ipv4(str(a)) for a in addresses]
            key = str(name).lower().removesuffix(".")
            self.records.setdefault(key, []).extend(v for v in values if v is not None)
        self.ptr: dict[int, tuple[bytes, ...]] = {}
        for address, name in ptr.items():
            value = _ipv4(str(address))
            try:
                labels = name_from_text(str(name))
            except (ValueError, UnicodeError):
                continue  # not a DNS name (too long, non-ASCII): no PTR
            if value is not None and labels:
                self.ptr[value] = labels

    def accepts(self, client: str) -> bool:
        """True when `client` (a source address) is on this network's subnet."""
        value = _ipv4(client.removeprefix("::ffff:"))
        return value is not None and _in(value, self.subnet)


class Table:
    """All of dns.json: the networks by gateway, and what is known engine-wide."""

    def __init__(self, data: dict[str, object] | None = None) -> None:
        self.networks: dict[str, NetworkTable] = {}
        for network_id, entry in (data or {}).items():
            if not isinstance(entry, dict):
                raise ValueError(f"network {network_id}: want an object")
            self.networks[network_id] = NetworkTable(network_id, entry)
        self.by_gateway = {n.gateway: n for n in self.networks.values()}
        self.names = {name for n in self.networks.values() for name in n.records}
        self.subnets = [n.subnet for n in self.networks.values() if n.subnet is not None]
        self._turn = 0

    @classmethod
    def load(cls, path: str) -> Table:
        with open(path, "rb") as file:
            data = json.load(file)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: want a JSON object")
        return cls(data)

    def answer(self, network: NetworkTable, query: Message) -> Message | None:
        """The answer to `query` on `network`, or None: forward it upstream."""
        if query.opcode != OPCODE_QUERY:
            return reply_to(query, NOTIMP)
        if len(query.questions) != 1:
            return reply_to(query, FORMERR)
        question = query.questions[0]
        if question.qclass in (CLASS_IN, CLASS_ANY) and not any(b"." in x for x in question.name):
            local = self._local(network, query, question)
            if local is not None:
                return local
        return reply_to(query, SERVFAIL) if network.internal else None

    def _local(self, network: NetworkTable, query: Message, question: Question) -> Message | None:
        if question.qtype == TYPE_PTR:
            address = reverse_ipv4(question.name)
            value = _ipv4(address) if address else None
            if value is not None:
                target = network.ptr.get(value)
                if target is not None:
                    record = Record(question.name, TYPE_PTR, CLASS_IN, TTL, encode_name(target))
                    return reply_to(query, NOERROR, [record])
                if any(_in(value, subnet) for subnet in self.subnets):
                    return reply_to(query, NXDOMAIN)
        key = b".".join(question.name).lower().decode("latin-1")
        addresses = network.records.get(key)
        suffix = "." + network.name.lower()
        if addresses is None and network.name and key.endswith(suffix):
            addresses = network.records.get(key.removesuffix(suffix))  # NAME.NETWORK
        if addresses is not None:
            if question.qtype not in (TYPE_A, TYPE_ANY):
                return reply_to(query, NOERROR, [])
            self._turn += 1
            turn = self._turn % len(addresses) if addresses else 0
            return reply_to(query, NOERROR, [
                Record(question.name, TYPE_A, CLASS_IN, TTL, value.to_bytes(4, "big"))
                for value in addresses[turn:] + addresses[:turn]
            ])  # fmt: skip
        if key in self.names:
            return reply_to(query, NXDOMAIN)
        return None


# --- upstreams -------------------------------------------------------------------------------

Upstream = tuple[int, str, int]  # (address family, address, port)
RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"


def nameservers(path: str) -> list[str]:
    """The `nameserver` addresses of a resolv.conf ([] when it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            found.append(fields[1])
    return found


def host_resolvers(resolv_conf: str = RESOLV_CONF, systemd: str = SYSTEMD_RESOLV_CONF) -> list[str]:
    """The host's resolvers: /etc/resolv.conf's, or systemd-resolved's real ones when
    /etc/resolv.conf points only at a 127.x stub (as hosts.py reads them for containers)."""
    servers = nameservers(resolv_conf)
    if servers and all(s.startswith("127.") for s in servers):
        real = nameservers(systemd)
        if real:
            return real
    return servers


def parse_upstreams(items: Iterable[str]) -> list[Upstream]:
    """Upstreams as (family, address, port) from "10.0.0.1", "10.0.0.1:5353", "::1",
    "[fe80::1%eth0]:53"...; what is not an address is left out."""
    found: list[Upstream] = []
    for item in items:
        item = item.strip()
        port = PORT
        if item.startswith("["):
            address, _, rest = item[1:].partition("]")
            if rest.startswith(":") and rest[1:].isdigit():
                port = int(rest[1:])
        elif item.count(":") == 1:
            address, _, text = item.partition(":")
            if not text.isdigit():
                continue
            port = int(text)
        else:
            address = item
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            socket.inet_pton(family, address.partition("%")[0])
        except OSError:
            continue
        if 0 < port < 65536:
            found.append((family, address, port))
    return found


def upstreams_from_env() -> list[Upstream] | None:
    """COVE_DNS_UPSTREAMS (comma-separated), or None when it is not set."""
    text = os.environ.get("COVE_DNS_UPSTREAMS")
    if text is None:
        return None
    return parse_upstreams(item for item in text.split(",") if item.strip())


# --- the server ------------------------------------------------------------------------------

Reply = Callable[[bytes], None]
Handler = Callable[[int], None]


class Forward:
    """One query on its way upstream: each upstream in turn over UDP, over TCP when the
    answer is truncated, UPSTREAM_TIMEOUT each; SERVFAIL when none answers well."""

    def __init__(self, server: Server, query: bytes, message: Message, reply: Reply,
                 limit: int) -> None:  # fmt: skip
        self.server = server
        self.client_id = message.id
        self.question = message.questions[0]
        self.body = query[2:]
        self.reply = reply
        self.limit = limit
        self.upstreams = server.upstreams()
        self.index = -1
        self.sock: socket.socket | None = None
        self.ident = 0
        self.deadline = 0.0
        self.buffer = b""
        self.pending = b""
        self.server.forwards.add(self)
        self.next_upstream()

    def next_upstream(self) -> None:
        self.close()
        while True:
            self.index += 1
            if self.index >= len(self.upstreams):
                self.finish(None)
                return
            try:
                self.open(tcp=False)
                return
            except OSError as err:
                self.server.log(f"upstream {self.upstreams[self.index][1]}: {err}")
                self.close()

    def open(self, tcp: bool) -> None:
        family, address, port = self.upstreams[self.index]
        self.ident = int.from_bytes(os.urandom(2), "big")
        query = _LENGTH.pack(self.ident) + self.body
        self.deadline = time.monotonic() + UPSTREAM_TIMEOUT
        self.buffer = b""
        sock = socket.socket(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
        self.sock = sock
        sock.setblocking(False)
        if tcp:
            self.pending = _LENGTH.pack(len(query)) + query
            code = sock.connect_ex((address, port))
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, os.strerror(code))
            self.server.watch(sock, selectors.EVENT_WRITE, self.on_tcp)
        else:
            sock.connect((address, port))
            sock.send(query)
            self.server.watch(sock, selectors.EVENT_READ, self.on_udp)

    def on_udp(self, mask: int) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(65535)
        except BlockingIOError:
            return
        except OSError:  # ICMP port unreachable and the like
            self.next_upstream()
            return
        self.received(data, tcp=False)

    def on_tcp(self, mask: int) -> None:
        sock = self.sock
        assert sock is not None
        try:
            if self.pending:
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
                sent = sock.send(self.pending)
                self.pending = self.pending[sent:]
                if not self.pending:
                    self.server.watch(sock, selectors.EVENT_READ, self.on_tcp, modify=True)
                return
            chunk = sock.recv(65537)
        except BlockingIOError:
            return
        except OSError:
            self.next_upstream()
            return
        if not chunk:
            self.next_upstream()
            return
        self.buffer += chunk
        if len(self.buffer) >= 2:
            (length,) = _LENGTH.unpack_from(self.buffer)
            if len(self.buffer) >= 2 + length:
                self.received(self.buffer[2 : 2 + length], tcp=True)

    def received(self, data: bytes, tcp: bool) -> None:
        """An upstream's answer: checked by its header and question only (its records go to
        the client as they are)."""
        try:
            ident, flags, qdcount = struct.unpack_from("!HHH", data)
            name, end = read_name(data, _HEADER.size)
            question = Question(name, *_QUESTION.unpack_from(data, end))
            ours = ident == self.ident and flags & QR and qdcount == 1
            ours = ours and _same(question, self.question)
        except (struct.error, FormatError):
            ours, flags = False, 0
        if not ours:
            if tcp:  # one answer per connection: this one is wrong
                self.next_upstream()
            return  # over UDP: not ours (a late or forged answer), keep waiting
        if flags & TC and not tcp:
            self.close()
            try:
                self.open(tcp=True)
            except OSError:
                self.next_upstream()
            return
        if flags & RCODE_MASK in (SERVFAIL, REFUSED):
            self.next_upstream()
            return
        self.finish(_LENGTH.pack(self.client_id) + data[2:])

    def expire(self, now: float) -> None:
        if self.sock is not None and now >= self.deadline:
            self.server.log(f"upstream {self.upstreams[self.index][1]}: no answer in time")
            self.next_upstream()

    def finish(self, data: bytes | None) -> None:
        self.close()
        self.server.forwards.discard(self)
        if data is None:
            (flags,) = _LENGTH.unpack_from(self.body)
            query = Message(self.client_id, flags, [self.question])
            data = build_message(reply_to(query, SERVFAIL))
        self.reply(fit(data, self.limit))

    def close(self) -> None:
        if self.sock is not None:
            self.server.unwatch(self.sock)
            self.sock.close()
            self.sock = None


def _same(a: Question, b: Question) -> bool:
    return (a.qtype, a.qclass) == (b.qtype, b.qclass) and [x.lower() for x in a.name] == [
        x.lower() for x in b.name
    ]


class TCPClient:
    """A client connection: length-prefixed queries in, answers out, closed when idle."""

    def __init__(self, server: Server, sock: socket.socket, gateway: str, peer: str) -> None:
        self.server, self.sock, self.gateway, self.peer = server, sock, gateway, peer
        self.buffer = b""
        self.out = b""
        self.deadline = time.monotonic() + TCP_IDLE
        self.closed = False
        server.clients.add(self)
        server.watch(sock, selectors.EVENT_READ, self.on_ready)

    def on_ready(self, mask: int) -> None:
        try:
            if mask & selectors.EVENT_WRITE and self.out:
                self.out = self.out[self.sock.send(self.out) :]
            if mask & selectors.EVENT_READ:
                chunk = self.sock.recv(65537)
                if not chunk:
                    self.close()
                    return
                self.buffer += chunk
        except BlockingIOError:
            pass
        except OSError:
            self.close()
            return
        self.deadline = time.monotonic() + TCP_IDLE
        while len(self.buffer) >= 2:
            (length,) = _LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < 2 + length:
                break
            data, self.buffer = self.buffer[2 : 2 + length], self.buffer[2 + length :]
            self.server.query(data, self.gateway, self.peer, self.send, tcp=True)
        self.rewatch()

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self.out += _LENGTH.pack(len(data)) + data
        try:
            self.out = self.out[self.sock.send(self.out) :]
        except BlockingIOError:
            pass
        except OSError:
            self.close()
            return
        self.rewatch()

    def rewatch(self) -> None:
        if not self.closed:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.out else 0)
            self.server.watch(self.sock, events, self.on_ready, modify=True)

    def expire(self, now: float) -> None:
        if now >= self.deadline:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.server.clients.discard(self)
            self.server.unwatch(self.sock)
            self.sock.close()


class Server:
    """The responder of one engine root (see the module docstring)."""

    def __init__(self, root: str, upstreams: list[Upstream] | None = None,
                 log_path: str | None = None, port: int = PORT) -> None:  # fmt: skip
        self.root = root
        self.port = port
        self.path = os.path.join(root, "networks", "dns.json")
        self.log_path = log_path
        self.selector = selectors.DefaultSelector()
        self.table = Table()
        self.stamp: tuple[int, ...] = ()
        self.checked = 0.0
        self.listeners: dict[str, list[socket.socket]] = {}
        self.unbound: dict[str, str] = {}  # gateway -> why it could not be bound
        self.forwards: set[Forward] = set()
        self.clients: set[TCPClient] = set()
        self.fixed_upstreams = upstreams
        self.resolv_stamp: tuple[int, ...] | None = None
        self.resolvers: list[Upstream] = []
        self.running = True
        self.hangup = False
        self._signals: dict[int, Callable[..., object] | int | None] = {}
        self._wakeup_before = -1
        self._wakeup = socket.socketpair()
        for end in self._wakeup:
            end.setblocking(False)
        self.watch(self._wakeup[0], selectors.EVENT_READ, self._drain)

    # -- plumbing --

    def watch(self, sock: socket.socket, events: int, handler: Handler,
              modify: bool = False) -> None:  # fmt: skip
        if modify:
            self.selector.modify(sock, events, handler)
        else:
            self.selector.register(sock, events, handler)

    def unwatch(self, sock: socket.socket) -> None:
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    def log(self, line: str) -> None:
        if not self.log_path:
            return
        try:
            if os.path.getsize(self.log_path) > 1 << 20:
                os.replace(self.log_path, self.log_path + ".1")
        except OSError:
            pass
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        try:
            with open(self.log_path, "a", encoding="utf-8") as file:
                file.write(f"{stamp} {line}\n")
        except OSError:
            pass

    def upstreams(self) -> list[Upstream]:
        """Where to forward: the fixed list, else the host's resolvers (re-read when
        resolv.conf changes), never one of our own listening addresses."""
        if self.fixed_upstreams is not None:
            found = self.fixed_upstreams
        else:
            stamp = _stamp(RESOLV_CONF) + _stamp(SYSTEMD_RESOLV_CONF)
            if stamp != self.resolv_stamp:
                self.resolv_stamp = stamp
                self.resolvers = parse_upstreams(host_resolvers())
            found = self.resolvers
        return [u for u in found if not (u[1] in self.listeners and u[2] == self.port)]

    # -- data --

    def reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.checked < RELOAD_EVERY:
            return
        self.checked = now
        stamp = _stamp(self.path)
        if stamp != self.stamp:
            try:
                table = Table.load(self.path) if stamp else Table()
            except FileNotFoundError:
                table, stamp = Table(), ()
            except (OSError, ValueError, KeyError, TypeError) as err:
                self.log(f"cannot load {self.path}: {err} (the last one stays)")
                self.stamp = stamp  # said once, until the file changes again
                return
            self.table, self.stamp = table, stamp
            self.bind()
        elif self.unbound:
            self.bind()

    def bind(self) -> None:
        """A UDP and a TCP socket on port 53 of each network's gateway; close those of
        networks that are gone."""
        wanted = set(self.table.by_gateway)
        for gateway in list(self.listeners):
            if gateway not in wanted:
                for sock in self.listeners.pop(gateway):
                    self.unwatch(sock)
                    sock.close()
                self.log(f"stopped listening on {gateway}")
        for gateway in wanted - set(self.listeners):
            try:
                self.listeners[gateway] = self._listen(gateway)
            except OSError as err:
                if self.unbound.get(gateway) != str(err):
                    self.log(f"cannot listen on {gateway}:{self.port}: {err}")
                self.unbound[gateway] = str(err)
                continue
            self.unbound.pop(gateway, None)
            self.log(f"listening on {gateway}:{self.port}")
        for gateway in list(self.unbound):
            if gateway not in wanted:
                del self.unbound[gateway]

    def _listen(self, gateway: str) -> list[socket.socket]:
        family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        level = socket.IPPROTO_IPV6 if family == socket.AF_INET6 else socket.IPPROTO_IP
        sockets: list[socket.socket] = []
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                sock = socket.socket(family, kind)
                sockets.append(sock)
                sock.setsockopt(level, IP_FREEBIND, 1)
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setblocking(False)
                sock.bind((gateway, self.port))
                if kind == socket.SOCK_STREAM:
                    sock.listen(16)
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        udp, tcp = sockets
        self.watch(udp, selectors.EVENT_READ, lambda mask: self.on_udp(udp, gateway))
        self.watch(tcp, selectors.EVENT_READ, lambda mask: self.on_accept(tcp, gateway))
        return sockets

    # -- queries --

    def on_udp(self, sock: socket.socket, gateway: str) -> None:
        for _ in range(64):  # then let the others have a turn
            try:
                data, peer = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return

            def reply(answer: bytes, peer: tuple[str, int] = peer) -> None:
                try:
                    sock.sendto(answer, peer)
                except OSError:
                    pass

            self.query(data, gateway, peer[0], reply, tcp=False)

    def on_accept(self, sock: socket.socket, gateway: str) -> None:
        try:
            conn, peer = sock.accept()
        except OSError:
            return
        if len(self.clients) >= MAX_TCP_CLIENTS:
            conn.close()
            return
        conn.setblocking(False)
        TCPClient(self, conn, gateway, peer[0])

    def query(self, data: bytes, gateway: str, peer: str, reply: Reply, tcp: bool) -> None:
        """Answer one query that arrived on `gateway` from `peer`."""
        self.reload()
        try:
            message = parse_message(data)
        except FormatError:
            answer = error_reply(data, FORMERR)
            if answer is not None:
                reply(answer)
            return
        if message.flags & QR:
            return
        network = self.table.by_gateway.get(gateway)
        if network is None or not network.accepts(peer):
            reply(build_message(reply_to(message, REFUSED)))
            return
        limit = 65535 if tcp else message.udp_limit()
        local = self.table.answer(network, message)
        if local is not None:
            reply(fit(build_message(local), min(limit, 65535 if tcp else MAX_UDP_ANSWER)))
        elif len(self.forwards) >= MAX_FORWARDS:
            reply(build_message(reply_to(message, SERVFAIL)))
        else:
            Forward(self, data, message, reply, limit)

    # -- the loop --

    def _signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            self.hangup = True
        else:
            self.running = False

    def setup_signals(self) -> None:
        """SIGHUP: reload now; SIGTERM, SIGINT: stop (main thread only)."""
        self._signals = {
            signum: signal.signal(signum, self._signal)
            for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)
        }
        self._wakeup_before = signal.set_wakeup_fd(self._wakeup[1].fileno(),
                                                   warn_on_full_buffer=False)  # fmt: skip

    def stop(self) -> None:
        """Make `run` return (from another thread or a signal handler)."""
        self.running = False
        with contextlib.suppress(OSError):
            self._wakeup[1].send(b"\0")

    def _drain(self, mask: int) -> None:
        with contextlib.suppress(OSError):
            while self._wakeup[0].recv(64):
                pass

    def run(self) -> None:
        """Serve until SIGTERM (or SIGINT)."""
        self.reload(force=True)
        while self.running:
            if self.hangup:
                self.hangup = False
                self.reload(force=True)
            now = time.monotonic()
            deadlines = [f.deadline for f in self.forwards if f.sock is not None]
            deadlines += [c.deadline for c in self.clients]
            wait = min([IDLE_CHECK, *(d - now for d in deadlines)])
            for key, mask in self.selector.select(max(wait, 0.0)):
                try:
                    key.data(mask)
                except Exception as exc:  # a bug must not take name resolution down
                    self.log(f"internal error: {type(exc).__name__}: {exc}")
            now = time.monotonic()
            for forward in list(self.forwards):
                forward.expire(now)
            for client in list(self.clients):
                client.expire(now)
            if now - self.checked >= IDLE_CHECK:
                self.reload(force=True)
        self.close()

    def close(self) -> None:
        for forward in list(self.forwards):
            forward.close()
        for client in list(self.clients):
            client.close()
        for sockets in self.listeners.values():
            for sock in sockets:
                sock.close()
        self.listeners.clear()
        if self._signals:  # as they were before `setup_signals`
            signal.set_wakeup_fd(self._wakeup_before)
            for signum, handler in self._signals.items():
                signal.signal(signum, handler)
            self._signals = {}
        for sock in self._wakeup:
            sock.close()
        self.selector.close()


def _stamp(path: str) -> tuple[int, ...]:
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return (st.st_ino, st.st_mtime_ns, st.st_size)
