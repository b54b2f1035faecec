"""Two engine roots on one host, with real containers, as root: what they share (the nft table
`inet cove`, the host's routes, /run/cove) and what each must keep to itself.

- Two fresh roots starting containers at the same moment get different default subnets,
  and both work: each one's published port answers with its own container.
- A default network whose record chose a subnet another root's bridge has since taken
  moves to a free one at its first start.
- When the last container of a network goes (exit, `network disconnect`) its bridge goes,
  and with it the bridge's elements in the table's sets, though another root's container
  keeps the table; `network rm` takes what a killed unplug left.
- `system check [--repair]` of a root reports and removes its own leftovers only (an unused
  bridge, set elements of no bridge), never another root's bridges or elements.

Traffic stays on loopback and on the roots' own bridges."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from cove.engine.network import firewall, hostwide
from cove.engine.network.networks import NetworkService
from tests.integration.engine.test_lifecycle import CHECK_ENV, last_resort, remove_everything
from tests.integration.engine.test_network import fetch, ok, run_d
from tests.integration.image.test_import import cove, cove_cli

pytestmark = pytest.mark.root

HTTPD = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture
def roots(tmp_path: Path, busybox_rootfs: Path) -> Iterator[tuple[Path, Path]]:
    """Two engine roots with bb:1; afterwards their containers and networks go, and the
    bridges the tests made by hand."""
    import tarfile

    rootfs_tar = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs_tar, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    pair = (tmp_path / "one", tmp_path / "two")
    for root in pair:
        ok(root, "import", str(rootfs_tar), "bb:1")
    try:
        yield pair
    finally:
        for root in pair:
            try:
                remove_everything(root)
            except BaseException:
                last_resort(root)
                raise
            finally:
                with NetworkService(str(root)) as service:
                    for network in service.stored():
                        if network.name != "bridge":
                            cove(root, "network", "rm", network.name)
                        subprocess.run(["ip", "link", "del", network.bridge], capture_output=True)


def subnet_of(root: Path, network: str = "bridge") -> IPv4Network:
    data = json.loads(ok(root, "network", "inspect", network))[0]
    return IPv4Network(data["IPAM"]["Config"][0]["Subnet"])


def bridge_of(root: Path, network: str) -> str:
    with NetworkService(str(root)) as service:
        return service.get(network).bridge


def host_port(root: Path, container: str) -> int:
    return int(ok(root, "port", container, "80/tcp").split()[0].rsplit(":", 1)[1])


def entries() -> list[firewall.SetEntry]:
    """The elements of the table's sets now ([] without the table)."""
    return firewall.set_entries(firewall.table_listing())


def gone(bridge: str) -> bool:
    """The bridge is deleted, once the background deletion (which holds the host lock until
    the kernel is done) has finished."""
    with hostwide.host_lock():
        return not Path(f"/sys/class/net/{bridge}").exists()


def about(bridge: str, subnet: IPv4Network | None = None) -> list[firewall.SetEntry]:
    """The set elements that name `bridge` (or are `subnet`)."""
    return [e for e in entries() if e.bridge == bridge or (subnet and e.text == str(subnet))]


def check(root: Path, *args: str) -> str:
    done = subprocess.run([cove_cli(), "--root", str(root), "system", "check", *args],
                          capture_output=True, text=True, env=CHECK_ENV, timeout=60,
                          start_new_session=True)  # fmt: skip
    assert "repair failed" not in done.stdout, done.stdout
    return done.stdout


def make_idle_bridge(root: Path, network: str) -> str:
    """The network's bridge, up with no container on it, as a start killed after making it
    leaves it; its name."""
    from cove.engine.network import bridge
    from cove.engine.network.rtnl import Netlink

    with NetworkService(str(root)) as service:
        found = service.get(network)
    with hostwide.host_lock(), Netlink() as nl:
        bridge.ensure_bridge(nl, found.bridge, found.gateway, found.prefixlen, 1500,
                             owner=hostwide.root_id(root))  # fmt: skip
    return found.bridge


def add_elements(root: Path, bridge: str, subnet: str = "") -> None:
    """Set elements tagged as `root`'s for a bridge that does not exist, as an unplug
    killed before it took them leaves them."""
    rules = firewall.NetworkRules(bridge, subnet or "10.213.250.0/30", not subnet,
                                  hostwide.root_id(root))  # fmt: skip
    with hostwide.host_lock():
        firewall.apply(firewall.network_script(rules))


# --- subnets ------------------------------------------------------------------------------------


def test_two_fresh_roots_starting_at_once_get_different_subnets_and_both_work(
    roots: tuple[Path, Path],
) -> None:
    results: dict[Path, subprocess.CompletedProcess[str]] = {}
    barrier = threading.Barrier(len(roots))

    def start(root: Path) -> None:
        barrier.wait()
        results[root] = cove(root, "run", "-d", "--name", "web", "-p", "80", "bb:1", "sh", "-c",
                             HTTPD.format(text=root.name))  # fmt: skip

    threads = [threading.Thread(target=start, args=(root,)) for root in roots]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    for root in roots:
        assert results[root].returncode == 0, results[root].stderr
    one, two = (subnet_of(root) for root in roots)
    assert not one.overlaps(two), (one, two)
    for root in roots:  # each answers with its own page: no route goes to the other bridge
        assert fetch(f"http://127.0.0.1:{host_port(root, 'web')}/") == f"{root.name}\n"


