#!/usr/bin/env python3
"""Networking benchmark (issue 7): cove's bridge network against podman's, and published
ports against the container's own address.

Scenarios (each engine in its own temporary storage; podman with runc, cgroupfs and
netavark, its network configuration in a private folder):

1. ``run``: ``run --rm bb:1 true`` on each engine's default bridge network, the engines
   taking turns, ``--runs`` rounds after one warm-up round; ``cove run --rm --network
   none`` in the same rounds for context.  Then the same rounds with the bridge already
   up (one other container running on it).  Target: cove median <= 0.4x podman's.
2. ``throughput``: an iperf3 server in a container on the default bridge, published on
   127.0.0.1; the client on the host measures through the published port (nftables DNAT)
   and straight to the container's address, taking turns, ``--rounds`` rounds of
   ``--seconds`` s.  Target: published >= 0.9x direct (cove; podman for information).

Traffic stays on loopback and on the bridges the engines make.  Needs root.  See
bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path
from typing import Any

from bench_engine_setup import (
    CALL_TIMEOUT_S,
    TARGET_RUN,
    Engine,
    Spawner,
    become_subreaper,
    find_cove,
    list_ids,
    make_cove,
    make_podman,
    processes,
    progress,
    reap_orphans,
    remove_all,
    teardown,
    untimed,
)
from benchlib import BenchError, first_line, free_port, percentile, ratio, run_checked
from engine_bench import build_image_tar, figures_table, stats, stats_rows

SCENARIOS = ("run", "throughput")
DEFAULTS = {"runs": 20, "rounds": 5, "seconds": 5}
QUICK = {"runs": 3, "rounds": 2, "seconds": 1}
TARGET_THROUGHPUT = 0.9  # published-port throughput >= 0.9x straight to the container
DNS_UPSTREAMS = "127.0.0.1:9"  # cove's DNS responder never forwards beyond loopback
IPERF = "/usr/bin/iperf3"
IPERF_PORT = 5201
BUSY_RETRIES = 20  # iperf3 "the server is busy": tried again after 0.25 s, this often
IPERF_IMAGE = "ip3:1"
PODMAN_NETWORK_CONF = """\
[network]
network_backend = "netavark"
network_config_dir = "{folder}"
"""
# podman 4.3 keeps netavark's IPAM database (and aardvark-dns' folder) here when run as
# root, whatever its configuration says: the script notes what it finds there first.
NETAVARK_RUN_DIR = Path("/run/containers/networks")
NETNS_DIR = Path("/run/netns")
PODMAN_BRIDGE = "podman0"
NETAVARK_HELPERS = ("netavark", "aardvark-dns", "conmon", "podman")


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwound like Ctrl-C, so the clean-up runs."""


def on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(f"signal {signum}")


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


# --------------------------------------------------------------------------- host state


def _lines(argv: Sequence[str]) -> list[str]:
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return proc.stdout.splitlines() if proc.returncode == 0 else []


def link_names() -> set[str]:
    names = set()
    for line in _lines(["ip", "-o", "link", "show"]):
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.add(parts[1].strip().split("@")[0])
    return names


def nft_tables() -> set[str]:
    """{"ip nat", "inet cove", ...}"""
    return {line[len("table ") :].strip() for line in _lines(["nft", "list", "tables"])}


IPTABLES = {"ip": "iptables", "ip6": "ip6tables"}


def netavark_chains() -> dict[str, set[str]]:
    """The NETAVARK* chains of each iptables(-nft) table, keyed "ip nat", "ip filter" ..."""
    found: dict[str, set[str]] = {}
    for family, tool in IPTABLES.items():
        for table in ("nat", "filter"):
            chains = {
                line.split()[1]
                for line in _lines([tool, "-w", "-t", table, "-S"])
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
            rules = _lines([tool, "-w", "-t", table, "-S"])
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
            left = [r for r in _lines([tool, "-w", "-t", table, "-S"]) if not r.startswith("-P ")]
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
    for line in _lines(["ip", "-o", "-4", "addr", "show"]):
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
    text = "\n".join(_lines(["nft", "list", "table", "inet", "cove"]))
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


# --------------------------------------------------------------------------- context


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    spawner: Spawner
    cove: Engine | None = None
    podman: Engine | None = None
    podman_note: str = ""
    cove_bridge: str | None = None
    cove_subnet: str = ""
    problems: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=lambda: {"scenarios": {}})

    @property
    def engines(self) -> list[Engine]:
        return [e for e in (self.cove, self.podman) if e is not None]

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  problem: {text}")


