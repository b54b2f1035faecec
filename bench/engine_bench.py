#!/usr/bin/env python3
"""Engine benchmark: the `cove` engine CLI against podman, same busybox image in each.

Scenarios (each engine in its own temporary storage; podman with runc, cgroupfs and
``--network none``, cove's default network is none already):

1. ``run``: ``run --rm bb:1 true``, the engines taking turns, ``--runs`` rounds after one
   warm-up round.  Target: cove median <= 0.4x podman's.
2. ``starts``: how many ``run -d bb:1 sleep 3600`` each engine completes one after the
   other within ``--duration`` seconds; one engine's turn, then the other's, each
   followed by removing its containers with one ``rm -f``.  Target: cove >= 3x podman.
3. ``rm``: ``rm -f ID1 ... IDn`` of ``--count`` running containers in one command
   (started beforehand, untimed), per container.  Target: cove <= 0.5x podman.
4. ``memory``: with ``--containers`` running containers, the summed PSS of cove's
   monitors (cove-monitor) and podman's conmon processes, per container.  Target: cove
   <= 1 MB per container.

Needs root.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
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
from bench_engine_setup import (
    BULK_TIMEOUT_S,
    CALL_TIMEOUT_S,
    DEFAULTS,
    QUICK,
    SCENARIO_TITLES,
    SCENARIOS,
    TARGET_MONITOR_KB,
    TARGET_RM,
    TARGET_RUN,
    TARGET_STARTS,
    Bench,
    engine_procs,
    leaked_mounts,
    list_ids,
    monitors,
    remove_all,
    setup,
    start_detached,
    start_many,
    teardown,
    wait_settled,
)
from bench_procs import Spawner, become_subreaper, memory_kb, progress, reap_orphans
from bench_tables import figures_table, in_ms, print_problems, stats, stats_rows
from benchlib import BenchError, build_image_tar, ratio

# --------------------------------------------------------------------------- scenarios


def scenario_run(b: Bench) -> dict[str, Any]:
    runs = b.args.runs
    samples: dict[str, list[int]] = {e.name: [] for e in b.engines}
    errors: dict[str, str] = {}
    print(f"\n[1] run --rm IMAGE true: {runs} rounds after 1 warm-up, engines taking turns")
    for i in range(runs + 1):
        for engine in b.engines:
            if engine.name in errors:
                continue
            argv = engine.run_argv("--rm", engine.image, "true")
            try:
                out = b.spawner.run(argv, engine.env, CALL_TIMEOUT_S)
                if out.code != 0:
                    raise BenchError(f"exit {out.code}: {out.last_error()}")
            except BenchError as exc:
                errors[engine.name] = str(exc)
                b.problem(f"{engine.name} run --rm: {exc}")
                continue
            finally:
                reap_orphans()
            if i > 0:
                samples[engine.name].append(out.elapsed_ns)
        progress(f"round {i + 1}/{runs + 1}", done=i == runs)
    for engine in b.engines:
        left = list_ids(engine)
        if left:
            b.problem(
                f"{engine.name}: {len(left)} containers left after run --rm, e.g. {left[0][:12]}"
            )
            remove_all(engine)
    st = {e.name: stats(samples[e.name]) for e in b.engines}
    rows = [("cove run --rm", st.get("cove"), errors.get("cove"))]
    rows.append(
        ("podman run --rm --network none", st.get("podman"), errors.get("podman", b.podman_note))
    )
    stats_rows(f"== run --rm busybox true ({runs} runs, wall time of the CLI)", rows)
    cove_ms = st["cove"]["median"] if st.get("cove") else None
    pod_ms = st["podman"]["median"] if st.get("podman") else None
    value, v = figures_table(
        "run --rm median (ms)", cove_ms, pod_ms, ".1f", f"cove <= {TARGET_RUN}x podman", TARGET_RUN
    )
    return {
        "stats_ms": st,
        "samples_ms": in_ms(samples),
        "errors": errors,
        "ratio": value,
        "target": f"cove median <= {TARGET_RUN}x podman",
        "verdict": v,
    }


def scenario_starts(b: Bench) -> dict[str, Any]:
    duration = b.args.duration
    result: dict[str, Any] = {"duration_s": duration, "engines": {}}
    print(f"\n[2] run -d IMAGE sleep 3600, one after the other, for {duration:g} s per engine")
    for engine in b.engines:
        entry: dict[str, Any] = {}
        result["engines"][engine.name] = entry
        times: list[int] = []
        started: list[str] = []
        error = None
        baseline = set(leaked_mounts(engine.dirs[0]))
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            try:
                cid, elapsed = start_detached(b.spawner, engine)
            except BenchError as exc:
                error = str(exc)
                b.problem(f"{engine.name} run -d (after {len(times)} starts): {exc}")
                break
            finally:
                reap_orphans()
            started.append(cid)
            if time.monotonic() <= deadline:
                times.append(elapsed)
            progress(f"{engine.name}: {len(times)} started")
        progress(f"{engine.name}: {len(times)} started in {duration:g} s", done=True)
        alive = set(list_ids(engine))
        # Then one rm -f of all of them, as in scenario 3 (reported, not a target here).
        rm_ms = None
        if alive:
            try:
                out = b.spawner.run(engine.rm_argv(sorted(alive)), engine.env, BULK_TIMEOUT_S)
                if out.code != 0:
                    b.problem(
                        f"{engine.name} rm -f of {len(alive)}: exit {out.code}: {out.last_error()}"
                    )
                rm_ms = out.elapsed_ns / 1e6
            finally:
                reap_orphans()
            b.removal_check(engine, sorted(alive), baseline)
        entry.update(
            started=len(times),
            in_flight_at_deadline=len(started) - len(times),
            per_start_ms=stats(times),
            error=error,
            removed=len(alive),
            rm_all_ms=rm_ms,
        )
    cove = result["engines"].get("cove", {})
    pod = result["engines"].get("podman", {})
    rows = [
        ("cove run -d", cove.get("per_start_ms"), cove.get("error")),
        (
            "podman run -d --network none",
            pod.get("per_start_ms"),
            pod.get("error") or b.podman_note or None,
        ),
    ]
    stats_rows(f"== run -d busybox sleep 3600 for {duration:g} s: time per start", rows)
    for name, e in result["engines"].items():
        if e.get("rm_all_ms") is not None:
            print(
                f"  {name}: then rm -f of its {e['removed']} containers in one command: "
                f"{e['rm_all_ms']:.0f} ms ({e['rm_all_ms'] / e['removed']:.1f} ms each)"
            )
    print()
    c_n = float(cove["started"]) if cove else None
    p_n = float(pod["started"]) if pod and b.podman else None
    value, v = figures_table(
        f"containers started in {duration:g} s",
        c_n,
        p_n,
        ".0f",
        f"cove >= {TARGET_STARTS}x podman",
        TARGET_STARTS,
        at_least=True,
    )
    result.update(ratio=value, target=f"cove >= {TARGET_STARTS}x podman", verdict=v)
    return result


def scenario_rm(b: Bench) -> dict[str, Any]:
    count = b.args.count
    result: dict[str, Any] = {"count": count, "engines": {}}
    print(f"\n[3] rm -f of {count} running containers in one command")
    for engine in b.engines:
        entry: dict[str, Any] = {}
        result["engines"][engine.name] = entry
        baseline = set(leaked_mounts(engine.dirs[0]))
        try:
            ids = start_many(b.spawner, engine, count, "untimed starts")
            try:
                out = b.spawner.run(engine.rm_argv(ids), engine.env, BULK_TIMEOUT_S)
            finally:
                reap_orphans()
            if out.code != 0:
                raise BenchError(f"rm -f: exit {out.code}: {out.last_error()}")
        except BenchError as exc:
            entry["error"] = str(exc)
            b.problem(f"{engine.name}: {exc}")
            remove_all(engine)
            wait_settled(engine)
            continue
        settle = b.removal_check(engine, ids, baseline)
        entry.update(
            total_ms=out.elapsed_ns / 1e6,
            per_container_ms=out.elapsed_ns / 1e6 / count,
            background_after_rm_s=settle,
        )
    print(f"\n== rm -f of {count} running containers, one command")
    header = f"{'engine':<34}{'total ms':>10}{'ms/ctr':>10}   background work after rm returned"
    print(header)
    print("-" * len(header))
    for engine_name, label in (("cove", "cove rm -f"), ("podman", "podman rm -f -t 0")):
        e = result["engines"].get(engine_name)
        if e is None:
            print(f"{label:<34}{b.podman_note or 'not measured'}")
        elif "error" in e:
            print(f"{label:<34}failed: {e['error']}")
        else:
            print(
                f"{label:<34}{e['total_ms']:>10.0f}{e['per_container_ms']:>10.1f}   "
                f"{e['background_after_rm_s'] * 1000:.0f} ms until no process of the "
                "engine was left"
            )
    print()
    c = result["engines"].get("cove", {}).get("per_container_ms")
    p = result["engines"].get("podman", {}).get("per_container_ms")
    value, v = figures_table(
        "rm -f, ms per container", c, p, ".2f", f"cove <= {TARGET_RM}x podman", TARGET_RM
    )
    result.update(ratio=value, target=f"cove <= {TARGET_RM}x podman", verdict=v)
    return result


def scenario_memory(b: Bench) -> dict[str, Any]:
    k = b.args.containers
    result: dict[str, Any] = {"containers": k, "engines": {}}
    print(f"\n[4] memory of the per-container supervisors with {k} running containers")
    for engine in b.engines:
        entry: dict[str, Any] = {}
        result["engines"][engine.name] = entry
        try:
            ids = start_many(b.spawner, engine, k, "untimed starts")
            time.sleep(1.0)  # let the monitors finish starting up
            found = monitors(engine, ids)
            totals = {"pss": 0, "rss": 0, "private": 0}
            measured = 0
            for proc in found.values():
                mem = memory_kb(proc.pid)
                if mem is None:
                    continue
                measured += 1
                for key in totals:
                    totals[key] += mem[key]
            others = [
                p for p in engine_procs(engine) if p.pid not in {m.pid for m in found.values()}
            ]
            if len(found) != k or measured != k:
                b.problem(
                    f"{engine.name}: {len(found)} {engine.monitor_exe} processes found "
                    f"({measured} measured) for {k} containers"
                )
            entry.update(
                monitors=len(found),
                measured=measured,
                total_kb=totals,
                per_container_kb={key: v / k for key, v in totals.items()},
                other_engine_processes=[f"{p.pid} {p.exe}: {p.cmdline[:100]}" for p in others],
            )
        except BenchError as exc:
            entry["error"] = str(exc)
            b.problem(f"{engine.name}: {exc}")
        finally:
            remove_all(engine)
            wait_settled(engine)
    print(f"\n== supervisor memory with {k} running containers (/proc/PID/smaps_rollup)")
    header = f"{'engine':<34}{'procs':>6}{'PSS kB':>9}{'per ctr':>9}{'RSS/ctr':>9}{'priv/ctr':>9}"
    print(header)
    print("-" * len(header))
    for engine_name, label in (("cove", "cove (cove-monitor)"), ("podman", "podman (conmon)")):
        e = result["engines"].get(engine_name)
        if e is None:
            print(f"{label:<34}{b.podman_note or 'not measured'}")
        elif "error" in e:
            print(f"{label:<34}failed: {e['error']}")
        else:
            per = e["per_container_kb"]
            print(
                f"{label:<34}{e['monitors']:>6}{e['total_kb']['pss']:>9}{per['pss']:>9.0f}"
                f"{per['rss']:>9.0f}{per['private']:>9.0f}"
            )
            if e["other_engine_processes"]:
                print(
                    f"{'':<4}other processes naming {engine_name}'s root: "
                    f"{len(e['other_engine_processes'])}"
                )
    print()
    c = result["engines"].get("cove", {}).get("per_container_kb", {}).get("pss")
    p = result["engines"].get("podman", {}).get("per_container_kb", {}).get("pss")
    _, v = figures_table(
        "PSS per container (kB)",
        c,
        p,
        ".0f",
        f"cove <= {TARGET_MONITOR_KB} kB",
        TARGET_MONITOR_KB,
        value=c,
    )
    result.update(
        target=f"cove PSS per container <= {TARGET_MONITOR_KB} kB", verdict=v, ratio=ratio(c, p)
    )
    return result


STEPS = {
    "run": scenario_run,
    "starts": scenario_starts,
    "rm": scenario_rm,
    "memory": scenario_memory,
}


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Engine benchmark: cove against podman.")
    parser.add_argument("--runs", type=int, help=f"scenario 1 rounds (default {DEFAULTS['runs']})")
    parser.add_argument(
        "--duration",
        type=float,
        help=f"scenario 2 seconds per engine (default {DEFAULTS['duration']:g})",
    )
    parser.add_argument(
        "--count", type=int, help=f"scenario 3 containers (default {DEFAULTS['count']})"
    )
    parser.add_argument(
        "--containers", type=int, help=f"scenario 4 containers (default {DEFAULTS['containers']})"
    )
    add_quick(parser, QUICK)
    parser.add_argument(
        "--only",
        metavar="SCENARIO",
        help=f"comma list from {','.join(SCENARIOS)} (or 1-4); default all",
    )
    add_tools(parser)
    args = parser.parse_args(argv)
    apply_sizes(args, QUICK, DEFAULTS)
    if args.runs < 1 or args.duration <= 0 or args.count < 1 or args.containers < 1:
        parser.error("--runs, --count and --containers must be >= 1, --duration > 0")
    picked = []
    for name in (args.only or ",".join(SCENARIOS)).split(","):
        name = name.strip()
        if name.isdigit() and 1 <= int(name) <= len(SCENARIOS):
            name = SCENARIOS[int(name) - 1]
        if name not in SCENARIOS:
            parser.error(f"--only takes names from {','.join(SCENARIOS)} (or 1-4); got {name!r}")
        picked.append(name)
    args.scenarios = [sc for sc in SCENARIOS if sc in picked]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cove_path = preflight("engine_bench", args)
    if cove_path is None:
        return 1
    install_signals()
    workdir = Path(tempfile.mkdtemp(prefix="cove-eb-"))
    spawner = Spawner(workdir)
    b = Bench(args, workdir, spawner)

    def clean_up() -> list[str]:
        spawner.close()
        return teardown(b.engines, workdir)

    return run_and_clean_up(
        "engine_bench", lambda: bench(b, cove_path), clean_up, b.problems, b.report, args.json
    )


def bench(b: Bench, cove_path: str) -> int:
    args = b.args
    subreaper = become_subreaper()
    tarball = build_image_tar(b.workdir, Path(args.busybox))
    setup(b, cove_path, tarball)
    assert b.cove is not None
    b.report["config"] = {
        "scenarios": args.scenarios,
        "runs": args.runs,
        "duration_s": args.duration,
        "count": args.count,
        "containers": args.containers,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "subreaper": subreaper,
        "cove": cove_path,
        "cove_version": b.cove.version,
        "podman": b.podman.version if b.podman else None,
        "podman_note": b.podman_note,
        "podman_conf": b.podman.env["CONTAINERS_CONF"] if b.podman else None,
        "timer": "time.perf_counter_ns around posix_spawn + waitpid",
    }
    podman_line = b.podman_note
    if b.podman is not None:
        podman_line = f"{b.podman.version}, runc, cgroupfs, --network none, own --root"
    print(
        f"engine benchmark: kernel {platform.release()}, {os.cpu_count()} CPUs, "
        f"workdir {b.workdir}\n"
        f"  cove: {cove_path} --root {b.cove.dirs[0]} ({b.cove.version})\n"
        f"  podman: {podman_line}\n"
        f"  image: busybox rootfs tar of {tarball.stat().st_size / 1e6:.1f} MB imported into "
        f"each as bb:1\n"
        f"  scenarios: {', '.join(args.scenarios)}; runs {args.runs}, duration "
        f"{args.duration:g} s, count {args.count}, containers {args.containers}"
    )
    failed = run_scenarios(
        args.scenarios,
        lambda scenario: STEPS[scenario](b),
        b.report["scenarios"],
        b.problem,
        lambda: [remove_all(engine) for engine in b.engines],
    )

    print("\n== targets")
    for scenario in args.scenarios:
        res = b.report["scenarios"][scenario]
        value = res.get("ratio") if scenario != "memory" else None
        shown = f"{value:.2f}x" if value is not None else ""
        if scenario == "memory":
            pss = res.get("engines", {}).get("cove", {}).get("per_container_kb", {}).get("pss")
            shown = f"{pss:.0f} kB" if pss is not None else "n/a"
        print(
            f"  {SCENARIO_TITLES[scenario]:<26}{res.get('target', ''):<36}"
            f"{shown or 'n/a':>9}  {res.get('verdict', 'n/a')}"
        )
    print_problems(b.problems)
    return 1 if failed == len(args.scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())
