"""The engine's DNS responder: container names on user-defined networks, as Docker's embedded
DNS and Podman's aardvark-dns answer them, and everything else forwarded upstream.

One process serves a whole engine root (`cove --root R network dns-serve`, started and
stopped by `dns_control`). It listens on UDP and TCP port 53 of each user network's gateway
(the bridge's address; IP_FREEBIND, so a socket may be bound before its bridge exists) and
reads what to answer from `<root>/networks/dns.json`, which `dns_control.update` writes.

    dns_wire.py     the wire format: messages parsed and built, answers fitted to UDP
    dns_table.py    dns.json, and what the responder answers itself (names per network)
    dns_forward.py  the other names, to the host's resolvers or a container's --dns servers
    dns.py          the process: sockets, the loop, reloads, signals (this module)

A query from outside the subnet of the network it arrived on is REFUSED: the responder is
no open resolver. A UDP answer is at most 512 bytes or the client's EDNS payload size (at
most 4096 for the responder's own answers); a longer one goes out truncated (TC: the header
and question), and the client asks again over TCP.

The process is single-threaded (selectors), imports little (no asyncio: it would double the
memory), and reloads dns.json when its inode or mtime changes: on SIGHUP, at most every
100 ms when a query arrives, and every 2 s when idle. SIGTERM ends it, and so does the
removal of the engine root's networks folder (a test's root, deleted with the responder
still running, would otherwise leave it behind for good).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable

from cove.engine.network.dns_forward import (
    RESOLV_CONF,
    SYSTEMD_RESOLV_CONF,
    Forward,
    Reply,
    Upstream,
    host_resolvers,
    parse_upstreams,
)
from cove.engine.network.dns_table import Table
from cove.engine.network.dns_wire import (
    FORMERR,
    LENGTH,
    PORT,
    QR,
    REFUSED,
    SERVFAIL,
    FormatError,
    build_message,
    error_reply,
    fit,
    parse_message,
    reply_to,
)

MAX_UDP_ANSWER = 4096  # the largest EDNS payload we honour for our own answers
RELOAD_EVERY = 0.1  # at most this often, when queries arrive
IDLE_CHECK = 2.0  # the longest sleep: then check dns.json, retry failed binds
TCP_IDLE = 10.0
MAX_TCP_CLIENTS = 64
MAX_FORWARDS = 512
IP_FREEBIND = 15  # linux/in.h; socket.IP_FREEBIND arrives in Python 3.12

Handler = Callable[[int], None]


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
            (length,) = LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < 2 + length:
                break
            data, self.buffer = self.buffer[2 : 2 + length], self.buffer[2 + length :]
            self.server.query(data, self.gateway, self.peer, self.send, tcp=True)
        self.rewatch()

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self.out += LENGTH.pack(len(data)) + data
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
        return self.not_ours(found)

    def not_ours(self, upstreams: list[Upstream]) -> list[Upstream]:
        """`upstreams` but our own listening addresses (a query would come back to us)."""
        return [u for u in upstreams if not (u[1] in self.listeners and u[2] == self.port)]

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
        local = self.table.answer(network, message, peer)
        if local is not None:
            reply(fit(build_message(local), min(limit, 65535 if tcp else MAX_UDP_ANSWER)))
        elif len(self.forwards) >= MAX_FORWARDS:
            reply(build_message(reply_to(message, SERVFAIL)))
        else:
            Forward(self, data, message, reply, limit, network.client(peer))

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
        """Serve until SIGTERM (or SIGINT), or until the engine root is gone (its folder
        removed: nobody would stop the responder then)."""
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
                if not os.path.isdir(os.path.dirname(self.path)):
                    self.running = False
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
