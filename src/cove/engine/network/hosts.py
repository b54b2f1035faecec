"""A container's /etc/hosts, /etc/hostname and /etc/resolv.conf, as Docker makes them.

The files live in the container's folder (`<root>/containers/<id>/hosts`, ...: the paths
`inspect` shows as HostsPath, HostnamePath, ResolvConfPath) and are bind-mounted over the
image's (read-only with a read-only root filesystem). `create` writes them; `start` writes
/etc/hosts again once the container has its addresses. Rewrites keep the file (same inode):
a bind mount holds the inode, so a running container sees the change.

- hosts: Docker's localhost lines, the `--add-host` entries, then each of the container's
  addresses with its hostname. With `--network host`: the host's /etc/hosts and the
  `--add-host` entries.
- resolv.conf: the host's. When the host's nameservers are all local (a stub resolver such as
  systemd-resolved's 127.0.0.53, unreachable from another network namespace), the upstream
  servers of /run/systemd/resolve/resolv.conf, else Docker's fallback 8.8.8.8 and 8.8.4.4.
  `--dns`, `--dns-search`, `--dns-option` replace the servers, the search list, the options.
  With `--network host` local servers are kept (the container shares the host's loopback).
- Embedded DNS: on user networks the engine's responder answers container names (Docker's
  does at 127.0.0.11; cove's listens on the network's gateway, `attach.embedded_dns`), and
  resolv.conf lists only it, with the servers it forwards other names to in a comment:
  `--dns` servers when given (the responder then forwards to those, as Docker's), else the
  host's. On the default bridge (no responder) the servers are listed directly.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cove.errors import InvalidArgument

HOSTS, HOSTNAME, RESOLV_CONF = "hosts", "hostname", "resolv.conf"
HOST_RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
HOST_HOSTS = "/etc/hosts"
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
DESTINATIONS = {HOSTS: "/etc/hosts", HOSTNAME: "/etc/hostname", RESOLV_CONF: "/etc/resolv.conf"}
HOST_GATEWAY = "host-gateway"

LOCALHOST_LINES = (
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
)


@dataclass(frozen=True)
class ExtraHost:
    name: str
    ip: str


def parse_add_host(text: str, host_gateway: str = "") -> ExtraHost:
    """`--add-host NAME:IP` (or NAME=IP); IP may be `host-gateway` (the gateway of the
    container's network: `host_gateway`)."""
    if "=" in text:
        name, _, ip = text.partition("=")
    else:
        name, _, ip = text.partition(":")
    name, ip = name.strip(), ip.strip()
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if not name or not ip or any(c.isspace() for c in name):
        raise InvalidArgument(f"invalid value '{text}' for flag --add-host: want NAME:IP")
    if ip == HOST_GATEWAY:
        if not host_gateway:
            raise InvalidArgument(
                f"invalid value '{text}' for flag --add-host: host-gateway needs a network"
                " with a gateway"
            )
        ip = host_gateway
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise InvalidArgument(
            f"invalid value '{text}' for flag --add-host: invalid IP address {ip!r}"
        ) from None
    return ExtraHost(name, ip)


def hosts_text(
    hostname: str,
    addresses: Sequence[str] = (),
    extra: Sequence[ExtraHost] = (),
    *,
    host_hosts: str | None = None,
) -> str:
    """/etc/hosts: Docker's localhost lines (or `host_hosts`, the host's file, for --network
    host), the extra hosts, then "IP<TAB>hostname" for each address."""
    if host_hosts is not None:
        lines = host_hosts.rstrip("\n").split("\n") if host_hosts.strip() else []
    else:
        lines = list(LOCALHOST_LINES)
    lines += [f"{entry.ip}\t{entry.name}" for entry in extra]
    short = hostname.split(".", 1)[0]
    names = hostname if short == hostname else f"{hostname} {short}"
    lines += [f"{ip}\t{names}" for ip in addresses]
    return "\n".join(lines) + "\n"


@dataclass
class ResolvConf:
    nameservers: list[str]
    search: list[str]
    options: list[str]
    other: list[str]  # lines kept as they are (sortlist, domain, comments...)


def parse_resolv_conf(text: str) -> ResolvConf:
    parsed = ResolvConf([], [], [], [])
    for raw in text.splitlines():
        line = raw.strip()
        words = line.split()
        if not words or line.startswith(("#", ";")):
            continue
        key, values = words[0], words[1:]
        if key == "nameserver" and values:
            parsed.nameservers.append(values[0])
        elif key == "search":
            parsed.search = values  # the last one wins, as in the resolver
        elif key == "domain":
            parsed.search = values[:1]
        elif key == "options":
            parsed.options += values
        else:
            parsed.other.append(line)
    return parsed


def is_local(server: str) -> bool:
    try:
        return ipaddress.ip_address(server.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def resolv_conf(
    host_text: str,
    *,
    systemd_text: str | None = None,
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
    keep_local: bool = False,
    embedded_dns: str = "",
) -> str:
    """The container's resolv.conf (see the module docstring). `keep_local`: --network host.
    `embedded_dns`: the address of the engine's resolver on the network ("" for none)."""
    host = parse_resolv_conf(host_text)
    servers = list(host.nameservers)
    if not keep_local and servers and all(is_local(s) for s in servers):
        upstream = parse_resolv_conf(systemd_text) if systemd_text is not None else None
        if upstream is not None and any(not is_local(s) for s in upstream.nameservers):
            servers = upstream.nameservers
            host.search = host.search or upstream.search
    if not keep_local:
        servers = [s for s in servers if not is_local(s)]
        if not servers:
            servers = list(FALLBACK_NAMESERVERS)
    for server in dns:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidArgument(
                f"invalid value '{server}' for flag --dns: not an IP address"
            ) from None
    if dns:
        servers = list(dns)
    search = host.search
    if dns_search:
        search = [] if list(dns_search) == ["."] else [s for s in dns_search if s != "."]
    options = host.options
    if dns_options:
        options = list(dns_options)
    lines = []
    if embedded_dns:
        # The engine's resolver answers container names and forwards the rest to `servers`.
        lines.append(f"nameserver {embedded_dns}")
        if "ndots:0" not in options and not any(o.startswith("ndots:") for o in options):
            options = [*options, "ndots:0"]
        lines.append(f"# upstream: {' '.join(servers)}")
    else:
        lines += [f"nameserver {s}" for s in servers]
    if search:
        lines.append("search " + " ".join(search))
    if options:
        lines.append("options " + " ".join(options))
    lines += host.other
    return "\n".join(lines) + "\n"


def host_resolv_texts() -> tuple[str, str | None]:
    """(the host's /etc/resolv.conf, systemd-resolved's upstream file or None)."""
    try:
        host = Path(HOST_RESOLV_CONF).read_text()
    except OSError:
        host = ""
    try:
        systemd: str | None = Path(SYSTEMD_RESOLV_CONF).read_text()
    except OSError:
        systemd = None
    return host, systemd


def write_in_place(path: Path, text: str) -> None:
    """Create, or rewrite keeping the inode (a bind mount of it sees the new text)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    finally:
        os.close(fd)


def mounts_for(folder: Path, read_only: bool) -> list[dict[str, object]]:
    """The spec's bind mounts of the three files."""
    options = ["rbind", "rprivate"] + (["ro"] if read_only else [])
    return [
        {"destination": DESTINATIONS[name], "type": "bind", "source": str(folder / name),
         "options": list(options)}
        for name in (RESOLV_CONF, HOSTNAME, HOSTS)
    ]  # fmt: skip


def write_files(
    folder: Path,
    *,
    hostname: str,
    network_mode: str,
    addresses: Sequence[str] = (),
    add_hosts: Sequence[str] = (),
    host_gateway: str = "",
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
    embedded_dns: str = "",
) -> None:
    """Write the three files into `folder` (the container's)."""
    folder.mkdir(parents=True, exist_ok=True)
    extra = [parse_add_host(text, host_gateway) for text in add_hosts]
    host_hosts = None
    if network_mode == "host":
        try:
            host_hosts = Path(HOST_HOSTS).read_text()
        except OSError:
            host_hosts = ""
    write_in_place(folder / HOSTS, hosts_text(hostname, addresses, extra, host_hosts=host_hosts))
    write_in_place(folder / HOSTNAME, hostname + "\n")
    host_text, systemd_text = host_resolv_texts()
    write_in_place(folder / RESOLV_CONF, resolv_conf(
        host_text, systemd_text=systemd_text, dns=dns, dns_search=dns_search,
        dns_options=dns_options, keep_local=network_mode == "host", embedded_dns=embedded_dns,
    ))  # fmt: skip
