"""Name resolution of real containers (`cove run -d --network NET`), as root.

- Containers on a user network find each other by name, alias and short id (busybox's
  nslookup and ping, through the resolv.conf the engine writes).
- A container on several user networks (run on one, `network connect` to another; or
  created on one, connected to another, then started) resolves the names of each of them
  and is resolved on each, by its address there; a container on one network does not
  resolve names that exist only on another (names resolve per network, as Docker's);
  `network disconnect` takes the name out of that network's answers.
- `--dns` on a user network: resolv.conf keeps the engine's responder, which forwards the
  names it does not know to those servers instead of the host's, from the container's
  network namespace (so a loopback server is the container's own); on the default bridge
  resolv.conf lists the servers directly.

Unknown names otherwise go to COVE_DNS_UPSTREAMS=127.0.0.1:9 (tests/conftest.py), where
nothing listens: nothing leaves the host. The DNS server of the --dns tests runs in a
network namespace of the test's own, linked to the host by a veth (10.213.67.0/30), or in a
container's namespace, on its loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cove.engine.network import dns_control
from cove.engine.network.networks import NetworkService
from tests.integration.engine.test_lifecycle import LOOP, fmt, ok, run_d
from tests.integration.engine.test_lifecycle import eng as eng  # a fixture, used by name
from tests.integration.engine.test_lifecycle import engine as engine  # a fixture, used by name
from tests.integration.engine.test_network_dns import UPSTREAM, sh, subnets_free
from tests.integration.image.test_import import cove

pytestmark = pytest.mark.root

TAG = f"{os.getpid() % 0xFFFF:04x}"
UPSTREAM_NET = "10.213.67.0/30"
UPSTREAM_HOST, UPSTREAM_IP = "10.213.67.1", "10.213.67.2"
EXAMPLE = "198.51.100.7"  # what the fake upstream answers for example.test

MakeNetwork = Callable[[str, str], str]


@pytest.fixture
def networks(eng: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeNetwork]:
    """`make(name, subnet)`: a user network of `eng` (skipped when the subnet is in use on
    this host); its id. Afterwards the containers go, the responder stops, the networks
    and their bridges go."""
    monkeypatch.setenv("COVE_DNS_UPSTREAMS", "127.0.0.1:9")
    made: list[tuple[str, str]] = []

    def make(name: str, subnet: str) -> str:
        if not subnets_free(subnet):
            pytest.skip(f"{subnet} is in use on this host")
        network_id = ok(eng, "network", "create", "--subnet", subnet, name).strip()
        made.append((name, network_id))
        return network_id

    try:
        yield make
    finally:
        ids = ok(eng, "ps", "-a", "-q", "--no-trunc").split()
        if ids:
            ok(eng, "rm", "-f", *ids)
        dns_control.update(str(eng))  # what the engine does when containers go
        assert dns_control.running(str(eng)) is None
        for name, network_id in made:
            cove(eng, "network", "rm", name)
            bridge = "cv-" + network_id[:12]
            if sh("ip", "link", "show", bridge, check=False).returncode == 0:
                sh("ip", "link", "del", bridge)  # the data plane may leave it to `network rm`


@pytest.fixture
def dns_net(eng: Path, networks: MakeNetwork) -> tuple[Path, str]:
    """`eng` with a user network "dnsnet" (10.213.64.0/24); its id."""
    return eng, networks("dnsnet", "10.213.64.0/24")


def lease_ip(root: Path, container_id: str, network_id: str = "") -> str:
    """The container's address (on `network_id`, when it has several)."""
    with NetworkService(str(root)) as service:
        leases = service.leases_of(container_id)
    found = [lease.ip for lease in leases if not network_id or lease.network_id == network_id]
    assert len(found) == 1, leases
    return found[0]


def lookup(root: Path, container: str, name: str, server: str = "") -> tuple[list[str], str]:
    """busybox nslookup (of A records) in `container`: (the addresses of the answer, the
    whole output)."""
    res = cove(root, "exec", container, "timeout", "5", "nslookup", "-type=a", name,
               *([server] if server else []))  # fmt: skip
    out = res.stdout + res.stderr
    answer = out.split("\nName:", 1)[1] if "\nName:" in out else ""
    found = [line.split()[-1] for line in answer.splitlines() if line.startswith("Address")]
    return found, out