def inspect(engine: Engine, ref: str) -> dict[str, Any]:
    out = untimed(engine, ["inspect", ref], f"inspect {ref[:12]}", CALL_TIMEOUT_S).stdout
    data = json.loads(out)
    if isinstance(data, list):
        if not data:
            raise BenchError(f"{engine.name} inspect {ref[:12]}: empty answer")
        data = data[0]
    return dict(data)


def run_detached(b: Bench, engine: Engine, *args: str) -> str:
    """`run -d ARGS...`: the full id (remembered in engine.ids for the leak checks)."""
    try:
        out = b.spawner.run(engine.run_argv("-d", *args), engine.env, CALL_TIMEOUT_S)
    finally:
        reap_orphans()
    lines = out.stdout.strip().splitlines()
    cid = lines[-1].strip() if lines else ""
    if len(cid) == 64:
        engine.ids.add(cid)
    if out.code != 0:
        raise BenchError(f"{engine.name} run -d {' '.join(args)}: exit {out.code}: "
                         f"{out.last_error()}")  # fmt: skip
    if len(cid) != 64:
        raise BenchError(f"{engine.name} run -d printed no container id: {out.stdout!r}")
    return cid


# --------------------------------------------------------------------------- set-up


def build_iperf_tar(folder: Path, busybox: Path) -> tuple[Path, list[str]]:
    """The busybox rootfs plus /usr/bin/iperf3 and the libraries ldd names (copied to the
    same paths): one image both engines can run `iperf3 -s` from."""
    folder.mkdir()
    base = build_image_tar(folder, busybox)
    rootfs = folder / "rootfs"
    rootfs.mkdir()
    run_checked(["tar", "-xf", str(base), "-C", str(rootfs)], "tar -xf busybox rootfs")
    base.unlink()
    files = [IPERF]
    for line in _lines(["ldd", IPERF]):
        parts = line.split()
        if "=>" in parts and len(parts) > parts.index("=>") + 1:
            path = parts[parts.index("=>") + 1]
            if path.startswith("/"):
                files.append(path)
        elif parts and parts[0].startswith("/"):
            files.append(parts[0])  # the ELF interpreter
    if len(files) < 3:
        raise BenchError(f"ldd {IPERF} named no libraries")
    for path in files:
        dest = rootfs / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)  # follows symlinks: the file itself, under its ldd name
    tarball = folder / "iperf3.tar"
    run_checked(["tar", "-cf", str(tarball), "-C", str(rootfs), "."], "tar -cf iperf3 rootfs")
    shutil.rmtree(rootfs)
    return tarball, files


