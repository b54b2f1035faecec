"""Container networks end to end, as root, with real containers: the default bridge, user
networks, published ports (kernel NAT only) reached from the host on 127.0.0.1 and on its
own address, and from "another host" (a network namespace of the test's own), egress NAT,
internal networks, isolation between networks, the generated /etc files, --network none /
host / container:NAME, and that nothing is left in the data plane after rm or after a
kill -9 in the middle of the network setup and `system check --repair`.

Traffic never leaves the host: "upstream" is a network namespace the test makes, linked
to the host by a veth on 10.254.254.0/30, with its server there."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.engine.test_lifecycle import CHECK_ENV, poll, remove_everything
from tests.integration.engine.test_run import engine as engine  # a fixture, used by name
from tests.integration.image.test_import import cove, cove_cli
from tests.lib.netns import serving_namespace

pytestmark = pytest.mark.root

SRC = Path(__file__).resolve().parents[3] / "src"
UP_HOST, UP_PEER = "10.254.254.1", "10.254.254.2"
HTTPD = "mkdir -p /www && echo hello-cove > /www/index.html && exec httpd -f -p 80 -h /www"


def get(url: str) -> str:
    """A busybox script that fetches `url`, retried while the server comes up (busybox's own
    wget -T crashes in Debian 12's busybox-static: timeout(1) bounds each try)."""
    return (f"i=0; while [ $i -lt 40 ]; do timeout 3 wget -q -O- {url} && exit 0; "
            "i=$((i+1)); sleep 0.25; done; exit 8")  # fmt: skip


def unreachable(url: str) -> str:
    """A script that exits 9 when `url` cannot be fetched within 2 seconds."""
    return f"timeout 2 wget -q -O- {url} && exit 0; exit 9"


# --- helpers -----------------------------------------------------------------------------------


def ok(root: Path, *args: str) -> str:
    res = cove(root, *args)
    assert res.returncode == 0, f"cove {' '.join(args)}: {res.returncode}: {res.stderr}"
    return res.stdout


def run_d(root: Path, *args: str) -> str:
    return ok(root, "run", "-d", *args).strip()


def sh(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`cove run --rm ARGS` (the last of ARGS a shell script for busybox sh)."""
    return cove(root, "run", "--rm", *args[:-1], "bb:1", "sh", "-c", args[-1])


def ip_of(root: Path, container: str, network: str = "bridge") -> str:
    data = json.loads(ok(root, "inspect", container))[0]
    address = str(data["NetworkSettings"]["Networks"][network]["IPAddress"])
    assert address, data["NetworkSettings"]
    return address


def fetch(url: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def root_veths(root: Path, ids: list[str]) -> list[str]:
    """The host's veths of the containers `ids` of engine `root`, and no one else's (other
    roots' containers, another test session's, a developer's, have theirs): named after
    (container, network of the root) as `bridge.veth_name` names them, or with an alias
    ("cove:<container id>:...") that names one of the containers."""
    from cove.engine.network.bridge import alias_owner, veth_name

    folder = root / "networks"
    networks = [p.stem for p in folder.glob("*.json")] if folder.is_dir() else []
    names = {veth_name(cid, network) for cid in ids for network in networks}
    out = subprocess.run(["ip", "-d", "-j", "link", "show", "type", "veth"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return sorted(
        str(link["ifname"]) for link in json.loads(out or "[]")
        if link["ifname"] in names or alias_owner(str(link.get("ifalias") or ""))[0] in ids
    )  # fmt: skip


def nft_table() -> str:
    res = subprocess.run(["nft", "list", "table", "inet", "cove"], capture_output=True, text=True)
    return res.stdout if res.returncode == 0 else ""


def leases(root: Path) -> list[str]:
    db = root / "networks" / "ipam.db"
    if not db.exists():
        return []
    import sqlite3

    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT container_id FROM leases")]


def data_plane_clean(root: Path, ids: list[str]) -> None:
    """No veth of the root's containers `ids` on the host, no rule naming them, no lease."""
    poll(lambda: root_veths(root, ids) == [], "the veths go with the namespaces")
    poll(lambda: not any(cid in nft_table() for cid in ids), "no rule of the containers")
    assert leases(root) == []


def host_address() -> str:
    """The host's own address: that of the interface of the default route ("" if none)."""
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "default"],
                                       capture_output=True, text=True).stdout or "[]")  # fmt: skip
    if not routes:
        return ""
    addresses = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "dev",
                                           routes[0]["dev"]], capture_output=True,
                                          text=True).stdout or "[]")  # fmt: skip
    for link in addresses:
        for info in link.get("addr_info", []):
            return str(info["local"])
    return ""


