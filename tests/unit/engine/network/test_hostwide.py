"""What engine roots share on one host, without root: root ids and tags, the subnet claims
(valid while the record says so: for CLAIM_TTL, or while its bridge exists once made), and
the network service choosing subnets with them: two roots at once get different ones, the
default network moves when its subnet is taken meanwhile (not when it is configured or in
use), a removed network's claim and data plane go. The lock and the claims file are the
test's own (conftest.py); the host's routes are passed in."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from cove.engine.network import hostwide, repair
from cove.engine.network.networks import NetworkService
from cove.engine.network.records import Network

N = IPv4Network
HOST = [N("192.0.2.0/24")]


def service(root: Path, host: list[IPv4Network] | None = None) -> NetworkService:
    return NetworkService(str(root), host_networks=lambda: host or HOST, host_wide=True)


# --- ids and tags -----------------------------------------------------------------------------


def test_root_ids_follow_the_real_path(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    rid = hostwide.root_id(tmp_path / "real")
    assert len(rid) == 12 and int(rid, 16) >= 0
    assert hostwide.root_id(tmp_path / "link") == rid != hostwide.root_id(tmp_path)
    assert hostwide.root_tag(tmp_path / "real") == f"cove-root:{rid}"
    assert hostwide.tag_owner(f"cove-root:{rid}") == rid
    assert hostwide.tag_owner("cove:" + "a" * 64) == hostwide.tag_owner("") == ""


# --- claims -----------------------------------------------------------------------------------


def record(root: Path, network_id: str, subnet: str) -> None:
    (root / "networks").mkdir(parents=True, exist_ok=True)
    (root / "networks" / f"{network_id}.json").write_text(json.dumps({"subnet": subnet}))


def test_a_claim_holds_while_its_record_says_so(tmp_path: Path) -> None:
    root = tmp_path / "r"
    record(root, "a" * 64, "172.17.0.0/16")
    hostwide.claim(root, "a" * 64, "172.17.0.0/16", "cv-aaaaaaaaaaaa")
    (claim,) = hostwide.claims()
    assert (claim.root, claim.bridge) == (str(root), "cv-aaaaaaaaaaaa") and claim.valid()
    assert hostwide.claimed_by_others(tmp_path / "other") == [N("172.17.0.0/16")]
    assert hostwide.claimed_by_others(root) == []  # a root's own claims are no obstacle
    record(root, "a" * 64, "172.18.0.0/16")  # (the network moved)
    assert not claim.valid() and hostwide.claimed_by_others(tmp_path / "other") == []
    os.unlink(root / "networks" / f"{'a' * 64}.json")  # (removed, or its root is gone)
    assert not claim.valid()


def test_a_claim_is_held_for_a_while(tmp_path: Path) -> None:
    record(tmp_path, "a" * 64, "172.17.0.0/16")
    chosen = hostwide.Claim("172.17.0.0/16", str(tmp_path), "a" * 64, "cv-aaaaaaaaaaaa",
                            made=time.time())  # fmt: skip
    assert chosen.valid() and chosen.valid(now=chosen.made + hostwide.CLAIM_TTL - 1)
    assert not chosen.valid(now=chosen.made + hostwide.CLAIM_TTL + 1)
    hostwide.claim(tmp_path, "a" * 64, "172.17.0.0/16")
    stale = json.loads(Path(hostwide.CLAIMS).read_text())
    stale["claims"][0]["made"] -= hostwide.CLAIM_TTL + 1
    Path(hostwide.CLAIMS).write_text(json.dumps(stale))
    assert hostwide.claimed_by_others(tmp_path / "other") == []
    # once its bridge is made, a claim lasts as long as the bridge, however old
    placed = hostwide.Claim("172.17.0.0/16", str(tmp_path), "a" * 64, "lo", 0.0, True)
    assert placed.valid()  # ("lo" stands for a bridge that exists)
    gone = hostwide.Claim("172.17.0.0/16", str(tmp_path), "a" * 64, "cv-aaaaaaaaaaaa", 0, True)
    assert not gone.valid() and not dataclasses.replace(gone, made=time.time()).valid()


def test_claims_replace_drop_the_invalid_and_release(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    record(one, "a" * 64, "172.17.0.0/16")
    record(two, "b" * 64, "172.18.0.0/16")
    hostwide.claim(one, "a" * 64, "172.17.0.0/16")
    hostwide.claim(two, "b" * 64, "172.18.0.0/16")
    hostwide.claim(one, "c" * 64, "172.19.0.0/16")  # no record: dropped at the next write
    record(one, "a" * 64, "172.20.0.0/16")
    hostwide.claim(one, "a" * 64, "172.20.0.0/16", "cv-aaaaaaaaaaaa")
    found = {(c.root, c.network, c.subnet) for c in hostwide.claims()}
    assert found == {(str(one), "a" * 64, "172.20.0.0/16"), (str(two), "b" * 64, "172.18.0.0/16")}
    hostwide.release(one, "a" * 64)
    assert [(c.root, c.network) for c in hostwide.claims()] == [(str(two), "b" * 64)]
    Path(hostwide.CLAIMS).write_text("{not json")
    assert hostwide.claims() == []


def test_optional_lock_without_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostwide, "HOST_LOCK", str(tmp_path / "sub" / "network.lock"))
    with hostwide.optional_lock() as fd:
        assert fd >= 0

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "makedirs", refused)
    with hostwide.optional_lock() as fd:
        assert fd == -1
    with pytest.raises(PermissionError), hostwide.host_lock():
        pass


# --- the service choosing with them --------------------------------------------------------


def test_two_roots_get_different_default_subnets(tmp_path: Path) -> None:
    one = service(tmp_path / "one").default()
    two = service(tmp_path / "two").default()
    assert (one.subnet, two.subnet) == ("172.17.0.0/16", "172.18.0.0/16")
    made = service(tmp_path / "two").create("front")
    assert made.subnet == "172.19.0.0/16"
    # a stand-in host without the host-wide part: the claims are not looked at
    alone = NetworkService(str(tmp_path / "three"), host_networks=lambda: HOST).default()
    assert alone.subnet == "172.17.0.0/16"


def test_roots_choosing_at_once_get_different_subnets(tmp_path: Path) -> None:
    roots = [tmp_path / f"r{n}" for n in range(6)]
    barrier = threading.Barrier(len(roots))
    found: dict[Path, Network] = {}

    def choose(root: Path) -> None:
        barrier.wait()
        found[root] = service(root).default()

    threads = [threading.Thread(target=choose, args=(root,)) for root in roots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    subnets = [N(found[root].subnet) for root in roots]
    assert len(set(subnets)) == len(roots)
    assert not any(a.overlaps(b) for a in subnets for b in subnets if a != b)


def test_claims_without_bridges_never_use_up_the_pools(tmp_path: Path) -> None:
    # 31 idle roots (a test run's temporary ones) each claimed a default pool; none made a
    # bridge. A new root still gets a subnet (one of theirs), and keeps it when it settles;
    # a pool in use on the host (the first idle root's bridge came up) is never taken.
    pools = 31
    for n in range(pools):
        assert service(tmp_path / f"idle{n}").default().subnet
    with open(hostwide.CLAIMS) as file:
        assert len(json.load(file)["claims"]) == pools
    up = N("172.17.0.0/16")
    late = service(tmp_path / "late", [*HOST, up])
    network = late.default()
    assert not N(network.subnet).overlaps(up)
    assert late.settle(network).subnet == network.subnet
    front = service(tmp_path / "later", [*HOST, up]).create("front")
    assert not N(front.subnet).overlaps(up)


def test_the_default_network_moves_when_its_subnet_is_taken(tmp_path: Path) -> None:
    one = service(tmp_path / "one")
    network = one.default()
    assert network.subnet == "172.17.0.0/16"
    # the host now routes 172.17 elsewhere (another root's bridge came up)
    taken = service(tmp_path / "one", [*HOST, N("172.17.0.0/16")])
    moved = taken.settle(network)
    assert (moved.id, moved.subnet, moved.gateway) == (network.id, "172.18.0.0/16", "172.18.0.1")
    assert taken.get("bridge") == moved  # written
    assert taken.settle(moved) == moved  # free: stays
    claim = [c for c in hostwide.claims() if c.network == network.id]
    assert [c.subnet for c in claim] == ["172.18.0.0/16"]


def test_the_default_network_stays_when_in_use_or_configured(tmp_path: Path) -> None:
    used = service(tmp_path / "used")
    network = used.default()
    used.allocate(network, "c" * 64)
    assert service(tmp_path / "used", [N("172.16.0.0/12")]).settle(network) == network
    configured = tmp_path / "configured"
    configured.mkdir()
    (configured / "engine.json").write_text(json.dumps({"default_subnet": "10.88.0.0/16"}))
    network = service(configured).default()
    assert service(configured, [N("10.0.0.0/8")]).settle(network) == network


def test_a_user_network_is_only_claimed(tmp_path: Path) -> None:
    made = service(tmp_path).create("front")
    hostwide.release(tmp_path, made.id)
    assert service(tmp_path, [N(made.subnet)]).settle(made) == made
    assert made.id in {c.network for c in hostwide.claims()}


def test_removing_a_network_takes_its_data_plane_along(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    removed: list[tuple[str, str]] = []
    monkeypatch.setattr(repair, "remove_network_links",
                        lambda network, root="": removed.append((network.name, root)))  # fmt: skip
    svc = service(tmp_path)
    svc.create("front")
    svc.create("back")
    svc.remove("front")
    svc.prune()
    assert removed == [("front", str(tmp_path)), ("back", str(tmp_path))]
    plain = NetworkService(str(tmp_path), host_networks=lambda: HOST)
    plain.create("side")
    plain.remove("side")
    assert len(removed) == 2  # a stand-in host has no data plane