def setup(b: Bench, cove_path: str, bb_tar: Path, ip3_tar: Path | None) -> None:
    b.cove = make_cove(cove_path, b.workdir)
    b.cove.env["COVE_DNS_UPSTREAMS"] = DNS_UPSTREAMS
    untimed(b.cove, ["version"], f"{cove_path} version (does the launcher find cove?)")
    untimed(b.cove, ["import", str(bb_tar), b.cove.image], "import", CALL_TIMEOUT_S)
    if ip3_tar is not None:
        untimed(b.cove, ["import", str(ip3_tar), IPERF_IMAGE], "import iperf3", CALL_TIMEOUT_S)
    out = untimed(b.cove, ["network", "inspect", "bridge"], "network inspect bridge").stdout
    data = json.loads(out)
    data = data[0] if isinstance(data, list) else data
    b.cove_bridge = data.get("Options", {}).get("com.docker.network.bridge.name")
    ipam_config = (data.get("IPAM") or {}).get("Config") or [{}]
    b.cove_subnet = ipam_config[0].get("Subnet", "")
    podman = shutil.which("podman")
    if podman is None:
        b.podman_note = "podman not found on PATH: podman columns are skipped"
        return
    if shutil.which("conmon") is None and not Path("/usr/libexec/podman/conmon").exists():
        b.podman_note = "conmon not found: podman columns are skipped"
        return
    engine = make_podman(podman, b.workdir)
    b.podman = engine  # cleaned up even if a step below fails
    netconf = b.workdir / "pnet"
    netconf.mkdir()
    engine.dirs.append(netconf)
    with open(engine.env["CONTAINERS_CONF"], "a") as f:
        f.write(PODMAN_NETWORK_CONF.format(folder=netconf))
    engine.run_flags = []  # podman's default network: "podman", bridge podman0, 10.88.0.0/16
    try:
        backend = untimed(engine, ["info", "--format", "{{.Host.NetworkBackend}}"], "info")
        if backend.stdout.strip() != "netavark":
            raise BenchError(f"network backend is {backend.stdout.strip()!r}, not netavark")
        untimed(engine, ["import", str(bb_tar), engine.image], "import", CALL_TIMEOUT_S * 2)
        if ip3_tar is not None:
            untimed(engine, ["import", str(ip3_tar), f"localhost/{IPERF_IMAGE}"], "import iperf3")
        # One untimed container proves the configuration works on this host.
        untimed(engine, ["run", "--rm", engine.image, "true"], "run probe", CALL_TIMEOUT_S)
    except BenchError as exc:
        b.podman_note = f"podman set-up failed, podman columns are skipped: {exc}"
        b.problems.append(b.podman_note)
        b.podman = None
        b.problems.extend(teardown([engine], None))


# --------------------------------------------------------------------------- scenario 1


@dataclass
class Variant:
    key: str
    label: str
    engine: Engine
    argv: list[str]
    samples: dict[int, int] = field(default_factory=dict)  # round -> ns
    failures: list[str] = field(default_factory=list)
    error: str | None = None  # set when it is given up (MAX_FAILURES failures)


MAX_FAILURES = 3  # a variant that fails this often is given up; fewer are noted, skipped


def timed_rounds(b: Bench, variants: list[Variant], runs: int, what: str) -> None:
    """One warm-up round, then ``runs``; the variants take turns, and the order rotates
    by one each round so no variant always follows the same one.  A failed command is a
    problem and leaves a hole in that round; the third failure gives the variant up."""
    for i in range(runs + 1):
        order = variants[i % len(variants) :] + variants[: i % len(variants)]
        for v in order:
            if v.error is not None:
                continue
            try:
                out = b.spawner.run(v.argv, v.engine.env, CALL_TIMEOUT_S)
                if out.code != 0:
                    raise BenchError(f"exit {out.code}: {out.last_error()}")
            except BenchError as exc:
                v.failures.append(f"round {i}: {exc}")
                b.problem(f"{v.label} (round {i}): {exc}")
                if len(v.failures) >= MAX_FAILURES:
                    v.error = f"given up after {len(v.failures)} failures; last: {exc}"
                continue
            finally:
                reap_orphans()
            if i > 0:
                v.samples[i] = out.elapsed_ns
        progress(f"{what}: round {i + 1}/{runs + 1}", done=i == runs)


def paired_difference_ms(a: Variant, base: Variant) -> dict[str, float] | None:
    """Median and p90 of the per-round differences a - base (rounds where both ran)."""
    rounds = sorted(set(a.samples) & set(base.samples))
    if not rounds:
        return None
    diffs = [(a.samples[r] - base.samples[r]) / 1e6 for r in rounds]
    return {"median": percentile(diffs, 50), "p90": percentile(diffs, 90), "n": len(rounds)}