def test_a_default_subnet_taken_meanwhile_by_another_root_moves(roots: tuple[Path, Path]) -> None:
    one, two = roots
    taken = subnet_of(one)
    assert subnet_of(two) != taken  # chosen apart: one's claim is there
    # two's record says one's subnet, as records made before a reboot (which empties the
    # claims) or by an older cove do
    with NetworkService(str(two)) as service:
        record = service.dir / f"{service.get('bridge').id}.json"
    data = json.loads(record.read_text())
    data.update(subnet=str(taken), gateway=str(taken.network_address + 1))
    record.write_text(json.dumps(data))
    run_d(one, "--name", "web", "-p", "80", "bb:1", "sh", "-c", HTTPD.format(text="one"))
    run_d(two, "--name", "web", "-p", "80", "bb:1", "sh", "-c", HTTPD.format(text="two"))
    moved = subnet_of(two)
    assert not moved.overlaps(taken), moved
    address = json.loads(ok(two, "inspect", "web"))[0]["NetworkSettings"]["IPAddress"]
    assert IPv4Network(f"{address}/32").subnet_of(moved)
    for root in roots:
        assert fetch(f"http://127.0.0.1:{host_port(root, 'web')}/") == f"{root.name}\n"


# --- the shared table ---------------------------------------------------------------------------


def test_a_networks_set_elements_go_with_its_bridge_while_the_table_stays(
    roots: tuple[Path, Path],
) -> None:
    one, two = roots
    run_d(two, "--name", "keeper", "bb:1", "sleep", "600")  # two's container keeps the table
    kept = about(bridge_of(two, "bridge"))
    assert len(kept) == 2, kept  # in bridges and hairpin
    # the exit of a network's last container
    ok(one, "network", "create", "n1")
    bridge, subnet = bridge_of(one, "n1"), subnet_of(one, "n1")
    run_d(one, "--name", "c1", "--network", "n1", "bb:1", "sleep", "600")
    mine = about(bridge, subnet)
    assert {e.set for e in mine} == {"bridges", "hairpin", "nat_subnets"}, mine
    ok(one, "rm", "-f", "c1")
    assert gone(bridge)
    assert about(bridge, subnet) == []
    # `network disconnect` of its last container
    run_d(one, "--name", "c2", "bb:1", "sleep", "600")
    ok(one, "network", "create", "n2")
    bridge, subnet = bridge_of(one, "n2"), subnet_of(one, "n2")
    ok(one, "network", "connect", "n2", "c2")
    assert len(about(bridge, subnet)) == 3
    ok(one, "network", "disconnect", "n2", "c2")
    assert gone(bridge)
    assert about(bridge, subnet) == []
    # `network rm`: what an unplug killed before it took the elements left
    add_elements(one, bridge, str(subnet))
    assert len(about(bridge, subnet)) == 3
    ok(one, "network", "rm", "n2")
    assert about(bridge, subnet) == []
    assert about(bridge_of(two, "bridge")) == kept  # two's, untouched throughout
    # whose they are: each root's elements carry its id
    assert {e.comment for e in mine} == {hostwide.root_tag(one)}, mine
    assert {e.comment for e in kept} == {hostwide.root_tag(two)}, kept


# --- system check -------------------------------------------------------------------------------


def test_system_check_of_a_root_sees_only_its_own(roots: tuple[Path, Path]) -> None:
    one, two = roots
    # two: a container on a network (a live bridge), an unused bridge, stray elements
    ok(two, "network", "create", "live")
    run_d(two, "--name", "keeper", "--network", "live", "bb:1", "sleep", "600")
    ok(two, "network", "create", "idle")
    idle_two = make_idle_bridge(two, "idle")
    add_elements(two, "cv-0000000000b2")
    # one: the same
    ok(one, "network", "create", "idle")
    idle_one = make_idle_bridge(one, "idle")
    add_elements(one, "cv-0000000000a1", "10.213.251.0/30")
    found = check(one)
    assert f"bridge: {idle_one} is unused" in found, found
    assert "cv-0000000000a1 in set bridges, hairpin" in found
    assert "10.213.251.0/30 in set nat_subnets" in found
    for other in (idle_two, bridge_of(two, "live"), "cv-0000000000b2"):
        assert other not in found, found
    assert found.count("\n") == 4, found  # the three, and the summary line
    check(one, "--repair")
    assert check(one) == "nothing to repair\n"
    assert gone(idle_one)
    assert about("cv-0000000000a1", IPv4Network("10.213.251.0/30")) == []
    # two's are all there still, and its own check finds its leftovers
    assert Path(f"/sys/class/net/{idle_two}").exists()
    assert len(about(bridge_of(two, "live"))) == 2 and len(about("cv-0000000000b2")) == 3
    found = check(two)
    assert f"bridge: {idle_two} is unused" in found and "cv-0000000000b2" in found, found
    check(two, "--repair")
    assert check(two) == "nothing to repair\n"
    assert about("cv-0000000000b2") == [] and len(about(bridge_of(two, "live"))) == 2
