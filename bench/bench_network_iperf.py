"""Scenario 2 of `network_bench.py`: iperf3 throughput through a published port
(127.0.0.1, nftables DNAT) against straight to the container's address, for each engine.

Standard library only.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from bench_engine_setup import Engine, remove_all
from bench_network_setup import (
    IPERF,
    IPERF_IMAGE,
    IPERF_PORT,
    MAX_FAILURES,
    Bench,
    inspect,
    run_detached,
)
from bench_procs import progress
from benchlib import BenchError, free_port, percentile, ratio

TARGET_THROUGHPUT = 0.9  # published-port throughput >= 0.9x straight to the container
BUSY_RETRIES = 20  # iperf3 "the server is busy": tried again after 0.25 s, this often


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