def addresses(root: Path, container: str, name: str) -> list[str]:
    return lookup(root, container, name)[0]


def nxdomain(root: Path, container: str, name: str) -> bool:
    """The responder says the name does not exist (it was not forwarded: that would be a
    SERVFAIL, the upstream being closed)."""
    found, out = lookup(root, container, name)
    return found == [] and "NXDOMAIN" in out


# --- names on one network ----------------------------------------------------------------------


def test_containers_on_a_user_network_resolve_each_other(dns_net: tuple[Path, str]) -> None:
    eng, _ = dns_net
    alpha = run_d(eng, "--name", "alpha", "--network", "dnsnet", "bb:1", "sh", "-c", LOOP)
    beta = run_d(eng, "--name", "beta", "--network", "dnsnet", "--network-alias", "b2",
                 "bb:1", "sh", "-c", LOOP)  # fmt: skip
    dns_control.update(str(eng))  # the engine's own call, made here too (idempotent)
    beta_ip, alpha_ip = lease_ip(eng, beta), lease_ip(eng, alpha)
    for name in ("beta", "b2", beta[:12], "BETA"):
        out = ok(eng, "exec", "alpha", "nslookup", name, "10.213.64.1")
        assert f"Address: {beta_ip}" in out, out
    out = ok(eng, "exec", "beta", "nslookup", alpha_ip, "10.213.64.1")
    assert "name = alpha" in out, out
    # a name nothing knows: the upstream fails, so SERVFAIL
    failed = cove(eng, "exec", "alpha", "nslookup", "nothing.test", "10.213.64.1")
    assert "SERVFAIL" in failed.stdout + failed.stderr


def test_containers_find_each_other_through_their_resolv_conf(dns_net: tuple[Path, str]) -> None:
    eng, _ = dns_net
    run_d(eng, "--name", "alpha", "--network", "dnsnet", "bb:1", "sh", "-c", LOOP)
    beta = run_d(eng, "--name", "beta", "--network", "dnsnet", "bb:1", "sh", "-c", LOOP)
    resolv = ok(eng, "exec", "alpha", "cat", "/etc/resolv.conf")
    assert resolv.startswith("nameserver 10.213.64.1\n"), resolv
    beta_ip = lease_ip(eng, beta)
    out = ok(eng, "exec", "alpha", "ping", "-c1", "-W2", "beta")
    assert f"({beta_ip})" in out and "1 packets received" in out, out
    assert f"Address: {beta_ip}" in ok(eng, "exec", "alpha", "nslookup", "beta")
    # beta goes, and its name with it (the upstream, where it is asked then, fails)
    ok(eng, "rm", "-f", "beta")
    gone = cove(eng, "exec", "alpha", "nslookup", "beta")
    # no answer: SERVFAIL once the (closed) upstream fails, or busybox's own time-out first
    assert gone.returncode != 0 and f"Address: {beta_ip}" not in gone.stdout


def test_rename_of_a_running_container_changes_its_name_in_the_answers(
    dns_net: tuple[Path, str],
) -> None:
    eng, _ = dns_net
    run_d(eng, "--name", "alpha", "--network", "dnsnet", "bb:1", "sh", "-c", LOOP)
    beta = run_d(eng, "--name", "beta", "--network", "dnsnet", "bb:1", "sh", "-c", LOOP)
    beta_ip = lease_ip(eng, beta)
    assert addresses(eng, "alpha", "beta") == [beta_ip]
    ok(eng, "rename", "beta", "gamma")
    # no dns_control.update here: `rename` itself must tell the responder
    assert addresses(eng, "alpha", "gamma") == [beta_ip]
    found, out = lookup(eng, "alpha", "beta")
    assert found == [] and beta_ip not in out, out
    assert addresses(eng, "alpha", beta[:12]) == [beta_ip]  # the short id stays


# --- a container on several networks -----------------------------------------------------------


