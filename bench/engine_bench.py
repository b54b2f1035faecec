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
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    Engine,
    Spawner,
    become_subreaper,
    engine_procs,
    find_cove,
    leaked_cgroups,
    leaked_mounts,
    leaked_sockets,
    list_ids,
    make_cove,
    make_podman,
    memory_kb,
    monitors,
    progress,
    reap_orphans,
    remove_all,
    start_detached,
    start_many,
    teardown,
    untimed,
    wait_settled,
)
from benchlib import BenchError, ratio, summarize


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwound like Ctrl-C, so the clean-up runs."""


def on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(f"signal {signum}")


# --------------------------------------------------------------------------- report


def verdict(value: float | None, limit: float, at_least: bool = False) -> str:
    if value is None:
        return "n/a"
    return "met" if (value >= limit if at_least else value <= limit) else "NOT met"


def cell(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def figures_table(
    metric: str,
    cove: float | None,
    podman: float | None,
    fmt: str,
    target: str,
    limit: float,
    at_least: bool = False,
    value: float | None = None,
) -> tuple[float | None, str]:
    """The summary line of a scenario: cove, podman, ratio, target, verdict.  ``value``
    is what the target is checked against (default: the ratio cove / podman)."""
    r = ratio(cove, podman)
    checked = r if value is None else value
    v = verdict(checked, limit, at_least)
    header = f"{'':<34}{'cove':>11}{'podman':>11}{'ratio':>9}   {'target':<26}"
    print(header + "verdict")
    print("-" * (len(header) + 8))
    print(
        f"{metric:<34}{cell(cove, fmt):>11}{cell(podman, fmt):>11}"
        f"{cell(r, '.2f') + ('x' if r is not None else ''):>9}   {target:<26}{v}"
    )
    return checked, v


def stats_rows(title: str, rows: list[tuple[str, dict[str, float] | None, str | None]]) -> None:
    header = f"{'engine':<34}{'median':>10}{'p90':>10}{'min':>10}{'max':>10}{'n':>5}   (ms)"
    print(f"\n{title}")
    print(header)
    print("-" * len(header))
    for label, st, error in rows:
        if st is None:
            print(f"{label:<34}{error or 'not measured'}")
        else:
            print(
                f"{label:<34}{st['median']:>10.1f}{st['p90']:>10.1f}{st['min']:>10.1f}"
                f"{st['max']:>10.1f}{st['n']:>5}"
            )


def stats(samples_ns: Sequence[int]) -> dict[str, float] | None:
    if not samples_ns:
        return None
    st = summarize(samples_ns)
    st["max"] = max(samples_ns) / 1e6
    return st


# --------------------------------------------------------------------------- context


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path, spawner: Spawner) -> None:
        self.args = args
        self.workdir = workdir
        self.spawner = spawner
        self.cove: Engine | None = None
        self.podman: Engine | None = None
        self.podman_note = ""
        self.problems: list[str] = []
        self.report: dict[str, Any] = {"scenarios": {}, "problems": self.problems}

    @property
    def engines(self) -> list[Engine]:
        return [e for e in (self.cove, self.podman) if e is not None]

    def problem(self, text: str) -> None:
        self.problems.append(text)
        print(f"  problem: {text}")

    def removal_check(self, engine: Engine, ids: Sequence[str], baseline: set[str]) -> float:
        """After a removal: nothing listed, no monitor or clean-up left (waits for them:
        returns the seconds waited), no new mount, cgroup or attach socket."""
        left = set(list_ids(engine)) & set(ids)
        if left:
            self.problem(f"{engine.name}: {len(left)} removed containers still listed by ps -a")
        waited, procs = wait_settled(engine)
        for proc in procs[:5]:
            self.problem(
                f"{engine.name}: process {proc.pid} ({proc.exe}) still running "
                f"{waited:.0f} s after rm -f: {proc.cmdline[:120]}"
            )
        # A mount right below the root is a storage driver's home (podman's overlay
        # driver bind-mounts pr/overlay onto itself), not a container's.
        root = engine.dirs[0]
        new_mounts = {m for m in leaked_mounts(root) if Path(m).parent != root} - baseline
        if new_mounts:
            self.problem(
                f"{engine.name}: {len(new_mounts)} mounts left after rm -f, e.g. "
                f"{sorted(new_mounts)[0]}"
            )
        cgroups = leaked_cgroups(set(ids))
        if cgroups:
            self.problem(
                f"{engine.name}: {len(cgroups)} cgroups left after rm -f, e.g. {cgroups[0]}"
            )
        if engine.name == "cove":
            socks = leaked_sockets(set(ids))
            if socks:
                self.problem(f"cove: {len(socks)} attach sockets left after rm -f, e.g. {socks[0]}")
        return waited


# --------------------------------------------------------------------------- set-up


def build_image_tar(workdir: Path, busybox: Path) -> Path:
    """A busybox rootfs as tools/build-busybox-rootfs.sh makes it, tarred."""
    rootfs = workdir / "rootfs"
    for sub in ("bin", "dev", "etc", "proc", "sys", "tmp", "root"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "busybox").chmod(0o755)

    def check(argv: list[str], what: str) -> None:
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"{what}: {exc}") from exc
        if proc.returncode != 0:
            raise BenchError(f"{what}: exit {proc.returncode}: {proc.stderr.strip()}")

    check(["chroot", str(rootfs), "/bin/busybox", "--install", "-s", "/bin"], "busybox --install")
    if not (rootfs / "bin" / "true").is_symlink():
        raise BenchError("busybox --install -s /bin made no applet links")
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
    )
    (rootfs / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    tarball = workdir / "rootfs.tar"
    check(["tar", "-cf", str(tarball), "-C", str(rootfs), "."], "tar -cf rootfs")
    shutil.rmtree(rootfs)
    return tarball


def setup(b: Bench, cove_path: str, tarball: Path) -> None:
    b.cove = make_cove(cove_path, b.workdir)
    untimed(b.cove, ["import", str(tarball), b.cove.image], "import", CALL_TIMEOUT_S)
    podman = shutil.which("podman")
    if podman is None:
        b.podman_note = "podman not found on PATH: podman columns are skipped"
        return
    if shutil.which("conmon") is None and not Path("/usr/libexec/podman/conmon").exists():
        b.podman_note = "conmon not found: podman columns are skipped"
        return
    engine = make_podman(podman, b.workdir)
    b.podman = engine  # cleaned up even if the import fails
    try:
        untimed(engine, ["import", str(tarball), engine.image], "import", CALL_TIMEOUT_S * 2)
        # One untimed container proves the configuration works on this host.
        probe = ["run", *engine.run_flags, "--rm", engine.image, "true"]
        untimed(engine, probe, "run probe", CALL_TIMEOUT_S)
    except BenchError as exc:
        b.podman_note = f"podman set-up failed, podman columns are skipped: {exc}"
        b.problems.append(b.podman_note)
        b.podman = None
        b.problems.extend(teardown([engine], None))


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
        "samples_ms": {k: [ns / 1e6 for ns in s] for k, s in samples.items()},
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
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: " + ", ".join(f"{k} {v:g}" for k, v in QUICK.items()),
    )
    parser.add_argument(
        "--only",
        metavar="SCENARIO",
        help=f"comma list from {','.join(SCENARIOS)} (or 1-4); default all",
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
    if os.geteuid() != 0:
        print("engine_bench: must run as root", file=sys.stderr)
        return 1
    cove_path = find_cove(args.cove)
    if cove_path is None:
        print("engine_bench: no cove launcher found (--cove PATH)", file=sys.stderr)
        return 1
    if not os.access(args.busybox, os.X_OK):
        print(f"engine_bench: no busybox at {args.busybox}", file=sys.stderr)
        return 1
    # Ctrl-C raises KeyboardInterrupt even when started in the background by a shell
    # that set SIGINT to ignored; SIGTERM and SIGHUP unwind the same way.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    workdir = Path(tempfile.mkdtemp(prefix="cove-eb-"))
    spawner = Spawner(workdir)
    b = Bench(args, workdir, spawner)
    status = 0
    try:
        status = bench(b, cove_path)
    except KeyboardInterrupt as exc:
        why = str(exc) or "Ctrl-C"
        print(f"\nengine_bench: interrupted ({why}); cleaning up", file=sys.stderr)
        status = 130
    except BenchError as exc:
        print(f"\nengine_bench: {exc}", file=sys.stderr)
        status = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        spawner.close()
        left = teardown(b.engines, workdir)
        print("\nclean-up: " + ("everything removed" if not left else "problems:"))
        for text in left:
            print(f"  {text}")
        b.problems.extend(left)
        if args.json:
            Path(args.json).write_text(json.dumps(b.report, indent=2, default=str) + "\n")
            print(f"wrote {args.json}")
    return status


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
    failed = 0
    for scenario in args.scenarios:
        try:
            b.report["scenarios"][scenario] = STEPS[scenario](b)
        except BenchError as exc:
            failed += 1
            b.problem(f"scenario {scenario} failed: {exc}")
            b.report["scenarios"][scenario] = {"error": str(exc)}
            for engine in b.engines:
                remove_all(engine)

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
    if b.problems:
        print("\nproblems seen:")
        for text in b.problems:
            print(f"  {text}")
    return 1 if failed == len(args.scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())
