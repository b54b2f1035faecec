#!/usr/bin/env python3
"""Start-up latency benchmark: cove-runtime against runc and crun.

Scenarios, each timed from spawning the runtime to reaping it:

* ``run``: ``<rt> --root <state> run --bundle <bundle> <id>`` of ``/bin/true``.
* ``lifecycle``: ``create`` + ``start`` + ``delete``; the wait for the container
  to stop (polling ``state``) happens between ``start`` and ``delete`` and is
  not counted.
* ``limits`` (``run+limits``): ``run`` with linux.resources setting memory (and
  swap) to 256 MiB, a CPU quota of 50000/100000 and a pids limit of 100.
* ``seccomp`` (``run+seccomp``): ``run`` with the Docker-like default profile of
  tests/lib/seccomp_profiles.py (noNewPrivileges stays true).

The runtimes are measured in interleaved rounds, so slow drift of the machine
affects all of them alike; ``run``, ``run+limits`` and ``run+seccomp`` share
their rounds, so the cost of the limits or of the filter is a difference of
figures taken side by side.  On a hybrid cgroup host crun is run through an
``unshare`` + ``sh`` wrapper that unmounts /sys/fs/cgroup/unified; the extra
cost of that wrapper is measured on its own (running ``true``) and subtracted.

Needs root.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_importtime import hot_path_env as hot_path_env
from bench_importtime import parse_importtime as parse_importtime
from bench_importtime import profile_imports as profile_imports
from bench_importtime import python_section as python_section
from bench_runtime_setup import BUNDLE_OF as BUNDLE_OF
from bench_runtime_setup import CALLS_PER_SAMPLE as CALLS_PER_SAMPLE
from bench_runtime_setup import CHECK_EXPECT as CHECK_EXPECT
from bench_runtime_setup import CHECK_SCRIPT as CHECK_SCRIPT
from bench_runtime_setup import DEFAULT_COVE as DEFAULT_COVE
from bench_runtime_setup import DEFAULT_PYTHON as DEFAULT_PYTHON
from bench_runtime_setup import HOT_IMPORT as HOT_IMPORT
from bench_runtime_setup import HOT_MODULE as HOT_MODULE
from bench_runtime_setup import LIMITS_RESOURCES as LIMITS_RESOURCES
from bench_runtime_setup import MIB as MIB
from bench_runtime_setup import PR_SET_CHILD_SUBREAPER as PR_SET_CHILD_SUBREAPER
from bench_runtime_setup import REPO_ROOT as REPO_ROOT
from bench_runtime_setup import RUN_SCENARIOS as RUN_SCENARIOS
from bench_runtime_setup import RUNTIME_NAMES as RUNTIME_NAMES
from bench_runtime_setup import SCENARIO_LABELS as SCENARIO_LABELS
from bench_runtime_setup import SCENARIOS as SCENARIOS
from bench_runtime_setup import SECCOMP_PROFILES as SECCOMP_PROFILES
from bench_runtime_setup import STATE_TIMEOUT_S as STATE_TIMEOUT_S
from bench_runtime_setup import TARGET_VS_CRUN as TARGET_VS_CRUN
from bench_runtime_setup import TARGET_VS_RUNC as TARGET_VS_RUNC
from bench_runtime_setup import UNIFIED_MOUNT as UNIFIED_MOUNT
from bench_runtime_setup import WRAPPER_SCRIPT as WRAPPER_SCRIPT
from bench_runtime_setup import Runtime as Runtime
from bench_runtime_setup import Series as Series
from bench_runtime_setup import Spawner as Spawner
from bench_runtime_setup import become_subreaper as become_subreaper
from bench_runtime_setup import build_rootfs as build_rootfs
from bench_runtime_setup import call as call
from bench_runtime_setup import check_applied as check_applied
from bench_runtime_setup import default_spec as default_spec
from bench_runtime_setup import find_cove as find_cove
from bench_runtime_setup import force_delete as force_delete
from bench_runtime_setup import hybrid_cgroups as hybrid_cgroups
from bench_runtime_setup import lifecycle_once as lifecycle_once
from bench_runtime_setup import load_seccomp_profile as load_seccomp_profile
from bench_runtime_setup import make_bundle as make_bundle
from bench_runtime_setup import make_runtime as make_runtime
from bench_runtime_setup import measure as measure
from bench_runtime_setup import parse_check as parse_check
from bench_runtime_setup import reap_orphans as reap_orphans
from bench_runtime_setup import run_once as run_once
from bench_runtime_setup import scenario_config as scenario_config
from bench_runtime_setup import wait_stopped as wait_stopped
from bench_runtime_setup import wrapper_prefix as wrapper_prefix
from benchlib import BenchError as BenchError
from benchlib import difference as difference
from benchlib import first_line as first_line
from benchlib import fmt_ms as fmt_ms
from benchlib import fmt_ratio as fmt_ratio
from benchlib import percentile as percentile
from benchlib import ratio as ratio
from benchlib import summarize as summarize
from benchlib import verdict as verdict


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Start-up latency benchmark: cove-runtime against runc and crun."
    )
    parser.add_argument("--runs", type=int, default=30, help="measured runs (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up runs (default 3)")
    parser.add_argument(
        "--runtimes", default="cove,runc,crun", help="comma list from cove,runc,crun"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma list from {','.join(SCENARIOS)} (default all)",
    )
    parser.add_argument("--json", metavar="FILE", help="write all figures to FILE")
    parser.add_argument("--cove-runtime", metavar="PATH", help="cove-runtime binary to use")
    parser.add_argument(
        "--python",
        metavar="PATH",
        help=f"python for the import-time section (default {DEFAULT_PYTHON})",
    )
    parser.add_argument("--busybox", default="/bin/busybox", help="static busybox binary")
    args = parser.parse_args(argv)

    names = [n.strip() for n in args.runtimes.split(",") if n.strip()]
    unknown = [n for n in names if n not in RUNTIME_NAMES]
    if unknown or not names:
        parser.error(f"--runtimes takes names from {','.join(RUNTIME_NAMES)}; got {unknown}")
    by_label = {label: name for name, label in SCENARIO_LABELS.items()}
    picked = [by_label.get(n.strip(), n.strip()) for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in picked if n not in SCENARIOS]
    if unknown or not picked:
        parser.error(f"--scenarios takes names from {','.join(SCENARIOS)}; got {unknown}")
    scenarios = [sc for sc in SCENARIOS if sc in picked]
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be >= 1 and --warmup >= 0")
    if os.geteuid() != 0:
        print("runtime_bench: must run as root", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="cove-bench-"))
    spawner = Spawner(workdir)
    runtimes: list[Runtime] = []
    try:
        return bench(args, names, scenarios, workdir, spawner, runtimes)
    finally:
        for rt in runtimes:
            for cid in sorted(rt.pending):
                force_delete(rt, cid)
        reap_orphans()
        spawner.close()
        shutil.rmtree(workdir, ignore_errors=True)


def bench(
    args: argparse.Namespace,
    names: list[str],
    scenarios: list[str],
    workdir: Path,
    spawner: Spawner,
    runtimes: list[Runtime],
) -> int:
    subreaper = become_subreaper()
    runtimes.extend(make_runtime(n, find_cove(args.cove_runtime), workdir) for n in names)
    present = [rt for rt in runtimes if rt.binary]

    rootfs = workdir / "rootfs"
    build_rootfs(rootfs, Path(args.busybox))
    spec = default_spec(workdir)
    # A scenario that cannot be set up fails for every runtime, with this message.
    scenario_errors: dict[str, str] = {}
    seccomp: dict[str, Any] | None = None
    if "seccomp" in scenarios:
        try:
            seccomp = load_seccomp_profile()
        except BenchError as exc:
            scenario_errors["seccomp"] = str(exc)
    variants = sorted(
        {BUNDLE_OF[sc] for sc in scenarios if sc not in scenario_errors},
        key=list(BUNDLE_OF.values()).index,
    )
    configs = {v: scenario_config(spec, v, seccomp) for v in variants}
    for rt in present:
        for variant in variants:
            rt.bundles[variant] = workdir / f"bundle-{rt.name}-{variant}"
            make_bundle(rt.bundles[variant], rootfs, configs[variant])

    true_bin = shutil.which("true") or "/bin/true"
    crun = next((rt for rt in present if rt.wrapped), None)
    tag = f"{os.getpid()}-{time.time_ns() % 10**6}"

    labels = ", ".join(SCENARIO_LABELS[sc] for sc in scenarios)
    print(
        f"runtime benchmark: {args.runs} runs after {args.warmup} warm-up, "
        f"kernel {platform.release()}, {os.cpu_count()} CPUs, workdir {workdir}\n"
        f"  scenarios: {labels}"
    )
    for rt in runtimes:
        if rt.binary is None:
            print(f"  {rt.label}: not found")
        else:
            how = " (via unshare wrapper: hybrid cgroups)" if rt.wrapped else ""
            print(f"  {rt.label}: {rt.binary}, {rt.version}{how}")
    if "limits" in scenarios:
        print(f"  run+limits: linux.resources += {json.dumps(LIMITS_RESOURCES)}")
    if seccomp is not None:
        rules = seccomp["syscalls"]
        print(
            f"  run+seccomp: {SECCOMP_PROFILES.relative_to(REPO_ROOT)} default_profile(), "
            f"{sum(len(r['names']) for r in rules)} names in {len(rules)} rules, "
            f"default {seccomp['defaultAction']}, "
            f"noNewPrivileges {configs['seccomp']['process'].get('noNewPrivileges')}"
        )

    # Untimed: does each runtime apply the limits and the filter it is timed with?
    checks: dict[str, dict[str, str]] = {}
    for scenario in ("limits", "seccomp"):
        if scenario not in scenarios or scenario in scenario_errors or not present:
            continue
        checks[scenario] = {
            rt.name: check_applied(rt, scenario, configs[BUNDLE_OF[scenario]], workdir)
            for rt in present
        }
        cells = ", ".join(f"{name} {verdict}" for name, verdict in checks[scenario].items())
        print(f"  check {SCENARIO_LABELS[scenario]}, seen from inside: {cells}")

    # The series of each scenario, keyed by runtime name; reference probes separately.
    results: dict[str, dict[str, Series]] = {sc: {} for sc in scenarios}
    refs: dict[str, Series] = {}

    def reference(argv: list[str]) -> Callable[[int], dict[str, int]]:
        def once(_: int) -> dict[str, int]:
            elapsed, code = spawner.timed(argv)
            if code != 0:
                raise BenchError(f"exited {code}: {spawner.last_stderr()}")
            return {"total": elapsed}

        return once

    def per_runtime(
        rt: Runtime,
        scenario: str,
        fn: Callable[[Spawner, Runtime, str, Path], dict[str, int]],
    ) -> Callable[[int], dict[str, int]]:
        # The bundle is looked up per call: a scenario that failed to set up has none.
        return lambda i: fn(
            spawner, rt, f"bench-{scenario}-{rt.name}-{tag}-{i}", rt.bundle(scenario)
        )

    # Two blocks of interleaved rounds: the `run` scenarios together (every runtime in
    # every one of them per round), then lifecycle.  The reference probes join the first.
    blocks = [
        [sc for sc in RUN_SCENARIOS if sc in scenarios],
        [sc for sc in ("lifecycle",) if sc in scenarios],
    ]
    print(file=sys.stderr)
    for block in (b for b in blocks if b):
        series = []
        for scenario in block:
            fn = lifecycle_once if scenario == "lifecycle" else run_once
            for rt in present:
                probe = Series(
                    f"{rt.label} {SCENARIO_LABELS[scenario]}", per_runtime(rt, scenario, fn)
                )
                probe.error = scenario_errors.get(scenario)
                results[scenario][rt.name] = probe
                series.append(probe)
        if not refs:
            refs["spawn true"] = Series(f"spawn {true_bin}", reference([true_bin]))
            series.append(refs["spawn true"])
            if crun is not None:
                refs["wrapper true"] = Series(
                    f"crun wrapper running {true_bin}", reference(wrapper_prefix(true_bin))
                )
                series.append(refs["wrapper true"])
        title = ", ".join(SCENARIO_LABELS[sc] for sc in block)
        measure(series, args.runs, args.warmup, title)

    # Wrapper overhead per runtime call: wrapper(true) - plain spawn of true, medians.
    overhead_ms = 0.0
    spawn_ref = refs.get("spawn true")
    wrap_ref = refs.get("wrapper true")
    if crun is not None:
        if wrap_ref is None or wrap_ref.error or spawn_ref is None or spawn_ref.error:
            print("warning: wrapper overhead could not be measured; crun is not corrected")
        else:
            overhead_ms = (percentile(wrap_ref.totals, 50) - percentile(spawn_ref.totals, 50)) / 1e6

    report: dict[str, Any] = {
        "config": {
            "runs": args.runs,
            "warmup": args.warmup,
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "hybrid_cgroups": hybrid_cgroups(),
            "subreaper": subreaper,
            "timer": "time.perf_counter_ns around posix_spawn + waitpid",
            "scenarios": scenarios,
        },
        "scenarios": {
            sc: {
                "label": SCENARIO_LABELS[sc],
                "calls_per_sample": CALLS_PER_SAMPLE[sc],
                "measured_with": [x for b in blocks if sc in b for x in b],
                "error": scenario_errors.get(sc),
                "config_json": configs.get(BUNDLE_OF[sc]),
                "applied_check": checks.get(sc),
            }
            for sc in scenarios
        },
        "runtimes": {
            rt.name: {
                "binary": rt.binary,
                "version": rt.version,
                "wrapped": rt.wrapped,
                "status": "not found" if rt.binary is None else "ok",
            }
            for rt in runtimes
        },
        "wrapper_overhead_ms_per_call": overhead_ms,
        "results": {},
        "reference": {},
        "ratios": {},
        "cost_over_run_ms": {},
        "targets": {},
    }

    # ---- table
    print(f"\n== OCI runtime start-up, /bin/true ({args.runs} runs, ms)")
    header = f"{'runtime':<24}{'scenario':<13}{'median':>9}{'p90':>9}{'min':>9}"
    print(header)
    print("-" * len(header))
    medians: dict[str, dict[str, float | None]] = {sc: {} for sc in scenarios}
    any_ok = False
    for scenario in scenarios:
        label = SCENARIO_LABELS[scenario]
        for rt in runtimes:
            entry: dict[str, Any] = {"scenario": label}
            report["results"].setdefault(rt.name, {})[scenario] = entry
            medians[scenario][rt.name] = None
            s = results[scenario].get(rt.name)
            if rt.binary is None or s is None:
                print(f"{rt.label:<24}{label:<13}{rt.label}: not found")
                entry["status"] = "not found"
                continue
            if s.error is not None or not s.totals:
                print(f"{rt.label:<24}{label:<13}{rt.label}: failed: {s.error}")
                entry.update(status="failed", error=s.error)
                continue
            any_ok = True
            raw = summarize(s.totals)
            entry.update(
                status="ok",
                stats_ms=raw,
                samples_ms=[ns / 1e6 for ns in s.totals],
                phases_ms={k: summarize(v) for k, v in s.phases.items()},
            )
            rows = [(rt.label, raw)]
            if rt.wrapped:
                corrected = summarize(s.totals, overhead_ms * CALLS_PER_SAMPLE[scenario])
                entry["corrected_stats_ms"] = corrected
                rows = [(f"{rt.label} (raw)", raw), (f"{rt.label} (corrected)", corrected)]
            for row_label, st in rows:
                print(
                    f"{row_label:<24}{label:<13}"
                    f"{st['median']:>9.2f}{st['p90']:>9.2f}{st['min']:>9.2f}"
                )
            medians[scenario][rt.name] = rows[-1][1]["median"]
    print("-" * len(header))
    for ref in refs.values():
        if ref.error or not ref.totals:
            print(f"{ref.name}: failed: {ref.error}")
            continue
        st = summarize(ref.totals)
        report["reference"][ref.name] = st
        print(f"{ref.name:<37}{st['median']:>9.2f}{st['p90']:>9.2f}{st['min']:>9.2f}")
    if crun is not None:
        print(
            f"crun wrapper overhead per call: {overhead_ms:.2f} ms (median wrapper running "
            "true minus median plain true); corrected = raw - overhead x calls "
            "(lifecycle 3, the others 1)"
        )

    # ---- lifecycle phases
    phase_rows = [
        (rt, results["lifecycle"][rt.name])
        for rt in present
        if "lifecycle" in results
        and rt.name in results["lifecycle"]
        and results["lifecycle"][rt.name].totals
    ]
    if phase_rows:
        print(f"\nlifecycle phases, median ms{' (crun raw)' if crun else ''}:")
        print(f"{'runtime':<24}{'create':>9}{'start':>9}{'delete':>9}")
        for rt, s in phase_rows:
            cells = "".join(
                f"{percentile(s.phases[p], 50) / 1e6:>9.2f}" for p in ("create", "start", "delete")
            )
            print(f"{rt.label:<24}{cells}")

    # ---- ratios, cost of the limits and of the filter, targets
    print("\n== Ratios (median / median; crun = corrected)")
    for scenario in scenarios:
        label = SCENARIO_LABELS[scenario]
        cove = medians[scenario].get("cove")
        r_runc = ratio(cove, medians[scenario].get("runc"))
        r_crun = ratio(cove, medians[scenario].get("crun"))
        report["ratios"][scenario] = {"cove/runc": r_runc, "cove/crun": r_crun}
        print(f"{label:<13}cove/runc {fmt_ratio(r_runc):>7}   cove/crun {fmt_ratio(r_crun):>7}")
        if scenario in ("limits", "seccomp"):
            costs = {
                rt.name: difference(
                    medians[scenario].get(rt.name), medians.get("run", {}).get(rt.name)
                )
                for rt in runtimes
            }
            report["cost_over_run_ms"][scenario] = costs
            cells = ", ".join(f"{name} {fmt_ms(cost)}" for name, cost in costs.items())
            why = "" if "run" in scenarios else " (run not measured)"
            print(f"{'':<13}cost over plain run{why}: {cells}")
    run_ratios = report["ratios"].get("run", {})
    targets = [
        ("cove run median <= 0.8x runc", run_ratios.get("cove/runc"), TARGET_VS_RUNC),
        ("cove run median <= 2x crun", run_ratios.get("cove/crun"), TARGET_VS_CRUN),
    ]
    print("targets:")
    for target, value, limit in targets:
        report["targets"][target] = {
            "ratio": value,
            "limit": limit,
            "verdict": verdict(value, limit),
        }
        print(f"  {target:<32}{fmt_ratio(value):>8}  {verdict(value, limit)}")

    # ---- python start-up and import time
    python = args.python or (str(DEFAULT_PYTHON) if DEFAULT_PYTHON.exists() else sys.executable)
    report["python"] = python_section(python, spawner, args.runs, args.warmup)

    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    if not any_ok:
        print("runtime_bench: no runtime worked", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
