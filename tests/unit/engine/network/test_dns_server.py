"""The DNS responder's server without root: on 127.0.0.1 with a high port, a fake upstream
(UDP and TCP) in a thread."""

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

from cove.engine.network import dns, dns_forward, dns_wire
from cove.engine.network.dns_forward import Upstream
from cove.engine.network.dns_wire import (
    CLASS_IN,
    FORMERR,
    NOERROR,
    NXDOMAIN,
    QR,
    REFUSED,
    SERVFAIL,
    TC,
    TYPE_A,
    TYPE_OPT,
    Message,
    Question,
    Record,
    build_message,
    fit,
    parse_message,
)
from tests.unit.engine.network.dns_helpers import NET_A, ipv4, query


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


def listening_server(root: Path, upstreams: list[Upstream], **kwargs: str) -> dns.Server:
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
        for _ in range(20):  # a UDP port whose TCP twin is free too
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.udp.bind(("127.0.0.1", 0))
            self.port = self.udp.getsockname()[1]
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                self.tcp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.udp.close()
                self.tcp.close()
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
        reply = dns_wire.reply_to(message, NXDOMAIN)
        if name in (b"example.test", b"big.test"):
            count = 1 if name == b"example.test" else 60
            first = 7 if count == 1 else 0
            reply = dns_wire.reply_to(message, NOERROR, [
                Record(asked, TYPE_A, CLASS_IN, 30, bytes([198, 51, 100, first + n]))
                for n in range(count)
            ])  # fmt: skip
        elif name == b"fail.test":
            reply = dns_wire.reply_to(message, SERVFAIL)
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
        upstreams: list[Upstream],
        subnet: str = "127.0.0.0/8",
        internal: bool = False,
        clients: dict[str, object] | None = None,
    ) -> tuple[dns.Server, int]:
        root = tmp_path / "engine"
        (root / "networks").mkdir(parents=True, exist_ok=True)
        (root / "networks" / "dns.json").write_text(json.dumps({NET_A: {
            "name": "front", "gateway": "127.0.0.1", "subnet": subnet, "internal": internal,
            "records": records, "ptr": {}, "clients": clients or {},
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
    monkeypatch.setattr(dns_forward, "UPSTREAM_TIMEOUT", 0.3)
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


def test_a_client_with_its_own_dns_servers_is_forwarded_to_those(
    serve: ServerFactory, upstream: FakeUpstream
) -> None:
    """A container run with --dns: its queries for other names go to its servers, not the
    host's (pid 0: sent from our own namespace; the container's is tested as root)."""
    ours = {"dns": [f"127.0.0.1:{upstream.port}"], "pid": 0, "start": 0}
    _, port = serve({"web": ["10.9.0.2"]}, [], clients={"127.0.0.1": ours})
    result = ask_udp(port, query("example.test"))
    assert [ipv4(r) for r in result.answers] == ["198.51.100.7"]
    assert upstream.seen["udp"] == 1
    assert [ipv4(r) for r in ask_udp(port, query("web")).answers] == ["10.9.0.2"]  # still local
    assert upstream.seen["udp"] == 1
    # without --dns: the host's (here: none, so SERVFAIL)
    _, plain = serve({}, [], clients={"127.0.0.1": {"networks": [NET_A]}})
    assert ask_udp(plain, query("example.test")).rcode == SERVFAIL


def test_a_client_whose_dns_server_is_the_responder_is_not_looped(serve: ServerFactory) -> None:
    server, port = serve({}, [])
    path = Path(server.path)
    data = json.loads(path.read_text())
    data[NET_A]["clients"] = {"127.0.0.1": {"dns": [f"127.0.0.1:{port}"]}}
    path.with_suffix(".tmp").write_text(json.dumps(data))
    os.replace(path.with_suffix(".tmp"), path)
    time.sleep(dns.RELOAD_EVERY + 0.05)
    assert ask_udp(port, query("example.test")).rcode == SERVFAIL
    assert server.table.networks[NET_A].client("127.0.0.1") is not None  # (it was reloaded)
    assert server.forwards == set()


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


def test_the_server_stops_when_its_engine_root_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dns, "IDLE_CHECK", 0.05)
    folder = tmp_path / "engine" / "networks"
    folder.mkdir(parents=True)
    (folder / "dns.json").write_text(json.dumps({NET_A: {
        "gateway": "127.0.0.1", "subnet": "127.0.0.0/8", "records": {"web": ["10.9.0.2"]},
    }}))  # fmt: skip
    server = listening_server(tmp_path / "engine", [])
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert [ipv4(r) for r in ask_udp(server.port, query("web")).answers] == ["10.9.0.2"]
    (folder / "dns.json").unlink()
    folder.rmdir()
    thread.join(5)
    assert not thread.is_alive() and server.listeners == {}