def uplink_mtu() -> int:
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "default"],
                                       capture_output=True, text=True).stdout or "[]")  # fmt: skip
    if not routes:
        return 1500
    return int(Path(f"/sys/class/net/{routes[0]['dev']}/mtu").read_text())


@pytest.fixture
def net(engine: Path) -> Iterator[Path]:
    """An engine root with bb:1; afterwards every container is removed, and nothing of them
    may remain in the data plane."""
    yield engine
    ids = cove(engine, "ps", "-a", "-q", "--no-trunc").stdout.split()
    try:
        remove_everything(engine)
        data_plane_clean(engine, ids)
    finally:
        from cove.engine.network import NetworkService
        from cove.engine.network.repair import remove_network_links

        with NetworkService(str(engine)) as service:
            for network in service.stored():
                if network.name != "bridge":
                    remove_network_links(network, str(engine))


@pytest.fixture
def upstream() -> Iterator[str]:
    """A network namespace linked to the host (UP_HOST here, UP_PEER there) whose server on
    port 8080 answers each request with the address the request came from."""
    tag = f"{os.getpid() % 0xFFFF:04x}"
    ns = f"covetest-up-{tag}"
    code = (
        "import http.server\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = self.client_address[0].encode()\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
        "        self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        f"http.server.HTTPServer(('{UP_PEER}', 8080), H).serve_forever()\n"
    )
    with serving_namespace(
        ns, (f"cvtu{tag}", f"cvtd{tag}"), (UP_HOST, UP_PEER), ["-c", code], 8080
    ):
        yield ns


def in_netns(ns: str, code: str) -> str:
    res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                         capture_output=True, text=True, timeout=30)  # fmt: skip
    assert res.returncode == 0, res.stderr
    return res.stdout


# --- published ports ---------------------------------------------------------------------------