def scenario_run(b: Bench) -> dict[str, Any]:
    runs = b.args.runs
    assert b.cove is not None
    cove, podman = b.cove, b.podman
    cold = [
        Variant("cove_bridge", "cove run --rm (bridge)", cove,
                cove.run_argv("--rm", cove.image, "true")),
        Variant("cove_none", "cove run --rm --network none", cove,
                cove.run_argv("--network", "none", "--rm", cove.image, "true")),
    ]  # fmt: skip
    if podman is not None:
        cold.insert(1, Variant("podman_bridge", "podman run --rm (bridge)", podman,
                               podman.run_argv("--rm", podman.image, "true")))  # fmt: skip
    print(
        f"\n[1] run --rm IMAGE true on the default bridge: {runs} rounds after 1 warm-up, "
        "taking turns"
    )
    timed_rounds(b, cold, runs, "network made and removed each run")
    left = {e.name: list_ids(e) for e in b.engines}
    for name, ids in left.items():
        if ids:
            b.problem(f"{name}: {len(ids)} containers left after run --rm, e.g. {ids[0][:12]}")
    for e in b.engines:
        remove_all(e)
    bridge_stays = bool(b.cove_bridge and b.cove_bridge in link_names())

    # The same with each bridge kept up by one other container: what a run costs when
    # the engine need not make the bridge, its addresses and its firewall rules first.
    warm = [
        Variant("cove_bridge_up", "cove run --rm (bridge already up)", cove,
                cove.run_argv("--rm", cove.image, "true")),
    ]  # fmt: skip
    if podman is not None:
        warm.append(Variant("podman_bridge_up", "podman run --rm (bridge already up)", podman,
                            podman.run_argv("--rm", podman.image, "true")))  # fmt: skip
    warm.append(Variant("cove_none_up", "cove run --rm --network none", cove, cold[-1].argv))
    holders: dict[str, str] = {}
    try:
        for e in b.engines:
            holders[e.name] = run_detached(b, e, e.image, "sleep", "3600")
        timed_rounds(b, warm, runs, "bridge kept up by another container")
    except BenchError as exc:
        b.problem(f"bridge-already-up rounds: {exc}")
    finally:
        for e in b.engines:
            remove_all(e)

    st = {v.key: stats(list(v.samples.values())) for v in cold + warm}
    err = {v.key: v.error for v in cold + warm}
    failures = {v.key: v.failures for v in cold + warm if v.failures}
    rows: list[tuple[str, dict[str, float] | None, str | None]] = [
        (v.label, st[v.key], v.error) for v in cold
    ]
    if podman is None:
        rows.insert(1, ("podman run --rm (bridge)", None, b.podman_note))
    stats_rows(f"== run --rm busybox true, network made per run ({runs} runs, CLI wall time)", rows)
    stats_rows(
        "== the same while another container keeps the bridge up",
        [(v.label, st[v.key], v.error) for v in warm],
    )
    for v in cold + warm:
        if v.failures and v.error is None:
            print(f"  {v.label}: {len(v.failures)} failed runs left out (see problems)")
    diff = paired_difference_ms(cold[0], cold[-1])
    if diff is not None:
        print(
            f"\n  cove bridge - cove none, per round ({diff['n']} rounds): median "
            f"{diff['median']:+.1f} ms, p90 {diff['p90']:+.1f} ms"
        )
    diff_up = paired_difference_ms(warm[0], warm[-1])
    if diff_up is not None:
        print(
            f"  cove bridge already up - cove none, per round ({diff_up['n']} rounds): median "
            f"{diff_up['median']:+.1f} ms, p90 {diff_up['p90']:+.1f} ms"
        )
    if bridge_stays:
        print(f"  note: cove's bridge {b.cove_bridge} stayed up after the last container")
    print()
    cove_ms = st["cove_bridge"]["median"] if st.get("cove_bridge") else None
    pod_ms = st["podman_bridge"]["median"] if st.get("podman_bridge") else None
    value, verdict = figures_table(
        "run --rm, bridge, median (ms)",
        cove_ms,
        pod_ms,
        ".1f",
        f"cove <= {TARGET_RUN}x podman",
        TARGET_RUN,
    )
    up_c = st["cove_bridge_up"]["median"] if st.get("cove_bridge_up") else None
    up_p = st["podman_bridge_up"]["median"] if st.get("podman_bridge_up") else None
    up_ratio = ratio(up_c, up_p)
    if up_ratio is not None:
        print(f"{'  (bridge already up: ratio)':<34}{'':>31}{up_ratio:>8.2f}x")
    return {
        "stats_ms": st,
        "samples_ms": {v.key: {r: ns / 1e6 for r, ns in v.samples.items()} for v in cold + warm},
        "failures": failures,
        "argv": {v.key: v.argv for v in cold + warm},
        "errors": err,
        "cove_bridge_minus_none_ms": diff,
        "cove_bridge_up_minus_none_ms": diff_up,
        "cove_bridge_stays_up": bridge_stays,
        "ratio": value,
        "ratio_bridge_up": up_ratio,
        "target": f"cove median <= {TARGET_RUN}x podman",
        "verdict": verdict,
    }


