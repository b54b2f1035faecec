"""The host's network around `network_bench.py`: what it looked like before the run
(links, network namespaces, nftables tables, netavark's iptables chains and state), and
putting it back after both engines removed everything (a bridge, a namespace, netavark's
chains and state, the elements cove left in its shared table).

Standard library only.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

from bench_procs import processes

# podman 4.3 keeps netavark's IPAM database (and aardvark-dns' folder) here when run as
# root, whatever its configuration says: the script notes what it finds there first.
NETAVARK_RUN_DIR = Path("/run/containers/networks")
NETNS_DIR = Path("/run/netns")
PODMAN_BRIDGE = "podman0"
NETAVARK_HELPERS = ("netavark", "aardvark-dns", "conmon", "podman")


def output_lines(argv: Sequence[str]) -> list[str]:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def link_names() -> set[str]:
    names = set()
    for line in output_lines(["ip", "-o", "link", "show"]):
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.add(parts[1].strip().split("@")[0])
    return names


def nft_tables() -> set[str]:
    """{"ip nat", "inet cove", ...}"""
    return {line[len("table ") :].strip() for line in output_lines(["nft", "list", "tables"])}


IPTABLES = {"ip": "iptables", "ip6": "ip6tables"}


def netavark_chains() -> dict[str, set[str]]:
    """The NETAVARK* chains of each iptables(-nft) table, keyed "ip nat", "ip filter" ..."""
    found: dict[str, set[str]] = {}
    for family, tool in IPTABLES.items():
        for table in ("nat", "filter"):
            chains = {
                line.split()[1]
                for line in output_lines([tool, "-w", "-t", table, "-S"])
                if line.startswith("-N NETAVARK")
            }
            if chains:
                found[f"{family} {table}"] = chains
    return found


@dataclass
class HostNet:
    """What the host's network looked like before the benchmark, to tell its own leftovers
    (and netavark's) from anyone else's."""

    links: set[str]
    netns: set[str]
    tables: set[str]
    netavark: dict[str, set[str]]
    run_dir: set[str]
    ip_forward: str

    @classmethod
    def snapshot(cls) -> HostNet:
        return cls(
            links=link_names(),
            netns=set(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else set(),
            tables=nft_tables(),
            netavark=netavark_chains(),
            run_dir=set(os.listdir(NETAVARK_RUN_DIR)) if NETAVARK_RUN_DIR.is_dir() else set(),
            ip_forward=Path("/proc/sys/net/ipv4/ip_forward").read_text().strip(),
        )


def foreign_podman(marker: str) -> list[str]:
    """podman, conmon, netavark or aardvark-dns processes not started for this run."""
    return [
        f"{p.pid} {p.exe}"
        for p in processes()
        if p.exe in NETAVARK_HELPERS and marker not in p.cmdline and p.pid != os.getpid()
    ]


def remove_netavark_rules(before: HostNet, notes: list[str], problems: list[str]) -> None:
    """netavark (1.4, iptables driver) leaves its chains behind when the last container
    goes (NETAVARK_FORWARD, NETAVARK-HOSTPORT-*, and the jumps to them): remove those that
    were not there before, then the iptables-nft tables it created if they are empty."""
    for family, tool in IPTABLES.items():
        for table in ("nat", "filter"):
            key = f"{family} {table}"
            if before.netavark.get(key):
                notes.append(f"netavark chains in {key} were there before: left alone")
                continue
            rules = output_lines([tool, "-w", "-t", table, "-S"])
            chains = [r.split()[1] for r in rules if r.startswith("-N NETAVARK")]
            jumps = [
                r
                for r in rules
                if r.startswith("-A ")
                and not r.split()[1].startswith("NETAVARK")
                and " -j NETAVARK" in r
            ]
            for rule in jumps:
                args = shlex.split(rule)[1:]  # drop "-A"
                proc = subprocess.run(
                    [tool, "-w", "-t", table, "-D", *args], capture_output=True, text=True
                )
                if proc.returncode != 0:
                    problems.append(f"{tool} -t {table} -D {' '.join(args)}: {proc.stderr.strip()}")
            for verb in ("-F", "-X"):
                for chain in chains:
                    proc = subprocess.run(
                        [tool, "-w", "-t", table, verb, chain], capture_output=True, text=True
                    )
                    if proc.returncode != 0:
                        problems.append(f"{tool} -t {table} {verb} {chain}: {proc.stderr.strip()}")
            if chains or jumps:
                notes.append(
                    f"netavark left {len(chains)} chains and {len(jumps)} jumps in {key}: removed"
                )
            if key in before.tables or key not in nft_tables():
                continue
            left = [
                r for r in output_lines([tool, "-w", "-t", table, "-S"]) if not r.startswith("-P ")
            ]
            if left:
                notes.append(f"table {key} (new) still holds rules of others: left alone")
                continue
            proc = subprocess.run(["nft", "delete", "table", *key.split()], capture_output=True)
            if proc.returncode == 0:
                notes.append(f"table {key} (made by netavark through iptables-nft): removed")
            else:
                problems.append(f"nft delete table {key}: {proc.stderr.decode().strip()}")


def host_addresses() -> list[IPv4Interface]:
    found = []
    for line in output_lines(["ip", "-o", "-4", "addr", "show"]):
        parts = line.split()
        if "inet" in parts:
            found.append(IPv4Interface(parts[parts.index("inet") + 1]))
    return found


def remove_cove_elements(bridge: str, subnet: str, problems: list[str]) -> None:
    """cove's table `inet cove` is shared by every engine root on the host.  When the last
    container of a bridge goes while containers of other roots keep the table, cove
    deletes the bridge but leaves its name in the sets `bridges` and `hairpin` and its
    subnet in `nat_subnets`: report that, and remove this run's elements."""
    if "inet cove" not in nft_tables() or bridge in link_names():
        return
    text = "\n".join(output_lines(["nft", "list", "table", "inet", "cove"]))
    if f'"{bridge}"' not in text:
        return
    removed = []
    for set_name, element in (("bridges", f'"{bridge}"'), ("hairpin", f'"{bridge}" . "{bridge}"')):
        proc = subprocess.run(
            ["nft", "delete", "element", "inet", "cove", set_name, f"{{ {element} }}"],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            removed.append(set_name)
    in_use = any(addr.ip in IPv4Network(subnet) for addr in host_addresses() if subnet)
    if subnet and subnet in text and not in_use:
        proc = subprocess.run(
            ["nft", "delete", "element", "inet", "cove", "nat_subnets", f"{{ {subnet} }}"],
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            removed.append(f"nat_subnets ({subnet})")
    problems.append(
        f"cove: bridge {bridge} is gone, but the sets of table inet cove (kept by other "
        f"containers on this host) still named it; removed from: {', '.join(removed)}"
    )


def restore_host_net(
    before: HostNet, cove_bridge: str | None, cove_subnet: str, podman_used: bool, marker: str
) -> tuple[list[str], list[str]]:
    """After both engines removed everything: look for what they left on the host and
    remove it.  Returns (notes, problems): netavark's chains and state are expected
    leftovers (notes); a bridge, a network namespace or cove rules are problems."""
    notes: list[str] = []
    problems: list[str] = []
    links = link_names()
    if cove_bridge and cove_bridge in links:
        problems.append(f"cove: bridge {cove_bridge} still there after rm of all: deleted")
        subprocess.run(["ip", "link", "delete", cove_bridge], capture_output=True)
    if cove_bridge:
        remove_cove_elements(cove_bridge, cove_subnet, problems)
    if not podman_used:
        return notes, problems
    others = foreign_podman(marker)
    if others:
        notes.append(
            "other podman/netavark processes are running ("
            + ", ".join(others[:3])
            + "): netavark's shared state left alone"
        )
        return notes, problems
    if PODMAN_BRIDGE in links and PODMAN_BRIDGE not in before.links:
        problems.append(f"podman: bridge {PODMAN_BRIDGE} still there after reset: deleted")
        subprocess.run(["ip", "link", "delete", PODMAN_BRIDGE], capture_output=True)
    if NETNS_DIR.is_dir():
        for name in sorted(set(os.listdir(NETNS_DIR)) - before.netns):
            if name.startswith("netns-"):
                problems.append(f"podman: network namespace {name} left: deleted")
                subprocess.run(["ip", "netns", "delete", name], capture_output=True)
    remove_netavark_rules(before, notes, problems)
    if NETAVARK_RUN_DIR.is_dir():
        for name in sorted(set(os.listdir(NETAVARK_RUN_DIR)) - before.run_dir):
            path = NETAVARK_RUN_DIR / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            notes.append(f"netavark state {path} (new): removed")
    forward = Path("/proc/sys/net/ipv4/ip_forward")
    if before.ip_forward == "0" and forward.read_text().strip() == "1":
        forward.write_text("0\n")
        notes.append("net.ipv4.ip_forward was 0 and an engine set it to 1: back to 0")
    return notes, problems