def test_published_port_from_localhost_host_address_and_another_host(
    net: Path, upstream: str
) -> None:
    cid = run_d(net, "--name", "web", "-p", "18080:80", "bb:1", "sh", "-c", HTTPD)
    assert fetch("http://127.0.0.1:18080/") == "hello-cove\n"
    address = host_address()
    if address:
        assert fetch(f"http://{address}:18080/") == "hello-cove\n"
    # from "another host": the upstream namespace reaches the host's address on its link
    code = (f"import urllib.request; print(urllib.request.urlopen('http://{UP_HOST}:18080/', "
            "timeout=5).read().decode(), end='')")  # fmt: skip
    answer = in_netns(upstream, code)
    assert answer == "hello-cove\n"
    data = json.loads(ok(net, "inspect", "web"))[0]
    settings = data["NetworkSettings"]
    assert settings["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "18080"}]}
    assert data["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "18080"}]}
    assert settings["IPAddress"] == settings["Networks"]["bridge"]["IPAddress"] != ""
    assert settings["Networks"]["bridge"]["MacAddress"].startswith("02:42:")
    assert ok(net, "port", "web").strip() == "80/tcp -> 0.0.0.0:18080"
    assert f'comment "cove:{cid}"' in nft_table()
    clash = cove(net, "run", "-d", "-p", "18080:80", "bb:1", "sleep", "60")
    assert clash.returncode == 125 and "already allocated" in clash.stderr
    ok(net, "rm", "-f", "web")
    assert cid not in nft_table()


def test_udp_port(net: Path) -> None:
    made = cove(net, "image", "bootstrap", "--from-host", "host:seed")
    assert made.returncode == 0, made.stderr
    echo = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.bind(('0.0.0.0', 53))\nwhile True:\n    data, peer = s.recvfrom(512)\n"
            "    s.sendto(b'echo ' + data, peer)\n")  # fmt: skip
    run_d(net, "-p", "127.0.0.1:15353:53/udp", "host:seed", "python3", "-c", echo)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(0.5)
        deadline = time.monotonic() + 10
        while True:
            client.sendto(b"ping", ("127.0.0.1", 15353))
            try:
                assert client.recvfrom(512)[0] == b"echo ping"
                break
            except TimeoutError:
                assert time.monotonic() < deadline, "no udp answer"


def test_publish_all_picks_free_ports(net: Path, tmp_path: Path) -> None:
    ok(net, "commit", "-c", "EXPOSE 80", "-c", "EXPOSE 81/udp",
       run_d(net, "bb:1", "true"), "bb:exposed")  # fmt: skip
    cid = run_d(net, "-P", "bb:exposed", "sh", "-c", HTTPD)
    lines = ok(net, "port", cid).splitlines()
    assert [line.split(" -> ")[0] for line in lines] == ["80/tcp", "81/udp"]
    port = int(lines[0].rsplit(":", 1)[1])
    assert port > 0 and fetch(f"http://127.0.0.1:{port}/") == "hello-cove\n"


# --- reachability ------------------------------------------------------------------------------


def test_default_bridge_containers_reach_each_other(net: Path) -> None:
    run_d(net, "--name", "peer", "bb:1", "sh", "-c", HTTPD)
    address = ip_of(net, "peer")
    res = sh(net, get(f"http://{address}/"))
    assert (res.returncode, res.stdout) == (0, "hello-cove\n"), res.stderr


def test_user_networks_are_isolated(net: Path) -> None:
    ok(net, "network", "create", "n1")
    ok(net, "network", "create", "n2")
    run_d(net, "--name", "peer", "--network", "n1", "bb:1", "sh", "-c", HTTPD)
    address = ip_of(net, "peer", "n1")
    same = sh(net, "--network", "n1", get(f"http://{address}/"))
    assert (same.returncode, same.stdout) == (0, "hello-cove\n"), same.stderr
    other = sh(net, "--network", "n2", f"ping -c1 -W1 {address} || exit 9")
    assert other.returncode == 9
    default = sh(net, unreachable(f"http://{address}/"))
    assert default.returncode == 9


def test_a_container_on_two_networks_is_reached_on_each(net: Path) -> None:
    ok(net, "network", "create", "n1")
    ok(net, "network", "create", "n2")
    run_d(net, "--name", "both", "--network", "n1", "--network", "n2", "--network-alias",
          "web", "bb:1", "sh", "-c", HTTPD)  # fmt: skip
    networks = json.loads(ok(net, "inspect", "both"))[0]["NetworkSettings"]["Networks"]
    assert set(networks) == {"n1", "n2"}, networks
    for network, name in (("n1", "both"), ("n1", "web"), ("n2", "both")):
        res = sh(net, "--network", network, get(f"http://{name}/"))
        assert (res.returncode, res.stdout) == (0, "hello-cove\n"), (network, name, res.stderr)
    mixed = cove(net, "run", "--rm", "--network", "bridge", "--network", "n1", "bb:1", "true")
    assert mixed.returncode == 125 and "non-user-defined" in mixed.stderr, mixed.stderr
    twice = cove(net, "run", "--rm", "--network", "n1", "--network", "n1", "bb:1", "true")
    assert twice.returncode == 125 and "more than once" in twice.stderr, twice.stderr
    unknown = cove(net, "run", "--rm", "--network", "n1", "--network", "nope", "bb:1", "true")
    assert unknown.returncode == 125 and "nope" in unknown.stderr, unknown.stderr


def test_exposed_ports_show_in_inspect_and_go_to_publish_all(net: Path) -> None:
    ok(net, "create", "--name", "exp", "--expose", "8000-8001/udp", "--expose", "81",
       "-p", "127.0.0.1::80", "-P", "bb:1", "sleep", "60")  # fmt: skip
    config = json.loads(ok(net, "inspect", "exp"))[0]["Config"]
    assert list(config["ExposedPorts"]) == ["80/tcp", "81/tcp", "8000/udp", "8001/udp"]
    bad = cove(net, "create", "--expose", "eighty", "bb:1", "true")
    assert bad.returncode == 125 and "eighty" in bad.stderr, bad.stderr
    ok(net, "start", "exp")
    published = ok(net, "port", "exp")
    for port in ("80/tcp", "81/tcp", "8000/udp", "8001/udp"):
        assert port in published, published
    # docker ps's PORTS: each published port, HOST:PORT->PORT/PROTO
    row = ok(net, "ps", "--filter", "name=exp", "--format", "{{.Ports}}").strip()
    shown = row.split(", ")
    assert len(shown) == 4 and all("->" in item for item in shown), row
    assert any(item.startswith("127.0.0.1:") and item.endswith("->80/tcp") for item in shown)
    run_d(net, "--name", "only-exposed", "--expose", "9000", "bb:1", "sleep", "60")
    assert ok(net, "ps", "--filter", "name=only-exposed", "--format", "{{.Ports}}") == (
        "9000/tcp\n"
    )


def test_egress_is_masqueraded_and_internal_networks_stay_inside(net: Path, upstream: str) -> None:
    res = sh(net, get(f"http://{UP_PEER}:8080/"))
    assert (res.returncode, res.stdout) == (0, UP_HOST), res.stderr  # the host's address
    ok(net, "network", "create", "--internal", "inside")
    run_d(net, "--name", "peer", "--network", "inside", "bb:1", "sh", "-c", HTTPD)
    internal = sh(net, "--network", "inside", unreachable(f"http://{UP_PEER}:8080/"))
    assert internal.returncode == 9
    neighbour = sh(net, "--network", "inside", get(f"http://{ip_of(net, 'peer', 'inside')}/"))
    assert (neighbour.returncode, neighbour.stdout) == (0, "hello-cove\n")
    route = sh(net, "--network", "inside", "ip route")
    assert "default" not in route.stdout


# --- the container's side ----------------------------------------------------------------------


def test_generated_etc_files_address_and_mtu(net: Path) -> None:
    script = (
        "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname; "
        "echo ---; hostname; ip -o -4 addr show eth0; cat /sys/class/net/eth0/mtu"
    )
    res = sh(net, "--hostname", "box", "--add-host", "db.local:10.1.2.3", "--dns", "10.9.9.9",
             "--dns-search", "example.test", "--dns-option", "ndots:2", script)  # fmt: skip
    assert res.returncode == 0, res.stderr
    hosts, resolv, hostname, rest = res.stdout.split("---\n")
    assert "127.0.0.1\tlocalhost\n" in hosts and "10.1.2.3\tdb.local\n" in hosts
    address = rest.split("inet ")[1].split("/")[0]
    assert f"{address}\tbox\n" in hosts
    assert resolv == "nameserver 10.9.9.9\nsearch example.test\noptions ndots:2\n"
    assert hostname == "box\n" and rest.startswith("box\n")
    assert rest.strip().endswith(str(uplink_mtu()))
    plain = sh(net, "cat /etc/resolv.conf")
    assert plain.returncode == 0 and "nameserver" in plain.stdout
    assert "127.0.0.53" not in plain.stdout


def test_none_host_and_container_modes(net: Path) -> None:
    links = sh(net, "--network", "none", "ip -o link | wc -l")
    assert links.stdout.strip() == "1"  # lo only
    ours = Path("/proc/self/ns/net").readlink()
    host = sh(net, "--network", "host", "readlink /proc/self/ns/net")
    assert host.stdout.strip() == str(ours)
    run_d(net, "--name", "peer", "bb:1", "sh", "-c", HTTPD)
    address = ip_of(net, "peer")
    joined = sh(net, "--network", "container:peer",
                "ip -o -4 addr show eth0; " + get("http://127.0.0.1/"))  # fmt: skip
    assert address in joined.stdout and "hello-cove" in joined.stdout, joined.stderr
    refused = cove(net, "run", "--rm", "--network", "container:peer", "-p", "80", "bb:1", "true")
    assert refused.returncode == 125 and "conflicting options" in refused.stderr


def test_restart_keeps_networking_and_stop_frees_the_address(net: Path) -> None:
    cid = run_d(net, "--name", "peer", "-p", "18081:80", "bb:1", "sh", "-c", HTTPD)
    assert fetch("http://127.0.0.1:18081/") == "hello-cove\n"
    ok(net, "stop", "-t", "1", "peer")
    assert leases(net) == []
    assert cid not in nft_table()
    ok(net, "start", "peer")
    assert fetch("http://127.0.0.1:18081/") == "hello-cove\n"


# --- crashes -----------------------------------------------------------------------------------

CRASHING_CLI = """
import os, signal, sys
sys.path.insert(0, {src!r})
step = os.environ["COVE_TEST_CRASH"]

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

from cove.engine.network import attach, bridge, firewall
if step == "prepared":  # leases taken, /etc/hosts written; the runtime's create not yet
    real_prepare = attach.prepare
    def prepare(*args, **kwargs):
        real_prepare(*args, **kwargs)
        die()
    attach.prepare = prepare
elif step == "wired":  # the veth made and configured; nft still running
    real_attach = bridge.attach
    def wire(*args, **kwargs):
        real_attach(*args, **kwargs)
        die()
    bridge.attach = wire
elif step == "published":  # rules in place; the record has no "ports" yet
    real_finish = firewall.ensure_finish
    def finish(*args, **kwargs):
        real_finish(*args, **kwargs)
        die()
    firewall.ensure_finish = finish
from cove.cli.engine import main
main()
"""


@pytest.mark.parametrize("step", ["prepared", "wired", "published"])
def test_kill_during_network_setup_then_repair(net: Path, tmp_path: Path, step: str) -> None:
    script = tmp_path / "crashing_cove.py"
    script.write_text(CRASHING_CLI.format(src=str(SRC)))
    res = subprocess.run([sys.executable, str(script), "--root", str(net), "run", "-d", "-p",
                          "18082:80", "bb:1", "sleep", "60"], capture_output=True, text=True,
                         env={**os.environ, "COVE_TEST_CRASH": step}, timeout=60,
                         start_new_session=True)  # fmt: skip
    assert res.returncode == -9, res.stderr
    ids = cove(net, "ps", "-a", "-q", "--no-trunc").stdout.split()
    assert len(ids) == 1  # the container the killed run made
    check = [cove_cli(), "--root", str(net), "system", "check"]
    fixed = subprocess.run([*check, "--repair"], capture_output=True, text=True, env=CHECK_ENV,
                           timeout=60, start_new_session=True)  # fmt: skip
    assert fixed.returncode == 0 and "repair failed" not in fixed.stdout, fixed.stdout
    again = subprocess.run(check, capture_output=True, text=True, env=CHECK_ENV, timeout=60,
                           start_new_session=True)  # fmt: skip
    assert again.stdout == "nothing to repair\n", again.stdout
    data_plane_clean(net, ids)
    killed = [line for line in nft_table().splitlines() if "dport 18082 " in line]
    assert not any(f"cove:{cid}" in line for line in killed for cid in ids), killed


def test_network_connect_and_disconnect_a_running_container(net: Path) -> None:
    ok(net, "network", "create", "side")
    cid = run_d(net, "--name", "peer", "bb:1", "sh", "-c", HTTPD)
    ok(net, "network", "connect", "side", "peer")
    side_ip = ip_of(net, "peer", "side")
    inside = cove(net, "exec", "peer", "sh", "-c", "ip -o -4 addr show eth1; cat /etc/hosts")
    assert f"inet {side_ip}/" in inside.stdout and f"{side_ip}\t{cid[:12]}" in inside.stdout
    reached = sh(net, "--network", "side", get(f"http://{side_ip}/"))
    assert (reached.returncode, reached.stdout) == (0, "hello-cove\n"), reached.stderr
    ok(net, "network", "disconnect", "side", "peer")
    after = cove(net, "exec", "peer", "sh", "-c", "ip -o link; cat /etc/hosts")
    assert "eth1" not in after.stdout and side_ip not in after.stdout


def test_the_data_plane_check_sees_only_its_own_roots_containers(
    net: Path, tmp_path: Path, busybox_rootfs: Path
) -> None:
    """`data_plane_clean` (the `net` fixture's teardown) must not see another root's
    containers: another test session's, a developer's."""
    import tarfile

    other = tmp_path / "other"
    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    ok(other, "import", str(tmp_path / "other.tar"), "bb:1")
    theirs = run_d(other, "bb:1", "sleep", "600")
    try:
        mine = run_d(net, "bb:1", "sleep", "600")
        (my_veth,), (their_veth,) = root_veths(net, [mine]), root_veths(other, [theirs])
        assert my_veth != their_veth
        ok(net, "rm", "-f", mine)
        data_plane_clean(net, [mine])  # theirs is still up
        assert root_veths(other, [theirs]) == [their_veth]
    finally:
        remove_everything(other)
