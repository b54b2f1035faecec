"""Hairpin NAT, as root, with real containers: a container reaches its own published port
through the host's address, and so does another container on the same bridge (Docker
supports both). That takes the bridge port in hairpin mode (with br_netfilter loaded the
DNAT happens at the bridge, which sends the frame back out of the port it came in by) and
a masquerade of the DNATed traffic (the container would otherwise see its own address as
the source, and the neighbour an answer from the container's address instead of the
host's). Also: the bridge keeps its MAC address as ports come and go.

Traffic stays on the host: the host's own address (that of its default route's interface;
the tests are skipped without one) and the containers' bridges."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.engine.network import bridge
from tests.integration.engine.test_lifecycle import eng as eng  # a fixture, used by name
from tests.integration.engine.test_lifecycle import engine as engine  # a fixture, used by name
from tests.integration.engine.test_lifecycle import ok, run_d
from tests.integration.engine.test_network import HTTPD, get, host_address
from tests.integration.engine.test_network_dns import subnets_free
from tests.integration.image.test_import import cove

pytestmark = pytest.mark.root

SUBNET = "10.213.70.0/24"


@pytest.fixture
def hairpin_net(eng: Path) -> Iterator[tuple[Path, str, str]]:
    """`eng` with a user network "hp" (SUBNET); (root, network id, the host's address)."""
    address = host_address()
    if not address:
        pytest.skip("this host has no default route: no address of its own to go through")
    if not subnets_free(SUBNET):
        pytest.skip(f"{SUBNET} is in use on this host")
    network_id = ok(eng, "network", "create", "--subnet", SUBNET, "hp").strip()
    try:
        yield eng, network_id, address
    finally:
        ids = ok(eng, "ps", "-a", "-q", "--no-trunc").split()
        if ids:
            ok(eng, "rm", "-f", *ids)
        cove(eng, "network", "rm", "hp")
        name = "cv-" + network_id[:12]
        if subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0:
            subprocess.run(["ip", "link", "del", name], capture_output=True)


def host_port(root: Path, container: str) -> int:
    """The host port that `cove port` gives for the container's 80/tcp."""
    return int(ok(root, "port", container, "80/tcp").split()[0].rsplit(":", 1)[1])


def link_details(name: str) -> dict[str, object]:
    out = subprocess.run(["ip", "-d", "-j", "link", "show", name], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    found: dict[str, object] = json.loads(out)[0]
    return found


def hairpin_of(veth: str) -> bool:
    info = link_details(veth).get("linkinfo")
    assert isinstance(info, dict), info
    return bool(info.get("info_slave_data", {}).get("hairpin"))


def test_a_container_reaches_its_own_published_port_through_the_host_address(
    hairpin_net: tuple[Path, str, str],
) -> None:
    root, network_id, address = hairpin_net
    web = run_d(root, "--name", "web", "--network", "hp", "-p", "80", "bb:1", "sh", "-c", HTTPD)
    url = f"http://{address}:{host_port(root, 'web')}/"
    assert hairpin_of(bridge.veth_name(web, network_id))
    itself = cove(root, "exec", "web", "sh", "-c", get(url))
    assert (itself.returncode, itself.stdout) == (0, "hello-cove\n"), itself.stderr
    neighbour = cove(root, "run", "--rm", "--network", "hp", "bb:1", "sh", "-c", get(url))
    assert (neighbour.returncode, neighbour.stdout) == (0, "hello-cove\n"), neighbour.stderr


def test_hairpin_on_the_default_bridge(eng: Path) -> None:
    address = host_address()
    if not address:
        pytest.skip("this host has no default route: no address of its own to go through")
    run_d(eng, "--name", "web", "-p", "80", "bb:1", "sh", "-c", HTTPD)
    url = f"http://{address}:{host_port(eng, 'web')}/"
    itself = cove(eng, "exec", "web", "sh", "-c", get(url))
    assert (itself.returncode, itself.stdout) == (0, "hello-cove\n"), itself.stderr
    neighbour = cove(eng, "run", "--rm", "bb:1", "sh", "-c", get(url))
    assert (neighbour.returncode, neighbour.stdout) == (0, "hello-cove\n"), neighbour.stderr


def test_the_server_sees_the_gateway_as_the_hairpinned_client(
    hairpin_net: tuple[Path, str, str],
) -> None:
    """The masquerade, as behind Docker's userland proxy: the server sees the gateway."""
    root, _, address = hairpin_net
    cgi = "#!/bin/sh\\necho\\necho $REMOTE_ADDR\\n"  # busybox httpd: "[::ffff:A.B.C.D]"
    run_d(root, "--name", "web", "--network", "hp", "-p", "80", "bb:1", "sh", "-c",
          f"mkdir -p /www/cgi-bin && printf '{cgi}' > /www/cgi-bin/ip && "
          "chmod +x /www/cgi-bin/ip && exec httpd -f -p 80 -h /www")  # fmt: skip
    url = f"http://{address}:{host_port(root, 'web')}/cgi-bin/ip"
    seen = cove(root, "run", "--rm", "--network", "hp", "bb:1", "sh", "-c", get(url))
    assert (seen.returncode, seen.stdout) == (0, "[::ffff:10.213.70.1]\n"), seen.stderr


def test_the_bridge_keeps_its_mac_address_as_ports_come_and_go(
    hairpin_net: tuple[Path, str, str],
) -> None:
    root, network_id, _ = hairpin_net
    name = "cv-" + network_id[:12]
    run_d(root, "--name", "first", "--network", "hp", "bb:1", "sleep", "600")
    mac = link_details(name)["address"]
    assert mac == bridge.bridge_mac(name)
    ok(root, "exec", "first", "ping", "-c1", "-W1", "10.213.70.1")  # the gateway's MAC, cached
    for _ in range(3):  # ports with (random) lower or higher addresses come and go
        ok(root, "run", "--rm", "--network", "hp", "bb:1", "true")
        assert link_details(name)["address"] == mac
    run_d(root, "--name", "second", "--network", "hp", "bb:1", "sleep", "600")
    assert link_details(name)["address"] == mac
    # the first container reaches its gateway at once: its cached address is still right
    ping = cove(root, "exec", "first", "ping", "-c1", "-W1", "10.213.70.1")
    assert ping.returncode == 0, ping.stdout