# --------------------------------------------------------------------------- scenario 2


@dataclass
class IperfPath:
    key: str
    label: str
    engine: Engine
    host: str
    port: int
    results: dict[int, dict[str, float]] = field(default_factory=dict)  # round -> result
    failures: list[str] = field(default_factory=list)
    error: str | None = None  # set when it is given up (MAX_FAILURES failures)


def iperf(b: Bench, host: str, port: int, *limit: str) -> dict[str, float]:
    """One iperf3 client run on the host (``limit``: "-t", "5", "-O", "1" or "-n", "1M"):
    receiver-side Gbit/s and a few details."""
    argv = [IPERF, "-c", host, "-p", str(port), "-J", "--connect-timeout", "3000", *limit]
    timeout = 60.0 + (float(limit[1]) if limit[:1] == ("-t",) else 0.0)
    for attempt in range(BUSY_RETRIES + 1):
        out = b.spawner.run(argv, dict(os.environ), timeout)
        try:
            data = json.loads(out.stdout)
        except ValueError:
            raise BenchError(
                f"iperf3 -c {host} -p {port}: exit {out.code}: {out.last_error()}"
            ) from None
        error = str(data.get("error") or "")
        # The server finishes its side of the previous test a little after that client
        # exits; a test that comes too soon is refused ("the server is busy ...").
        if "busy" not in error or attempt == BUSY_RETRIES:
            break
        time.sleep(0.25)
    if error or out.code != 0:
        raise BenchError(f"iperf3 -c {host} -p {port}: {error or out.last_error()}")
    end = data["end"]
    cpu = end.get("cpu_utilization_percent", {})
    return {
        "gbits": end["sum_received"]["bits_per_second"] / 1e9,
        "sent_gbits": end["sum_sent"]["bits_per_second"] / 1e9,
        "retransmits": end["sum_sent"].get("retransmits", 0),
        "cpu_host": cpu.get("host_total", 0.0),
        "cpu_remote": cpu.get("remote_total", 0.0),
    }


def start_server(b: Bench, engine: Engine, image: str) -> tuple[str, str, int]:
    """An iperf3 server container published on 127.0.0.1:PORT; (id, its address, PORT)."""
    port = free_port()
    cid = run_detached(b, engine, "-p", f"127.0.0.1:{port}:{IPERF_PORT}", image, IPERF, "-s")
    info = inspect(engine, cid)
    ip = info.get("NetworkSettings", {}).get("IPAddress") or ""
    if not ip:
        nets = info.get("NetworkSettings", {}).get("Networks") or {}
        ip = next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), "")
    if not ip:
        raise BenchError(f"{engine.name}: no address for the iperf3 container {cid[:12]}")
    deadline = time.monotonic() + 20
    while True:  # the server is up when a short test straight to it goes through
        try:
            iperf(b, ip, IPERF_PORT, "-n", "1M")
            return cid, ip, port
        except BenchError as exc:
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{engine.name}: iperf3 server at {ip} not answering: {exc}"
                ) from None
            time.sleep(0.2)


