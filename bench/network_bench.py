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
import os
import platform
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_cli import (
    add_quick,
    add_tools,
    apply_sizes,
    install_signals,
    preflight,
    run_and_clean_up,
    run_scenarios,
)
from bench_engine_setup import CALL_TIMEOUT_S, TARGET_RUN, Engine, list_ids, remove_all
from bench_network_host import PODMAN_BRIDGE, HostNet, link_names
from bench_network_iperf import scenario_throughput
from bench_network_setup import (
    DNS_UPSTREAMS,
    IPERF,
    IPERF_IMAGE,
    MAX_FAILURES,
    Bench,
    build_iperf_tar,
    cleanup,
    run_detached,
    setup,
)
from bench_procs import Spawner, become_subreaper, progress, reap_orphans
from bench_tables import figures_table, print_problems, stats, stats_rows
from benchlib import BenchError, build_image_tar, first_line, percentile, ratio

SCENARIOS = ("run", "throughput")
DEFAULTS = {"runs": 20, "rounds": 5, "seconds": 5}
QUICK = {"runs": 3, "rounds": 2, "seconds": 1}


def loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


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
    add_quick(parser, QUICK)
    parser.add_argument(
        "--scenarios", metavar="LIST", help=f"comma list from {','.join(SCENARIOS)}; default all"
    )
    add_tools(parser)
    args = parser.parse_args(argv)
    apply_sizes(args, QUICK, DEFAULTS)
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
    cove_path = preflight("network_bench", args)
    if cove_path is None:
        return 1
    if "throughput" in args.scenarios and not os.access(IPERF, os.X_OK):
        print(f"network_bench: no {IPERF} (Debian package iperf3)", file=sys.stderr)
        return 1
    os.environ["COVE_DNS_UPSTREAMS"] = DNS_UPSTREAMS
    install_signals()

    before = HostNet.snapshot()
    workdir = Path(tempfile.mkdtemp(prefix="cove-nb-"))
    spawner = Spawner(workdir)
    b = Bench(args, workdir, spawner)
    b.report["problems"] = b.problems

    def clean_up() -> list[str]:
        spawner.close()
        return cleanup(b, before)

    def load_into_report() -> None:
        b.report["load_after"] = loadavg()

    return run_and_clean_up(
        "network_bench",
        lambda: bench(b, cove_path),
        clean_up,
        b.problems,
        b.report,
        args.json,
        load_into_report,
    )


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

    def run(scenario: str) -> dict[str, Any]:
        result = STEPS[scenario](b)
        result["load_after"] = loadavg()
        return result

    failed = run_scenarios(
        args.scenarios,
        run,
        b.report["scenarios"],
        b.problem,
        lambda: [remove_all(engine) for engine in b.engines],
    )
    print(f"\n== targets (load average now {loadavg()})")
    for scenario in args.scenarios:
        res = b.report["scenarios"][scenario]
        value = res.get("ratio")
        shown = f"{value:.2f}x" if value is not None else "n/a"
        print(f"  {scenario:<12}{res.get('target', ''):<40}{shown:>9}  {res.get('verdict', 'n/a')}")
    print_problems(b.problems)
    return 1 if failed == len(args.scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())
