"""Forwarding the names the engine's DNS responder (`dns.py`) does not know: to the host's
resolvers, or to a container's own `--dns` servers.

- The host's resolvers (`host_resolvers`: /etc/resolv.conf's, or systemd-resolved's real
  ones behind a 127.x stub); COVE_DNS_UPSTREAMS, `IP[:PORT],...`, replaces them (tests).
  Queries to them leave from the responder's (the host's) network namespace.
- A container run with `--dns` keeps the responder as its nameserver on a user network (as
  Docker's): its queries for other names go to its own servers instead, sent from the
  container's network namespace (as Docker's embedded DNS does), so that they take the
  container's routes and a loopback server is the container's own.
- Each upstream in turn over UDP, 2 s each; over TCP when an answer comes back truncated;
  SERVFAIL when all fail (or answer SERVFAIL or REFUSED).
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import struct
import time
from collections.abc import Callable, Iterable

from cove.engine.network.dns_wire import (
    HEADER,
    LENGTH,
    PORT,
    QR,
    QUESTION_FIELDS,
    RCODE_MASK,
    REFUSED,
    SERVFAIL,
    TC,
    FormatError,
    Message,
    Question,
    build_message,
    fit,
    read_name,
    reply_to,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.network.dns import Server
    from cove.engine.network.dns_table import Client

UPSTREAM_TIMEOUT = 2.0
Reply = Callable[[bytes], None]

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


class Forward:
    """One query on its way upstream: each upstream in turn over UDP, over TCP when the
    answer is truncated, UPSTREAM_TIMEOUT each; SERVFAIL when none answers well."""

    def __init__(self, server: Server, query: bytes, message: Message, reply: Reply,
                 limit: int, client: Client | None = None) -> None:  # fmt: skip
        self.server = server
        self.client_id = message.id
        self.question = message.questions[0]
        self.body = query[2:]
        self.reply = reply
        self.limit = limit
        self.netns = (0, 0)  # (pid, start time) of the process whose namespace sends it
        if client is not None and client.dns:  # the container's --dns, from its namespace
            self.upstreams = server.not_ours(parse_upstreams(client.dns))
            self.netns = (client.pid, client.start)
        else:
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
        query = LENGTH.pack(self.ident) + self.body
        self.deadline = time.monotonic() + UPSTREAM_TIMEOUT
        self.buffer = b""
        sock = socket_in(family, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM, *self.netns)
        self.sock = sock
        sock.setblocking(False)
        if tcp:
            self.pending = LENGTH.pack(len(query)) + query
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
            (length,) = LENGTH.unpack_from(self.buffer)
            if len(self.buffer) >= 2 + length:
                self.received(self.buffer[2 : 2 + length], tcp=True)

    def received(self, data: bytes, tcp: bool) -> None:
        """An upstream's answer: checked by its header and question only (its records go to
        the client as they are)."""
        try:
            ident, flags, qdcount = struct.unpack_from("!HHH", data)
            name, end = read_name(data, HEADER.size)
            question = Question(name, *QUESTION_FIELDS.unpack_from(data, end))
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
        self.finish(LENGTH.pack(self.client_id) + data[2:])

    def expire(self, now: float) -> None:
        if self.sock is not None and now >= self.deadline:
            self.server.log(f"upstream {self.upstreams[self.index][1]}: no answer in time")
            self.next_upstream()

    def finish(self, data: bytes | None) -> None:
        self.close()
        self.server.forwards.discard(self)
        if data is None:
            (flags,) = LENGTH.unpack_from(self.body)
            query = Message(self.client_id, flags, [self.question])
            data = build_message(reply_to(query, SERVFAIL))
        self.reply(fit(data, self.limit))

    def close(self) -> None:
        if self.sock is not None:
            self.server.unwatch(self.sock)
            self.sock.close()
            self.sock = None


def socket_in(family: int, kind: int, pid: int = 0, start: int = 0) -> socket.socket:
    """A socket of the network namespace of process `pid` (a container's init, whose start
    time is `start`: a recycled pid is refused), or of our own with pid 0. OSError when
    the process is gone. (The namespace is entered for the socket's creation only: a
    socket stays in the namespace it was made in.)"""
    if pid <= 0:
        return socket.socket(family, kind)
    from cove.engine.network.dns_control import start_time
    from cove.errors import SyscallFailed
    from cove.sys.constants import CLONE_NEWNET
    from cove.sys.linux import LinuxSyscalls

    calls = LinuxSyscalls()
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if start_time(pid) != start:  # (checked after the open: the namespace is its)
            raise OSError(errno.ESRCH, f"process {pid} of the container is gone")
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                calls.setns(target, CLONE_NEWNET)
            except SyscallFailed as exc:
                raise OSError(exc.errno, str(exc)) from None
            try:
                return socket.socket(family, kind)
            finally:
                try:
                    calls.setns(own, CLONE_NEWNET)
                except SyscallFailed as exc:  # stuck in a container's namespace: stop
                    raise SystemExit(f"cannot return to the responder's namespace: {exc}") from None
        finally:
            os.close(own)
    finally:
        os.close(target)


def _same(a: Question, b: Question) -> bool:
    return (a.qtype, a.qclass) == (b.qtype, b.qclass) and [x.lower() for x in a.name] == [
        x.lower() for x in b.name
    ]