def scenario_throughput(b: Bench) -> dict[str, Any]:
    rounds, seconds = b.args.rounds, b.args.seconds
    omit = 1
    print(
        f"\n[2] iperf3 throughput, {rounds} rounds of {seconds:g} s (+{omit} s omitted), "
        "published port vs the container's address, taking turns"
    )
    paths: list[IperfPath] = []
    servers: dict[str, dict[str, Any]] = {}
    result: dict[str, Any] = {"rounds": rounds, "seconds": seconds, "omit_s": omit}
    for engine in b.engines:
        image = IPERF_IMAGE if engine.name == "cove" else f"localhost/{IPERF_IMAGE}"
        try:
            cid, ip, port = start_server(b, engine, image)
        except BenchError as exc:
            b.problem(f"{engine.name} iperf3 server: {exc}")
            servers[engine.name] = {"error": str(exc)}
            continue
        servers[engine.name] = {"id": cid, "ip": ip, "published": f"127.0.0.1:{port}"}
        published = f"{engine.name} published 127.0.0.1:{port}"
        direct = f"{engine.name} direct {ip}:{IPERF_PORT}"
        paths.append(IperfPath(f"{engine.name}_published", published, engine, "127.0.0.1", port))
        paths.append(IperfPath(f"{engine.name}_direct", direct, engine, ip, IPERF_PORT))
    result["servers"] = servers
    # Warm-up (1 s each, not counted) doubles as the check that every path answers.
    for i in range(rounds + 1):
        order = paths[i % len(paths) :] + paths[: i % len(paths)] if paths else []
        for p in order:
            if p.error is not None:
                continue
            try:
                limit = ("-t", f"{seconds:g}", "-O", str(omit)) if i else ("-t", "1")
                r = iperf(b, p.host, p.port, *limit)
            except BenchError as exc:
                p.failures.append(f"round {i}: {exc}")
                b.problem(f"{p.label} (round {i}): {exc}")
                if len(p.failures) >= MAX_FAILURES:
                    p.error = f"given up after {len(p.failures)} failures; last: {exc}"
                continue
            if i > 0:
                p.results[i] = r
        progress(f"round {i + 1}/{rounds + 1}", done=i == rounds)
    for engine in b.engines:
        remove_all(engine)

    print(f"\n== iperf3 -t {seconds:g} -O {omit}, {rounds} rounds: Gbit/s at the receiver")
    header = (
        f"{'path':<40}{'median':>8}{'min':>8}{'max':>8}{'n':>4}{'retrans':>9}{'cpu host':>10}"
        f"{'cpu srv':>9}"
    )
    print(header)
    print("-" * len(header))
    summary: dict[str, Any] = {}
    for p in paths:
        if not p.results:
            print(f"{p.label:<40}{p.error or 'not measured'}")
            summary[p.key] = {"error": p.error}
            continue
        runs = list(p.results.values())
        g = [r["gbits"] for r in runs]
        med = {k: percentile([r[k] for r in runs], 50) for k in runs[0]}
        summary[p.key] = {
            "label": p.label,
            "gbits_median": med["gbits"],
            "gbits_min": min(g),
            "gbits_max": max(g),
            "median": med,
            "error": p.error,
        }
        print(
            f"{p.label:<40}{med['gbits']:>8.2f}{min(g):>8.2f}{max(g):>8.2f}{len(g):>4}"
            f"{med['retransmits']:>9.0f}{med['cpu_host']:>9.0f}%{med['cpu_remote']:>8.0f}%"
        )
    if b.podman is None:
        print(f"{'podman':<40}{b.podman_note}")
    result["paths"] = summary
    result["samples"] = {p.key: p.results for p in paths}
    print()
    ratios: dict[str, float | None] = {}
    paired: dict[str, float | None] = {}
    for name in ("cove", "podman"):
        pub = next((p for p in paths if p.key == f"{name}_published"), None)
        direct = next((p for p in paths if p.key == f"{name}_direct"), None)
        if pub is None or direct is None or not pub.results or not direct.results:
            continue
        ratios[name] = ratio(summary[pub.key]["gbits_median"], summary[direct.key]["gbits_median"])
        common = sorted(set(pub.results) & set(direct.results))
        if common:
            paired[name] = percentile(
                [pub.results[k]["gbits"] / direct.results[k]["gbits"] for k in common], 50
            )
    value = ratios.get("cove")
    verdict = "n/a" if value is None else ("met" if value >= TARGET_THROUGHPUT else "NOT met")
    header = f"{'':<34}{'published':>11}{'direct':>11}{'ratio':>9}   {'target':<26}verdict"
    print(header)
    print("-" * len(header))
    for name in ("cove", "podman"):
        pub = summary.get(f"{name}_published", {}).get("gbits_median")
        dire = summary.get(f"{name}_direct", {}).get("gbits_median")
        r = ratios.get(name)
        shown = "n/a" if r is None else f"{r:.2f}x"
        target = f"published >= {TARGET_THROUGHPUT}x direct" if name == "cove" else "(info)"
        print(
            f"{name + ' Gbit/s, median':<34}{'n/a' if pub is None else f'{pub:.2f}':>11}"
            f"{'n/a' if dire is None else f'{dire:.2f}':>11}{shown:>9}   {target:<26}"
            f"{verdict if name == 'cove' else ''}"
        )
        if paired.get(name) is not None:
            print(f"{'':<4}median of the per-round ratios: {paired[name]:.2f}x")
    result.update(
        ratio=value,
        ratios=ratios,
        paired_ratios=paired,
        target=f"cove published >= {TARGET_THROUGHPUT}x direct",
        verdict=verdict,
    )
    return result