def test_a_container_on_two_networks_resolves_and_is_resolved_on_each(
    eng: Path, networks: MakeNetwork
) -> None:
    net_a = networks("dnsa", "10.213.68.0/24")
    net_b = networks("dnsb", "10.213.69.0/24")
    a1 = run_d(eng, "--name", "a1", "--network", "dnsa", "bb:1", "sh", "-c", LOOP)
    b1 = run_d(eng, "--name", "b1", "--network", "dnsb", "bb:1", "sh", "-c", LOOP)
    both = run_d(eng, "--name", "both", "--network", "dnsa", "bb:1", "sh", "-c", LOOP)
    assert nxdomain(eng, "both", "b1")  # not yet on dnsb
    ok(eng, "network", "connect", "--alias", "twice", "dnsb", "both")
    both_a, both_b = lease_ip(eng, both, net_a), lease_ip(eng, both, net_b)
    # its nameserver stays the responder on its first network, which knows both networks
    resolv = ok(eng, "exec", "both", "cat", "/etc/resolv.conf")
    assert resolv.startswith("nameserver 10.213.68.1\n"), resolv
    assert addresses(eng, "both", "a1") == [lease_ip(eng, a1)]
    assert addresses(eng, "both", "b1") == [lease_ip(eng, b1)]
    assert addresses(eng, "both", "b1.dnsb") == [lease_ip(eng, b1)]
    # the others find it by its address on their own network
    assert addresses(eng, "a1", "both") == [both_a]
    assert addresses(eng, "b1", "both") == [both_b]
    assert addresses(eng, "b1", "twice") == [both_b]  # the alias is dnsb's only
    assert nxdomain(eng, "a1", "twice")
    # names that exist only on the other network do not resolve
    assert nxdomain(eng, "a1", "b1") and nxdomain(eng, "b1", "a1")
    ptr = ok(eng, "exec", "b1", "nslookup", both_b)
    assert "name = both" in ptr, ptr
    # disconnected from dnsb: its name leaves dnsb's answers, dnsb's names leave its own
    ok(eng, "network", "disconnect", "dnsb", "both")
    assert nxdomain(eng, "b1", "both")
    assert addresses(eng, "b1", "twice") == []  # known nowhere now: forwarded, and failed
    assert nxdomain(eng, "both", "b1")
    assert addresses(eng, "a1", "both") == [both_a]
    assert addresses(eng, "both", "a1") == [lease_ip(eng, a1)]


def test_a_container_made_on_one_network_and_connected_to_another_before_its_start(
    eng: Path, networks: MakeNetwork
) -> None:
    networks("dnsa", "10.213.68.0/24")
    net_b = networks("dnsb", "10.213.69.0/24")
    a1 = run_d(eng, "--name", "a1", "--network", "dnsa", "bb:1", "sh", "-c", LOOP)
    b1 = run_d(eng, "--name", "b1", "--network", "dnsb", "bb:1", "sh", "-c", LOOP)
    # on the default bridge first: no responder there, until a user network comes
    late = ok(eng, "create", "--name", "late", "bb:1", "sh", "-c", LOOP).strip()
    ok(eng, "network", "connect", "dnsa", "late")
    ok(eng, "network", "connect", "dnsb", "late")
    ok(eng, "start", "late")
    resolv = ok(eng, "exec", "late", "cat", "/etc/resolv.conf")
    assert resolv.startswith("nameserver 10.213.68.1\n"), resolv
    assert addresses(eng, "late", "a1") == [lease_ip(eng, a1)]
    assert addresses(eng, "late", "b1") == [lease_ip(eng, b1)]
    assert addresses(eng, "b1", "late") == [lease_ip(eng, late, net_b)]
    # after a restart, the same
    ok(eng, "restart", "-t", "1", "late")
    assert addresses(eng, "late", "b1") == [lease_ip(eng, b1)]
    assert addresses(eng, "b1", "late") == [lease_ip(eng, late, net_b)]


def test_the_default_bridge_gets_the_responder_when_connected_to_a_user_network(
    eng: Path, networks: MakeNetwork
) -> None:
    networks("dnsa", "10.213.68.0/24")
    a1 = run_d(eng, "--name", "a1", "--network", "dnsa", "bb:1", "sh", "-c", LOOP)
    run_d(eng, "--name", "plain", "bb:1", "sh", "-c", LOOP)
    before = ok(eng, "exec", "plain", "cat", "/etc/resolv.conf")
    assert "10.213.68.1" not in before
    ok(eng, "network", "connect", "dnsa", "plain")
    assert ok(eng, "exec", "plain", "cat", "/etc/resolv.conf").startswith(
        "nameserver 10.213.68.1\n"
    )
    assert addresses(eng, "plain", "a1") == [lease_ip(eng, a1)]
    ok(eng, "network", "disconnect", "dnsa", "plain")
    assert ok(eng, "exec", "plain", "cat", "/etc/resolv.conf") == before


