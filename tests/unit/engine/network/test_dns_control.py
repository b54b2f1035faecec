"""dns.json from the engine's records (dns_control) and the upstream lists (dns_forward),
without root."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from cove.engine.network import dns_control
from cove.engine.network import dns_forward as dns
from cove.engine.network.networks import NetworkService
from cove.engine.network.records import Network
from tests.unit.engine.network.dns_helpers import DB_ID, WEB_ID


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
        "clients": {"10.213.1.2": {"networks": [front.id], "egress": True},
                    "10.213.1.3": {"networks": [back.id, front.id], "egress": True}},
    }  # fmt: skip
    assert data[back.id]["internal"] is True
    back_records = {DB_ID[:12]: ["10.213.2.2"], "db": ["10.213.2.2"], "store": ["10.213.2.2"]}
    assert data[back.id]["records"] == back_records
    # only running containers have records
    only_db = dns_control.records(root, {DB_ID: "db"})
    assert "web" not in only_db[front.id]["records"]  # type: ignore[operator]


def test_clients_list_their_networks_in_order_their_egress_and_their_dns(root: str) -> None:
    front, back = make_networks(root)
    lone = "5" * 64
    with NetworkService(root) as service:
        service.allocate(back, lone)  # only on the internal network
    me = os.getpid()
    data = dns_control.records(root, {
        WEB_ID: "web",
        DB_ID: dns_control.Running("db", pid=me, dns=("10.9.9.9", "10.9.9.8"),
                                   networks=(front.id, back.id)),
        lone: dns_control.Running("lone", networks=(back.id,)),
    })  # fmt: skip
    db = {"networks": [front.id, back.id], "egress": True, "dns": ["10.9.9.9", "10.9.9.8"],
          "pid": me, "start": dns_control.start_time(me)}  # fmt: skip
    assert data[front.id]["clients"]["10.213.1.3"] == db  # type: ignore[index]
    assert data[back.id]["clients"] == {  # the same container, by its address there
        "10.213.2.2": db, "10.213.2.3": {"networks": [back.id], "egress": False},
    }  # fmt: skip


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