STEPS = {"run": scenario_run, "throughput": scenario_throughput}


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Networking benchmark: cove against podman.")
    parser.add_argument("--runs", type=int, help=f"run rounds (default {DEFAULTS['runs']})")
    parser.add_argument(
        "--rounds", type=int, help=f"throughput rounds (default {DEFAULTS['rounds']})"
    )
    parser.add_argument(
        "--seconds", type=int, help=f"seconds per iperf3 test (default {DEFAULTS['seconds']})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: " + ", ".join(f"{k} {v:g}" for k, v in QUICK.items()),
    )
    parser.add_argument(
        "--scenarios", metavar="LIST", help=f"comma list from {','.join(SCENARIOS)}; default all"
    )
    parser.add_argument(
        "--cove", metavar="PATH", help="cove launcher (default /usr/local/bin/cove)"
    )
    parser.add_argument("--busybox", default="/bin/busybox", help="static busybox binary")
    parser.add_argument("--json", metavar="FILE", help="write all figures to FILE")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.runs < 1 or args.rounds < 1 or args.seconds < 1:
        parser.error("--runs and --rounds must be >= 1, --seconds >= 1")
    picked = [s.strip() for s in (args.scenarios or ",".join(SCENARIOS)).split(",")]
    for name in picked:
        if name not in SCENARIOS:
            parser.error(f"--scenarios takes names from {','.join(SCENARIOS)}; got {name!r}")
    args.scenarios = [sc for sc in SCENARIOS if sc in picked]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("network_bench: must run as root", file=sys.stderr)
        return 1
    cove_path = find_cove(args.cove)
    if cove_path is None:
        print("network_bench: no cove launcher found (--cove PATH)", file=sys.stderr)
        return 1
    if not os.access(args.busybox, os.X_OK):
        print(f"network_bench: no busybox at {args.busybox}", file=sys.stderr)
        return 1
    if "throughput" in args.scenarios and not os.access(IPERF, os.X_OK):
        print(f"network_bench: no {IPERF} (Debian package iperf3)", file=sys.stderr)
        return 1
    os.environ["COVE_DNS_UPSTREAMS"] = DNS_UPSTREAMS
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    before = HostNet.snapshot()
    workdir = Path(tempfile.mkdtemp(prefix="cove-nb-"))
    spawner = Spawner(workdir)
    b = Bench(args, workdir, spawner)
    b.report["problems"] = b.problems
    status = 0
    try:
        status = bench(b, cove_path)
    except KeyboardInterrupt as exc:
        why = str(exc) or "Ctrl-C"
        print(f"\nnetwork_bench: interrupted ({why}); cleaning up", file=sys.stderr)
        status = 130
    except BenchError as exc:
        print(f"\nnetwork_bench: {exc}", file=sys.stderr)
        status = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        spawner.close()
        left = cleanup(b, before)
        print("\nclean-up: " + ("everything removed" if not left else "problems:"))
        for text in left:
            print(f"  {text}")
        b.problems.extend(left)
        b.report["load_after"] = loadavg()
        if args.json:
            Path(args.json).write_text(json.dumps(b.report, indent=2, default=str) + "\n")
            print(f"wrote {args.json}")
    return status


