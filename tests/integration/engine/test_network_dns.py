"""The engine's DNS responder as root, on real bridges and network namespaces.

The lab: two user networks made with NetworkService (front 10.213.61.0/24, back
10.213.62.0/24) whose bridges the test makes itself (as the data plane would), a client
network namespace on each bridge, and a fake upstream DNS server in a third namespace
behind a /30 veth (10.213.63.2). The responder is started by `dns_control.update` with
COVE_DNS_UPSTREAMS pointing at the fake upstream, so no query leaves the machine. The
client is a tiny DNS client of its own (not cove's parser) run in the namespaces.

Real containers (`cove run`) resolving each other: test_network_dns_containers.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cove.engine.network import dns_control
from cove.engine.network.networks import NetworkService
from cove.engine.network.records import Network
from tests.integration.engine.test_lifecycle import eng as eng  # a fixture, used by name
from tests.integration.engine.test_lifecycle import engine as engine  # a fixture, used by name

pytestmark = pytest.mark.root

TAG = str(os.getpid() % 100000)
WEB = "1111111111aa" + "1" * 52
DB = "2222222222bb" + "2" * 52
SECRET = "3333333333cc" + "3" * 52
UPSTREAM_IP = "10.213.63.2"
HOST_SIDE_IP = "10.213.63.1"

# A DNS client that shares no code with cove: python3 client.py SERVER NAME TYPE [tcp]
# prints {"rcode", "tc", "aa", "id", "answers": [[type, ttl, value]]} (value: an IPv4
# address for A, a name for PTR, the rdata's hex else).
CLIENT = r"""
import json, os, socket, struct, sys

server, name, qtype = sys.argv[1], sys.argv[2], int(sys.argv[3])
tcp = len(sys.argv) > 4 and sys.argv[4] == "tcp"
ident = int.from_bytes(os.urandom(2), "big")
query = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
for label in name.rstrip(".").split("."):
    query += bytes([len(label)]) + label.encode()
query += b"\0" + struct.pack("!HH", qtype, 1)

if tcp:
    sock = socket.create_connection((server, 53), timeout=5)
    sock.sendall(struct.pack("!H", len(query)) + query)
    data = b""
    while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
        chunk = sock.recv(65535)
        if not chunk:
            break
        data += chunk
    data = data[2:]
else:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.sendto(query, (server, 53))
    data = sock.recv(65535)

def name_at(offset):
    labels, jumped, end = [], False, None
    while True:
        length = data[offset]
        if length >= 0xC0:
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length == 0:
            return ".".join(labels), (end if end is not None else offset + 1)
        labels.append(data[offset + 1:offset + 1 + length].decode())
        offset += 1 + length

got_id, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", data[:12])
assert got_id == ident, (got_id, ident)
offset = 12
for _ in range(qd):
    _, offset = name_at(offset)
    offset += 4
answers = []
for _ in range(an):
    _, offset = name_at(offset)
    rtype, rclass, ttl, length = struct.unpack("!HHIH", data[offset:offset + 10])
    offset += 10
    rdata = data[offset:offset + length]
    if rtype == 1:
        value = socket.inet_ntoa(rdata)
    elif rtype == 12:
        value = name_at(offset)[0]
    else:
        value = rdata.hex()
    answers.append([rtype, ttl, value])
    offset += length
print(json.dumps({"rcode": flags & 15, "tc": bool(flags & 0x200), "aa": bool(flags & 0x400),
                  "answers": answers}))
"""

# A fake upstream: python3 upstream.py ADDRESS: example.test -> 198.51.100.7; big.test -> 60
# addresses (truncated over UDP); anything else NXDOMAIN. Serves UDP and TCP on port 53.
UPSTREAM = r"""
import selectors, socket, struct, sys

address = sys.argv[1]

def answer(query, tcp):
    ident, flags = struct.unpack("!HH", query[:4])
    end = 12
    labels = []
    while query[end]:
        labels.append(query[end + 1:end + 1 + query[end]].decode().lower())
        end += 1 + query[end]
    question = query[12:end + 5]
    name = ".".join(labels)
    records = []
    if name == "example.test":
        records = [bytes([198, 51, 100, 7])]
    elif name == "big.test":
        records = [bytes([198, 51, 100, n]) for n in range(60)]
    rcode = 0 if records else 3
    body = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + r for r in records)
    head = struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, len(records), 0, 0)
    if not tcp and 12 + len(question) + len(body) > 512:
        return struct.pack("!HHHHHH", ident, 0x8380 | rcode, 1, 0, 0, 0) + question
    return head + question + body

udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind((address, 53))
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((address, 53))
tcp.listen(8)
print("ready", flush=True)
selector = selectors.DefaultSelector()
selector.register(udp, selectors.EVENT_READ)
selector.register(tcp, selectors.EVENT_READ)
while True:
    for key, _ in selector.select():
        if key.fileobj is udp:
            data, peer = udp.recvfrom(65535)
            udp.sendto(answer(data, False), peer)
        else:
            conn, _ = tcp.accept()
            conn.settimeout(5)
            with conn:
                length = struct.unpack("!H", conn.recv(2))[0]
                data = b""
                while len(data) < length:
                    data += conn.recv(length - len(data))
                reply = answer(data, True)
                conn.sendall(struct.pack("!H", len(reply)) + reply)
"""


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check:
        assert done.returncode == 0, f"{' '.join(args)}: {done.stderr}"
    return done


def links() -> set[str]:
    """The host's links of this test run (other tests may make theirs meanwhile)."""
    names = {line.split(":")[1].strip().split("@")[0]
             for line in sh("ip", "-o", "link", "show").stdout.splitlines()}  # fmt: skip
    return {name for name in names if name.startswith("cvd") and name.endswith(TAG)}


def namespaces() -> set[str]:
    """The network namespaces of this test run."""
    names = {line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line}
    return {name for name in names if name.startswith(f"cvdns-{TAG}-")}


@dataclass
class Lab:
    root: str
    front: Network
    back: Network
    ns_front: str
    ns_back: str
    client: Path
    upstream_pid: int

    def ask(self, namespace: str, server: str, name: str, qtype: int = 1,
            tcp: bool = False) -> dict[str, object]:  # fmt: skip
        command = ["ip", "netns", "exec", namespace, sys.executable, str(self.client), server,
                   name, str(qtype)] + (["tcp"] if tcp else [])  # fmt: skip
        done = sh(*command)
        result: dict[str, object] = json.loads(done.stdout)
        return result

    def front_asks(self, name: str, qtype: int = 1, tcp: bool = False) -> dict[str, object]:
        return self.ask(self.ns_front, self.front.gateway, name, qtype, tcp)

    def back_asks(self, name: str, qtype: int = 1, tcp: bool = False) -> dict[str, object]:
        return self.ask(self.ns_back, self.back.gateway, name, qtype, tcp)


