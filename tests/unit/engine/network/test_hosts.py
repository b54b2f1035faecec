"""cove.engine.network.hosts: /etc/hosts, /etc/hostname and /etc/resolv.conf as Docker
writes them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cove.engine.network import hosts
from cove.engine.network.hosts import ExtraHost, parse_add_host, resolv_conf
from cove.errors import InvalidArgument

LOCALHOST = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
)


def test_hosts_file() -> None:
    assert hosts.hosts_text("abc123") == LOCALHOST
    text = hosts.hosts_text("abc123", ["172.17.0.2"], [ExtraHost("db", "10.0.0.5")])
    assert text == LOCALHOST + "10.0.0.5\tdb\n172.17.0.2\tabc123\n"
    assert hosts.hosts_text("web.example.com", ["10.1.0.2"]).endswith(
        "10.1.0.2\tweb.example.com web\n"
    )
    # --network host: the host's file, then the extra hosts
    assert hosts.hosts_text("h", [], [ExtraHost("x", "1.2.3.4")],
                            host_hosts="127.0.0.1 localhost\n") == (
        "127.0.0.1 localhost\n1.2.3.4\tx\n"
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "name", "ip"),
    [("db:10.0.0.5", "db", "10.0.0.5"), ("db=10.0.0.5", "db", "10.0.0.5"),
     ("v6:::1", "v6", "::1"), ("v6=[fe80::1]", "v6", "fe80::1"),
     ("gw:host-gateway", "gw", "172.17.0.1")],
)  # fmt: skip
def test_add_host(text: str, name: str, ip: str) -> None:
    assert parse_add_host(text, host_gateway="172.17.0.1") == ExtraHost(name, ip)


@pytest.mark.parametrize("text", ["db", "db:", ":1.2.3.4", "db:not-an-ip", "a b:1.2.3.4"])
def test_bad_add_host(text: str) -> None:
    with pytest.raises(InvalidArgument, match="--add-host"):
        parse_add_host(text)


def test_host_gateway_needs_a_network() -> None:
    with pytest.raises(InvalidArgument, match="host-gateway"):
        parse_add_host("gw:host-gateway")


def test_resolv_conf_copies_the_hosts() -> None:
    host = (
        "# comment\nnameserver 10.0.0.53\nsearch corp.example\noptions edns0\nsortlist 10.0.0.0\n"
    )
    assert resolv_conf(host) == (
        "nameserver 10.0.0.53\nsearch corp.example\noptions edns0\nsortlist 10.0.0.0\n"
    )


def test_local_stub_is_replaced_by_systemd_upstream() -> None:
    stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n"
    upstream = "nameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch lan\n"
    assert resolv_conf(stub, systemd_text=upstream) == (
        "nameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch lan\noptions edns0 trust-ad\n"
    )


def test_local_only_without_upstream_falls_back_to_docker_defaults() -> None:
    assert resolv_conf("nameserver 127.0.0.1\n") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    assert resolv_conf("nameserver ::1\n", systemd_text="nameserver 127.0.0.53\n") == (
        "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    )
    assert resolv_conf("") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    # a local server among others is dropped; the others stay
    assert resolv_conf("nameserver 127.0.0.1\nnameserver 10.1.1.1\n") == "nameserver 10.1.1.1\n"


def test_host_network_keeps_local_servers() -> None:
    assert resolv_conf("nameserver 127.0.0.53\n", keep_local=True) == "nameserver 127.0.0.53\n"


def test_dns_flags_replace() -> None:
    host = "nameserver 10.0.0.53\nsearch corp.example\noptions edns0\n"
    text = resolv_conf(host, dns=["1.1.1.1", "9.9.9.9"], dns_search=["a.test", "b.test"],
                       dns_options=["ndots:2", "timeout:1"])  # fmt: skip
    assert text == ("nameserver 1.1.1.1\nnameserver 9.9.9.9\nsearch a.test b.test\n"
                    "options ndots:2 timeout:1\n")  # fmt: skip
    assert "search" not in resolv_conf(host, dns_search=["."])  # "." empties the list
    with pytest.raises(InvalidArgument, match="--dns"):
        resolv_conf(host, dns=["dns.example"])


def test_embedded_dns_shape() -> None:
    text = resolv_conf("nameserver 10.0.0.53\nsearch lan\n", embedded_dns="127.0.0.11")
    assert text == ("nameserver 127.0.0.11\n# upstream: 10.0.0.53\nsearch lan\noptions ndots:0\n")


def test_write_files_keeps_the_inode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host_resolv = tmp_path / "host-resolv.conf"
    host_resolv.write_text("nameserver 127.0.0.53\n")
    monkeypatch.setattr(hosts, "HOST_RESOLV_CONF", str(host_resolv))
    monkeypatch.setattr(hosts, "SYSTEMD_RESOLV_CONF", str(tmp_path / "none"))
    folder = tmp_path / "ctr"
    hosts.write_files(folder, hostname="box", network_mode="bridge", add_hosts=["db:10.0.0.5"])
    inode = os.stat(folder / "hosts").st_ino
    assert (folder / "hostname").read_text() == "box\n"
    assert (folder / "resolv.conf").read_text() == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    hosts.write_files(folder, hostname="box", network_mode="bridge", addresses=["172.17.0.9"],
                      add_hosts=["db:10.0.0.5"])  # fmt: skip
    assert os.stat(folder / "hosts").st_ino == inode  # a bind mount of it sees the change
    assert (folder / "hosts").read_text() == LOCALHOST + "10.0.0.5\tdb\n172.17.0.9\tbox\n"


def test_mounts() -> None:
    mounts = hosts.mounts_for(Path("/c"), read_only=True)
    assert [m["destination"] for m in mounts] == ["/etc/resolv.conf", "/etc/hostname", "/etc/hosts"]
    assert mounts[2] == {"destination": "/etc/hosts", "type": "bind", "source": "/c/hosts",
                         "options": ["rbind", "rprivate", "ro"]}  # fmt: skip
    assert "ro" not in hosts.mounts_for(Path("/c"), read_only=False)[0]["options"]