def cleanup(b: Bench, before: HostNet) -> list[str]:
    """Containers, cove's own check of its root, the engines' storage, then the host's
    network (bridges, namespaces, netavark's rules and state).  Returns problems."""
    problems: list[str] = []
    if b.cove is not None:
        problems += remove_all(b.cove)
        try:
            check = untimed(b.cove, ["system", "check"], "system check", check=False)
            text = (check.stdout + check.stderr).strip()
            if check.returncode != 0 or text != "nothing to repair":
                problems.append(f"cove system check: {text.splitlines()[:3]}")
                untimed(b.cove, ["system", "check", "--repair"], "system check --repair",
                        check=False)  # fmt: skip
        except BenchError as exc:
            problems.append(str(exc))
    podman_used = b.podman is not None or "pnet" in {d.name for d in b.workdir.iterdir()}
    marker = str(b.workdir)
    problems += teardown(b.engines, b.workdir)
    notes, host_problems = restore_host_net(
        before, b.cove_bridge, b.cove_subnet, podman_used, marker
    )
    for note in notes:
        print(f"  clean-up: {note}")
    b.report["cleanup_notes"] = notes
    return problems + host_problems


def bench(b: Bench, cove_path: str) -> int:
    args = b.args
    subreaper = become_subreaper()
    bb_tar = build_image_tar(b.workdir / "bb", Path(args.busybox))
    ip3_tar, ip3_files = (None, [])
    if "throughput" in args.scenarios:
        ip3_tar, ip3_files = build_iperf_tar(b.workdir / "ip3", Path(args.busybox))
    setup(b, cove_path, bb_tar, ip3_tar)
    assert b.cove is not None
    podman_line = b.podman_note
    if b.podman is not None:
        podman_line = (
            f"{b.podman.version}, runc, cgroupfs, netavark "
            f"({first_line(['/usr/lib/podman/netavark', '--version'])}), default network "
            f"'podman' (bridge {PODMAN_BRIDGE}), own --root and network_config_dir"
        )
    b.report["config"] = {
        "scenarios": args.scenarios,
        "runs": args.runs,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "load_before": loadavg(),
        "subreaper": subreaper,
        "cove": cove_path,
        "cove_version": b.cove.version,
        "cove_bridge": b.cove_bridge,
        "cove_env": {"COVE_DNS_UPSTREAMS": DNS_UPSTREAMS},
        "podman": podman_line,
        "podman_conf": Path(b.podman.env["CONTAINERS_CONF"]).read_text() if b.podman else None,
        "iperf3": first_line([IPERF, "--version"]),
        "iperf3_image_files": ip3_files,
        "timer": "time.perf_counter_ns around posix_spawn + waitpid",
    }
    images = "bb:1 (busybox rootfs) for run"
    if ip3_files:
        images += (
            f"; {IPERF_IMAGE} (busybox + {IPERF} and the {len(ip3_files) - 1} files ldd "
            "names, at the same paths) for throughput"
        )
    print(
        f"network benchmark: kernel {platform.release()}, {os.cpu_count()} CPUs, load "
        f"{loadavg()}, workdir {b.workdir}\n"
        f"  cove: {cove_path} --root {b.cove.dirs[0]} ({b.cove.version}); default network "
        f"'bridge' (bridge {b.cove_bridge}, {b.cove_subnet}); "
        f"COVE_DNS_UPSTREAMS={DNS_UPSTREAMS}\n"
        f"  podman: {podman_line}\n"
        f"  images: {images}\n"
        f"  scenarios: {', '.join(args.scenarios)}; runs {args.runs}, rounds {args.rounds}, "
        f"seconds {args.seconds:g}"
    )
    failed = 0
    for scenario in args.scenarios:
        try:
            b.report["scenarios"][scenario] = STEPS[scenario](b)
            b.report["scenarios"][scenario]["load_after"] = loadavg()
        except BenchError as exc:
            failed += 1
            b.problem(f"scenario {scenario} failed: {exc}")
            b.report["scenarios"][scenario] = {"error": str(exc)}
            for engine in b.engines:
                remove_all(engine)
    print(f"\n== targets (load average now {loadavg()})")
    for scenario in args.scenarios:
        res = b.report["scenarios"][scenario]
        value = res.get("ratio")
        shown = f"{value:.2f}x" if value is not None else "n/a"
        print(f"  {scenario:<12}{res.get('target', ''):<40}{shown:>9}  {res.get('verdict', 'n/a')}")
    if b.problems:
        print("\nproblems seen:")
        for text in b.problems:
            print(f"  {text}")
    return 1 if failed == len(args.scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())