class Undo:
    """Clean-up steps, run last first, each whatever the others did."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, ...]] = []

    def add(self, *command: str) -> None:
        self.steps.append(command)

    def run(self) -> None:
        for command in reversed(self.steps):
            subprocess.run(list(command), capture_output=True, timeout=30)


def bridge(undo: Undo, name: str, address: str) -> None:
    sh("ip", "link", "add", name, "type", "bridge")
    undo.add("ip", "link", "del", name)
    sh("ip", "addr", "add", address, "dev", name)
    sh("ip", "link", "set", name, "up")


def namespace_on(undo: Undo, namespace: str, veth: str, master: str | None,
                 address: str, host_address: str = "") -> None:  # fmt: skip
    """A namespace whose eth0 is the peer of `veth`: on bridge `master` (its default route
    the bridge's .1, as a container's), or addressed `host_address` on the host."""
    sh("ip", "netns", "add", namespace)
    undo.add("ip", "netns", "del", namespace)
    sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
    undo.add("ip", "link", "del", veth)
    if master:
        sh("ip", "link", "set", veth, "master", master)
    if host_address:
        sh("ip", "addr", "add", host_address, "dev", veth)
    sh("ip", "link", "set", veth, "up")
    inside = ("ip", "netns", "exec", namespace)
    sh(*inside, "ip", "addr", "add", address, "dev", "eth0")
    sh(*inside, "ip", "link", "set", "eth0", "up")
    sh(*inside, "ip", "link", "set", "lo", "up")
    if master:
        gateway = address.rsplit(".", 1)[0] + ".1"
        sh(*inside, "ip", "route", "add", "default", "via", gateway)


def subnets_free(*subnets: str) -> bool:
    from ipaddress import IPv4Network

    from cove.engine.network.ipam import host_networks

    wanted = [IPv4Network(s) for s in subnets]
    return not any(w.overlaps(h) for w in wanted for h in host_networks())


def responder_gone(root: str, pid: int) -> bool:
    return dns_control.running(root) is None and dns_control.start_time(pid) == 0


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    if not subnets_free("10.213.61.0/24", "10.213.62.0/24", "10.213.63.0/30"):
        pytest.skip("10.213.61-63.x is in use on this host")
    root = str(tmp_path / "engine")
    with NetworkService(root, host_networks=lambda: []) as service:
        front = service.create("front", subnet="10.213.61.0/24")
        back = service.create("back", subnet="10.213.62.0/24")
        service.allocate(front, WEB)  # 10.213.61.2
        service.allocate(front, DB, aliases=["database", "Store"])  # 10.213.61.3
        service.allocate(back, SECRET)  # 10.213.62.2
    client = tmp_path / "client.py"
    client.write_text(CLIENT)
    upstream_script = tmp_path / "upstream.py"
    upstream_script.write_text(UPSTREAM)
    before_links, before_ns = links(), namespaces()
    undo = Undo()
    upstream: subprocess.Popen[str] | None = None
    ns_front, ns_back, ns_up = f"cvdns-{TAG}-f", f"cvdns-{TAG}-b", f"cvdns-{TAG}-u"
    try:
        bridge(undo, f"cvdf{TAG}", "10.213.61.1/24")
        bridge(undo, f"cvdb{TAG}", "10.213.62.1/24")
        namespace_on(undo, ns_front, f"cvdfv{TAG}", f"cvdf{TAG}", "10.213.61.50/24")
        namespace_on(undo, ns_back, f"cvdbv{TAG}", f"cvdb{TAG}", "10.213.62.50/24")
        namespace_on(undo, ns_up, f"cvduv{TAG}", None, f"{UPSTREAM_IP}/30",
                     host_address=f"{HOST_SIDE_IP}/30")  # fmt: skip
        upstream = subprocess.Popen(
            ["ip", "netns", "exec", ns_up, sys.executable, str(upstream_script), UPSTREAM_IP],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert upstream.stdout is not None and upstream.stdout.readline() == "ready\n"
        monkeypatch.setenv("COVE_DNS_UPSTREAMS", UPSTREAM_IP)
        dns_control.update(root, {WEB: "web", DB: "db", SECRET: "secret"})
        yield Lab(root, front, back, ns_front, ns_back, client, upstream.pid)
    finally:
        pid = dns_control.running(root)
        dns_control.update(root, {})  # nothing to answer: the responder stops
        if upstream is not None:
            upstream.send_signal(signal.SIGTERM)
            upstream.wait(10)
        undo.run()
    assert pid is None or responder_gone(root, pid)
    assert links() == before_links == set()
    assert namespaces() == before_ns == set()


def addresses(result: dict[str, object]) -> list[str]:
    answers = result["answers"]
    assert isinstance(answers, list)
    return sorted(str(value) for rtype, _, value in answers if rtype == 1)


# --- names, addresses, networks ----------------------------------------------------------------


def test_container_names_ids_and_aliases_resolve_on_their_network(lab: Lab) -> None:
    for name in ("web", "WEB.", WEB[:12], "1111111111AA"):
        result = lab.front_asks(name)
        assert (result["rcode"], addresses(result)) == (0, ["10.213.61.2"]), name
        assert result["answers"][0][1] == 600  # type: ignore[index]
    for name in ("db", "database", "store", DB[:12]):
        assert addresses(lab.front_asks(name)) == ["10.213.61.3"], name
    assert addresses(lab.back_asks("secret")) == ["10.213.62.2"]
    assert lab.front_asks("web", tcp=True)["answers"] == [[1, 600, "10.213.61.2"]]


def test_aaaa_of_a_known_name_is_empty_and_ptr_gives_the_name(lab: Lab) -> None:
    aaaa = lab.front_asks("web", qtype=28)
    assert (aaaa["rcode"], aaaa["answers"]) == (0, [])
    ptr = lab.front_asks("3.61.213.10.in-addr.arpa", qtype=12)
    assert ptr["answers"] == [[12, 600, "db"]]
    unknown = lab.front_asks("77.61.213.10.in-addr.arpa", qtype=12)
    assert (unknown["rcode"], unknown["answers"]) == (3, [])


def test_a_container_on_another_network_is_nxdomain(lab: Lab) -> None:
    assert lab.front_asks("secret")["rcode"] == 3
    assert lab.back_asks("web")["rcode"] == 3
    assert lab.back_asks("2.61.213.10.in-addr.arpa", qtype=12)["rcode"] == 3
    # nor does asking the other network's gateway help
    refused = lab.ask(lab.ns_front, lab.back.gateway, "secret")
    assert refused["rcode"] == 5


# --- forwarding --------------------------------------------------------------------------------


def test_other_names_are_forwarded_to_the_upstream(lab: Lab) -> None:
    result = lab.front_asks("example.test")
    assert result["answers"] == [[1, 30, "198.51.100.7"]]
    assert lab.front_asks("nothing.test")["rcode"] == 3
    assert lab.back_asks("Example.Test", tcp=True)["answers"] == [[1, 30, "198.51.100.7"]]


def test_a_truncated_upstream_answer_is_fetched_over_tcp(lab: Lab) -> None:
    over_tcp = lab.front_asks("big.test", tcp=True)
    assert len(addresses(over_tcp)) == 60 and not over_tcp["tc"]
    over_udp = lab.front_asks("big.test")  # 60 records do not fit 512 bytes: the client's turn
    assert over_udp["tc"] and over_udp["answers"] == []


def test_servfail_when_the_upstream_does_not_answer(lab: Lab) -> None:
    os.kill(lab.upstream_pid, signal.SIGSTOP)  # `ip netns exec` execs: this is the server
    try:
        began = time.monotonic()
        assert lab.front_asks("example.test")["rcode"] == 2
        assert 1.5 < time.monotonic() - began < 4.5
    finally:
        os.kill(lab.upstream_pid, signal.SIGCONT)


# --- the process -------------------------------------------------------------------------------


def test_updates_reach_the_running_responder(lab: Lab) -> None:
    pid = dns_control.running(lab.root)
    assert pid is not None
    dns_control.update(lab.root, {WEB: "frontend", DB: "db", SECRET: "secret"})
    assert dns_control.running(lab.root) == pid  # SIGHUP, not a new process
    assert addresses(lab.front_asks("frontend")) == ["10.213.61.2"]
    assert lab.front_asks("web")["rcode"] == 3  # no longer known: the upstream's NXDOMAIN
    assert lab.front_asks("2.61.213.10.in-addr.arpa", qtype=12)["answers"] == [
        [12, 600, "frontend"]
    ]


def test_the_responder_is_a_daemon_and_stops_when_nothing_runs(lab: Lab) -> None:
    pid = dns_control.running(lab.root)
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    assert "PPid:\t" + str(os.getpid()) not in status
    assert os.getsid(pid) != os.getsid(0) and os.getsid(pid) != pid  # setsid, then a fork
    for fd in (0, 1, 2):
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
    assert os.readlink(f"/proc/{pid}/cwd") == "/"
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"dns-serve" in argv and lab.root.encode() in argv
    pid_file = Path(lab.root) / "networks" / "dns.pid"
    assert pid_file.read_text() == f"{pid} {dns_control.start_time(pid)}\n"
    # the containers stop: it stops; one starts again: a new responder
    dns_control.update(lab.root, {})
    assert responder_gone(lab.root, pid) and not pid_file.exists()
    dns_control.update(lab.root, {DB: "db"})
    again = dns_control.running(lab.root)
    assert again is not None and again != pid
    assert addresses(lab.front_asks("db")) == ["10.213.61.3"]
    assert lab.front_asks("web")["rcode"] == 3


def test_a_killed_responder_is_started_again(lab: Lab) -> None:
    pid = dns_control.running(lab.root)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while dns_control.start_time(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dns_control.running(lab.root) is None  # the pid file stays, but names a dead pid
    dns_control.update(lab.root, {WEB: "web"})
    again = dns_control.running(lab.root)
    assert again is not None and again != pid
    assert addresses(lab.front_asks("web")) == ["10.213.61.2"]


def test_a_network_whose_bridge_comes_later(lab: Lab) -> None:
    if not subnets_free("10.213.65.0/24"):
        pytest.skip("10.213.65.0/24 is in use on this host")
    lone = "4444444444dd" + "4" * 52
    with NetworkService(lab.root) as service:
        late = service.create("late", subnet="10.213.65.0/24")
        service.allocate(late, lone)
    dns_control.update(lab.root, {WEB: "web", DB: "db", SECRET: "secret", lone: "lone"})
    # the responder listens on 10.213.65.1 already (IP_FREEBIND); now the bridge appears
    undo = Undo()
    try:
        bridge(undo, f"cvdl{TAG}", "10.213.65.1/24")
        namespace_on(undo, f"cvdns-{TAG}-l", f"cvdlv{TAG}", f"cvdl{TAG}", "10.213.65.50/24")
        result = lab.ask(f"cvdns-{TAG}-l", "10.213.65.1", "lone")
        assert addresses(result) == ["10.213.65.2"]
    finally:
        undo.run()


def test_the_responder_uses_little_memory(lab: Lab) -> None:
    pid = dns_control.running(lab.root)
    assert pid is not None
    for _ in range(20):
        lab.front_asks("web")
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    pss_kb = int(rollup.split("\nPss:")[1].split()[0])
    print(f"dns responder: Pss {pss_kb} kB")
    assert pss_kb < 25_000
