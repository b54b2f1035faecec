"""What the engine's DNS responder (`dns.py`) answers by itself: the names of the containers
on user networks, from `<root>/networks/dns.json` (written by `dns_control.update`):

    {network_id: {"name": str, "gateway": ip, "subnet": cidr, "internal": bool,
                  "records": {name: [ip, ...]}, "ptr": {ip: name},
                  "clients": {ip: {"networks": [network_id, ...], "egress": bool,
                                   "dns": [ip, ...], "pid": int, "start": int}}}}

`clients` are the running containers of the network, by their address on it: the user
networks each one is on (in its order: eth0's first), whether one of its networks (the
default bridge too) is not internal, and, when it was run with `--dns`, those servers with
the pid and start time of its init (`dns_forward` asks them from the container's network
namespace).

Rules. A query arrives on a network (the one whose gateway it was sent to) from a client.
The client's scope is that network, then the client's other user networks (a container on
several networks resolves the names of each of them, as Docker's sandboxes do; an unknown
client, only that network):

- A for a name of `records` in the scope (container name, 12-digit short id, aliases; any
  case, with or without the trailing dot; also followed by ".NETWORK", as Docker takes
  them): the addresses on the first network of the scope that knows it, TTL 600, rotated
  on each answer. Any other type of a known name: NOERROR without answers (AAAA
  included). ANY: the A records.
- PTR for `d.c.b.a.in-addr.arpa` of an address in a `ptr` of the scope: the container's
  name. Another address inside one of the engine's subnets: NXDOMAIN.
- A name known only on networks outside the scope: NXDOMAIN (it is not sent upstream:
  names resolve per network, as with Docker).
- Anything else: None, which the server forwards (`dns_forward`); SERVFAIL instead when the
  client has no egress (only internal networks; an unknown client: the network's own
  `internal`), as Docker.
"""

from __future__ import annotations

import json
import socket

from cove.engine.network.dns_wire import (
    CLASS_ANY,
    CLASS_IN,
    FORMERR,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    OPCODE_QUERY,
    SERVFAIL,
    TYPE_A,
    TYPE_ANY,
    TYPE_PTR,
    Message,
    Question,
    Record,
    encode_name,
    name_from_text,
    reply_to,
)

TTL = 600  # Docker's TTL for container records


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


class Client:
    """A running container, as the responder sees it on one of its networks (see the module
    docstring)."""

    __slots__ = ("dns", "egress", "networks", "pid", "start")

    def __init__(self, data: dict[str, object], network_id: str, internal: bool) -> None:
        networks = data.get("networks") or [network_id]
        servers = data.get("dns") or []
        if not isinstance(networks, list) or not isinstance(servers, list):
            raise ValueError(f"network {network_id}: a client's networks and dns must be lists")
        self.networks = tuple(str(n) for n in networks)
        self.egress = bool(data.get("egress", not internal))
        self.dns = tuple(str(server) for server in servers)
        self.pid = _int(data.get("pid", 0))
        self.start = _int(data.get("start", 0))


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"want an integer, not {value!r}")
    return value


class NetworkTable:
    """One network's part of dns.json."""

    __slots__ = ("clients", "gateway", "id", "internal", "name", "ptr", "records", "subnet")

    def __init__(self, network_id: str, data: dict[str, object]) -> None:
        self.id = network_id
        self.name = str(data.get("name", ""))
        self.gateway = str(data["gateway"])
        self.subnet = _cidr(str(data.get("subnet", "")))
        self.internal = bool(data.get("internal", False))
        records = data.get("records") or {}
        ptr = data.get("ptr") or {}
        clients = data.get("clients") or {}
        if not all(isinstance(part, dict) for part in (records, ptr, clients)):
            raise ValueError(f"network {network_id}: records, ptr and clients must be objects")
        assert isinstance(records, dict) and isinstance(ptr, dict) and isinstance(clients, dict)
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
        self.clients: dict[int, Client] = {}
        for address, entry in clients.items():
            value = _ipv4(str(address))
            if not isinstance(entry, dict):
                raise ValueError(f"network {network_id}: client {address}: want an object")
            if value is not None:
                self.clients[value] = Client(entry, network_id, self.internal)

    def accepts(self, client: str) -> bool:
        """True when `client` (a source address) is on this network's subnet."""
        value = _ipv4(client.removeprefix("::ffff:"))
        return value is not None and _in(value, self.subnet)

    def client(self, address: str) -> Client | None:
        """The container that has `address` (a query's source) on this network, if any."""
        value = _ipv4(address.removeprefix("::ffff:"))
        return self.clients.get(value) if value is not None else None

    def lookup(self, key: str) -> list[int] | None:
        """The addresses of `key` (lowercased, no trailing dot), also as "NAME.NETWORK"."""
        addresses = self.records.get(key)
        suffix = "." + self.name.lower()
        if addresses is None and self.name and key.endswith(suffix):
            addresses = self.records.get(key.removesuffix(suffix))
        return addresses


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

    def scope(self, network: NetworkTable, client: str = "") -> list[NetworkTable]:
        """The networks whose names a query on `network` from address `client` resolves:
        that one, then the client's other user networks, in its order."""
        found = [network]
        known = network.client(client) if client else None
        for network_id in known.networks if known is not None else ():
            other = self.networks.get(network_id)
            if other is not None and other not in found:
                found.append(other)
        return found

    def answer(self, network: NetworkTable, query: Message, client: str = "") -> Message | None:
        """The answer to `query` on `network` from address `client`, or None: forward it."""
        if query.opcode != OPCODE_QUERY:
            return reply_to(query, NOTIMP)
        if len(query.questions) != 1:
            return reply_to(query, FORMERR)
        question = query.questions[0]
        if question.qclass in (CLASS_IN, CLASS_ANY) and not any(b"." in x for x in question.name):
            local = self._local(self.scope(network, client), query, question)
            if local is not None:
                return local
        known = network.client(client) if client else None
        egress = known.egress if known is not None else not network.internal
        return None if egress else reply_to(query, SERVFAIL)

    def _local(
        self, scope: list[NetworkTable], query: Message, question: Question
    ) -> Message | None:
        if question.qtype == TYPE_PTR:
            address = reverse_ipv4(question.name)
            value = _ipv4(address) if address else None
            if value is not None:
                for network in scope:
                    target = network.ptr.get(value)
                    if target is not None:
                        data = encode_name(target)
                        record = Record(question.name, TYPE_PTR, CLASS_IN, TTL, data)
                        return reply_to(query, NOERROR, [record])
                if any(_in(value, subnet) for subnet in self.subnets):
                    return reply_to(query, NXDOMAIN)
        key = b".".join(question.name).lower().decode("latin-1")
        for network in scope:
            addresses = network.lookup(key)
            if addresses is None:
                continue
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