# --- --dns -------------------------------------------------------------------------------------


@pytest.fixture
def dns_upstream(tmp_path: Path) -> Iterator[str]:
    """A DNS server (example.test -> 198.51.100.7) in a network namespace of its own, at
    UPSTREAM_IP behind a /30 veth to the host; its address."""
    if not subnets_free(UPSTREAM_NET):
        pytest.skip(f"{UPSTREAM_NET} is in use on this host")
    ns, here, there = f"cvdnsup-{TAG}", f"cvdu{TAG}", f"cvdv{TAG}"
    script = tmp_path / "upstream.py"
    script.write_text(UPSTREAM)
    sh("ip", "netns", "add", ns)
    server = None
    try:
        sh("ip", "link", "add", here, "type", "veth", "peer", "name", there, "netns", ns)
        sh("ip", "addr", "add", f"{UPSTREAM_HOST}/30", "dev", here)
        sh("ip", "link", "set", here, "up")
        sh("ip", "-n", ns, "addr", "add", f"{UPSTREAM_IP}/30", "dev", there)
        sh("ip", "-n", ns, "link", "set", there, "up")
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, str(script),
                                   UPSTREAM_IP], stdout=subprocess.PIPE, text=True)  # fmt: skip
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        yield UPSTREAM_IP
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", here], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_dns_on_a_user_network_is_what_the_responder_forwards_to(
    dns_net: tuple[Path, str], dns_upstream: str
) -> None:
    eng, _ = dns_net
    run_d(eng, "--name", "own", "--network", "dnsnet", "--dns", dns_upstream,
          "bb:1", "sh", "-c", LOOP)  # fmt: skip
    other = run_d(eng, "--name", "other", "--network", "dnsnet", "bb:1", "sh", "-c", LOOP)
    resolv = ok(eng, "exec", "own", "cat", "/etc/resolv.conf")
    assert resolv.startswith("nameserver 10.213.64.1\n"), resolv  # the responder, as Docker
    assert f"# upstream: {dns_upstream}\n" in resolv
    assert addresses(eng, "own", "example.test") == [EXAMPLE]
    assert addresses(eng, "own", "other") == [lease_ip(eng, other)]  # names: still answered
    # without --dns: the host's resolvers (here the closed 127.0.0.1:9), not that server
    found, out = lookup(eng, "other", "example.test")
    assert found == [] and EXAMPLE not in out


def test_dns_on_the_default_bridge_is_listed_in_resolv_conf(eng: Path, dns_upstream: str) -> None:
    res = cove(eng, "run", "--rm", "--dns", dns_upstream, "bb:1", "sh", "-c",
               "cat /etc/resolv.conf; echo ---; nslookup example.test")  # fmt: skip
    assert res.returncode == 0, res.stderr
    resolv, answer = res.stdout.split("---\n")
    assert resolv == f"nameserver {dns_upstream}\n"
    assert f"Server:\t\t{dns_upstream}" in answer and f"Address: {EXAMPLE}" in answer


def test_a_loopback_dns_server_is_the_containers_own(
    dns_net: tuple[Path, str], tmp_path: Path
) -> None:
    """--dns 127.0.0.1: the responder's query goes out from the container's namespace, to
    the server on the container's loopback (from the host's it would miss it)."""
    eng, _ = dns_net
    run_d(eng, "--name", "own", "--network", "dnsnet", "--dns", "127.0.0.1",
          "bb:1", "sh", "-c", LOOP)  # fmt: skip
    pid = int(fmt(eng, "{{.State.Pid}}", "own"))
    script = tmp_path / "upstream.py"
    script.write_text(UPSTREAM)
    server = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable,
                               str(script), "127.0.0.1"], stdout=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline() == "ready\n"
        assert addresses(eng, "own", "example.test") == [EXAMPLE]
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(10)
    found, out = lookup(eng, "own", "example.test")  # the server is gone: no answer
    assert found == [] and EXAMPLE not in out
