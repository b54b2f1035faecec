#!/usr/bin/env python3
"""API benchmark: the Docker clients against `cove serve` and against Debian's dockerd.

Scenarios (same busybox image in both engines, `--network none`):

1. ``cli``: the docker CLI's ``docker run --rm --network none bb:1 true``, the engines
   taking turns (the order flips every round), ``--warmup`` rounds, then ``--runs``.
   Target: cove median <= 0.5x dockerd's.  A reference row gives ``docker version``
   (the CLI's own start-up plus two requests) against each.
2. ``sdk``: docker-py's ``client.containers.run("bb:1", "true", remove=True,
   network_mode="none")`` in a loop, one client per engine, turns as in 1.
3. ``profile``: where the time of one ``docker run --rm`` goes in `cove serve`: the
   server restarted with ``--log-level debug``, ``--profile-runs`` runs, the request
   sequence from its access log with each request's time (median over the runs).

dockerd runs privately (tests/lib/dockerd.py: its own containerd, data root, sockets and
namespaces, vfs, no iptables, no bridge); cove serve runs on a root of its own.  Everything
is stopped by PID and deleted on exit, Ctrl-C or SIGTERM.  Needs root.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_api_setup import CALL_TIMEOUT_S, IMAGE, Bench, Side, setup, teardown
from bench_cli import (
    apply_sizes,
    find_cove,
    has_busybox,
    install_signals,
    is_root,
    run_and_clean_up,
    run_scenarios,
)
from bench_procs import progress
from bench_tables import in_ms, print_problems, stats, stats_rows, target_verdict
from benchlib import BenchError, fmt_ratio, ratio, spawn_timed

TARGET = 0.5  # cove median <= 0.5x dockerd's
SCENARIOS = ("cli", "sdk", "profile")
DEFAULTS = {"runs": 20, "warmup": 2, "sdk_runs": 20, "profile_runs": 5}
QUICK = {"runs": 3, "warmup": 1, "sdk_runs": 3, "profile_runs": 2}
ACCESS_LINE = re.compile(r"^cove serve: (\S+) (\S+) (\d{3}) ([\d.]+)ms$")


# --------------------------------------------------------------------------- report


def stats_table(title: str, rows: list[tuple[str, dict[str, float] | None, str]]) -> None:
    stats_rows(f"== {title}", rows, head="", width=46, column=9)


def ratio_line(metric: str, cove: dict[str, float] | None,
               dockerd: dict[str, float] | None) -> dict[str, Any]:  # fmt: skip
    value = ratio(cove["median"] if cove else None, dockerd["median"] if dockerd else None)
    verdict = target_verdict(value, TARGET)
    print(f"  {metric}: cove/dockerd = {fmt_ratio(value)}   target <= {TARGET}x: {verdict}")
    return {"ratio": value, "target": f"cove median <= {TARGET}x dockerd", "verdict": verdict}


# --------------------------------------------------------------------------- scenarios


Samples = dict[str, list[int]]


def timed_rounds(
    b: Bench, what: str, rounds: int, warmup: int, one: Callable[[Side], int]
) -> tuple[Samples, dict[str, str]]:
    """``one(side)`` -> elapsed ns, for each working side in turn; warm-up rounds first."""
    samples: dict[str, list[int]] = {s.name: [] for s in b.sides}
    errors: dict[str, str] = {s.name: s.error for s in b.sides if s.error}
    total = warmup + rounds
    for i in range(total):
        for side in b.turns(i):
            if side.name in errors:
                continue
            try:
                elapsed = one(side)
            except BenchError as exc:
                errors[side.name] = str(exc)
                b.problem(f"{side.name} {what}: {exc}")
                continue
            if i >= warmup:
                samples[side.name].append(elapsed)
        progress(f"{what}: round {i + 1}/{total}" + (" (warm-up)" if i < warmup else ""),
                 done=i == total - 1)  # fmt: skip
    return samples, errors


def scenario_cli(b: Bench) -> dict[str, Any]:
    args = b.args
    argv = [b.docker_cli, "run", "--rm", "--network", "none", IMAGE, "true"]
    print(f"\n[1] {' '.join(['docker', *argv[1:]])}: {args.warmup} warm-up rounds, "
          f"{args.runs} timed, engines taking turns")  # fmt: skip
    null_fd = os.open(os.devnull, os.O_RDWR)
    err_path = b.workdir / "cli.err"
    err_fd = os.open(err_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)

    def spawn(side: Side, command: list[str]) -> int:
        elapsed, code = spawn_timed(command, side.env, null_fd, err_fd)
        if code != 0:
            lines = err_path.read_text(errors="replace").strip().splitlines()
            raise BenchError(f"exit {code}: {lines[-1] if lines else ''}")
        return elapsed

    try:
        samples, errors = timed_rounds(b, "docker run --rm", args.runs, args.warmup,
                                       lambda side: spawn(side, argv))  # fmt: skip
        version_argv = [b.docker_cli, "version"]
        reference, _ = timed_rounds(b, "docker version", max(5, args.runs // 2), 1,
                                    lambda side: spawn(side, version_argv))  # fmt: skip
    finally:
        os.close(null_fd)
        os.close(err_fd)
    b.check_empty("docker run --rm")
    st = {name: stats(s) for name, s in samples.items()}
    ref = {name: stats(s) for name, s in reference.items()}
    stats_table(f"docker run --rm --network none {IMAGE} true (wall time of the docker CLI)", [
        ("cove serve", st.get("cove"), errors.get("cove", "")),
        ("dockerd 20.10", st.get("dockerd"), errors.get("dockerd", "")),
        ("reference: docker version against cove", ref.get("cove"), ""),
        ("reference: docker version against dockerd", ref.get("dockerd"), ""),
    ])  # fmt: skip
    verdict = ratio_line("docker run --rm median", st.get("cove"), st.get("dockerd"))
    return {"stats_ms": st, "reference_ms": ref, "errors": errors,
            "samples_ms": in_ms(samples), **verdict}  # fmt: skip


def scenario_sdk(b: Bench) -> dict[str, Any]:
    args = b.args
    print(f"\n[2] docker-py: containers.run({IMAGE!r}, 'true', remove=True, network_mode="
          f"'none'): {args.warmup} warm-up rounds, {args.sdk_runs} timed")  # fmt: skip
    try:
        import docker as docker_sdk  # type: ignore[import-untyped]
    except ImportError:
        note = "docker-py is not installed here (run with /opt/cove/venv/bin/python)"
        print(f"  {note}")
        return {"error": note}
    for side in b.sides:
        if not side.error:
            side.client = docker_sdk.DockerClient(base_url=side.url, timeout=CALL_TIMEOUT_S)

    def one(side: Side) -> int:
        start = time.perf_counter_ns()
        try:
            output = side.client.containers.run(IMAGE, "true", remove=True, network_mode="none")
        except docker_sdk.errors.DockerException as exc:
            raise BenchError(str(exc)) from exc
        elapsed = time.perf_counter_ns() - start
        if output != b"":
            raise BenchError(f"unexpected output {output!r}")
        return elapsed

    try:
        samples, errors = timed_rounds(b, "containers.run", args.sdk_runs, args.warmup, one)
    finally:
        for side in b.sides:
            if side.client is not None:
                side.client.close()
                side.client = None
    b.check_empty("containers.run(remove=True)")
    st = {name: stats(s) for name, s in samples.items()}
    stats_table("docker-py containers.run(..., remove=True) (wall time of the call)", [
        ("cove serve", st.get("cove"), errors.get("cove", "")),
        ("dockerd 20.10", st.get("dockerd"), errors.get("dockerd", "")),
    ])  # fmt: skip
    verdict = ratio_line("containers.run median", st.get("cove"), st.get("dockerd"))
    return {"stats_ms": st, "errors": errors, "samples_ms": in_ms(samples), **verdict}


def request_label(method: str, path: str) -> str:
    """POST /v1.44/containers/<64 hex>/wait?condition=removed -> POST /containers/{id}/wait
    ?condition=removed (the query kept: it tells attach and wait apart)."""
    path = re.sub(r"^/v\d+\.\d+", "", path)
    path = re.sub(r"/[0-9a-f]{64}(?=/|$|\?)", "/{id}", path)
    return f"{method} {path}"


def scenario_profile(b: Bench) -> dict[str, Any]:
    """The request sequence of one `docker run --rm` in cove serve's access log."""
    runs = b.args.profile_runs
    side = b.side("cove")
    if side is None or b.serve is None:
        return {"error": "cove serve is not running"}
    print(f"\n[3] where the time of one docker run --rm goes in cove serve ({runs} runs, "
          "server restarted with --log-level debug)")  # fmt: skip
    b.serve.start("debug")
    argv = [b.docker_cli, "run", "--rm", "--network", "none", IMAGE, "true"]
    null_fd = os.open(os.devnull, os.O_RDWR)
    err_fd = os.open(b.workdir / "profile.err", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    sequences: list[list[tuple[str, int, float]]] = []
    walls: list[int] = []
    phases: list[dict[str, float]] = []
    try:
        spawn_timed(argv, side.env, null_fd, err_fd)  # warm-up
        for i in range(runs):
            time.sleep(0.3)  # the previous run's last lines are in the log
            offset = b.serve.log_path.stat().st_size
            began_ns = time.time_ns()
            elapsed, code = spawn_timed(argv, side.env, null_fd, err_fd)
            ended_ns = time.time_ns()
            if code != 0:
                raise BenchError(f"docker run --rm: exit {code}")
            time.sleep(0.3)  # a hijacked stream is logged when its connection closes
            with open(b.serve.log_path, "rb") as log:
                log.seek(offset)
                lines = log.read().decode(errors="replace").splitlines()
            found = []
            ids = set()
            for line in lines:
                match = ACCESS_LINE.match(line)
                if match:
                    method, path, status, ms = match.groups()
                    found.append((request_label(method, path), int(status), float(ms)))
                    ids.update(re.findall(r"/containers/([0-9a-f]{64})/", path))
            sequences.append(found)
            walls.append(elapsed)
            if len(ids) == 1:
                phases.append(journal_phases(b.serve.root, ids.pop(), began_ns, ended_ns))
            progress(f"profile run {i + 1}/{runs}", done=i == runs - 1)
    finally:
        os.close(null_fd)
        os.close(err_fd)
        b.serve.start("info")
    order: list[str] = []
    times: dict[str, list[float]] = {}
    statuses: dict[str, int] = {}
    for sequence in sequences:
        for label, status, ms in sequence:
            if label not in times:
                order.append(label)
                times[label] = []
            times[label].append(ms)
            statuses[label] = status
    wall_ms = statistics.median(walls) / 1e6
    print(f"\n== requests of one docker run --rm, in the order the server finished them "
          f"(median of {runs}; CLI wall time {wall_ms:.1f} ms)")  # fmt: skip
    print(f"{'request':<64}{'status':>7}{'median':>9}{'min':>9}   (ms)")
    for label in order:
        values = times[label]
        print(f"{label:<64}{statuses[label]:>7}{statistics.median(values):>9.1f}"
              f"{min(values):>9.1f}")  # fmt: skip
    med = {label: statistics.median(v) for label, v in times.items()}

    def pick(prefix: str) -> float:
        return sum(v for label, v in med.items() if label.startswith(prefix))

    start = pick("POST /containers/{id}/start")
    wait = pick("POST /containers/{id}/wait")
    before = pick("HEAD /_ping") + pick("GET /_ping") + pick("POST /containers/create")
    breakdown = {
        "ping + create (before the CLI starts the container)": before,
        "start (the engine's start, answered when the process runs)": start,
        "after start until the wait sees the removal (exit, --rm, journal)": max(
            0.0, wait - start),
        "the docker CLI itself and the connections (wall - ping - create - wait)": max(
            0.0, wall_ms - before - wait),
    }  # fmt: skip
    print("\n  breakdown of the wall time (the wait is posted before the start and spans it):")
    for text, ms in breakdown.items():
        print(f"    {ms:>7.1f} ms  {text}")
    timeline = {key: statistics.median(p[key] for p in phases) for key in JOURNAL_PHASES
                if phases and all(key in p for p in phases)}  # fmt: skip
    if timeline:
        print("\n  the same runs on the engine's event journal (create, start, die and destroy "
              "as the engine stamped them; median):")  # fmt: skip
        for key, ms in timeline.items():
            print(f"    {ms:>7.1f} ms  {JOURNAL_PHASES[key]}")
    return {"runs": runs, "wall_ms": wall_ms, "requests_ms": med, "order": order,
            "breakdown_ms": breakdown, "journal_ms": timeline}  # fmt: skip


JOURNAL_PHASES = {
    "to_create": "CLI spawned -> create (the CLI's start-up, /_ping, the create request)",
    "to_start": "create -> start (attach and wait posted, the engine's start)",
    "to_die": "start -> die (true runs and exits; the monitor's exit command records it)",
    "to_destroy": "die -> destroy (the exit command removes the container: --rm)",
    "to_exit": "destroy -> CLI exited (the wait answered, the CLI's exit)",
}


def journal_phases(root: Path, container_id: str, began_ns: int, ended_ns: int) -> dict[str, float]:
    """Milliseconds between the CLI's spawn, the container's journal events and its exit."""
    stamps: dict[str, int] = {}
    try:
        lines = (root / "events.jsonl").read_text(errors="replace").splitlines()
    except OSError:
        return {}
    for line in lines[-200:]:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if (event.get("Actor") or {}).get("ID") == container_id:
            stamps.setdefault(str(event.get("Action")), int(event.get("timeNano") or 0))
    order = [("to_create", "create"), ("to_start", "start"), ("to_die", "die"),
             ("to_destroy", "destroy")]  # fmt: skip
    found: dict[str, float] = {}
    previous = began_ns
    for key, action in order:
        if action not in stamps:
            return found
        found[key] = (stamps[action] - previous) / 1e6
        previous = stamps[action]
    found["to_exit"] = (ended_ns - previous) / 1e6
    return found


STEPS = {"cli": scenario_cli, "sdk": scenario_sdk, "profile": scenario_profile}


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, help=f"timed CLI rounds ({DEFAULTS['runs']})")
    parser.add_argument("--warmup", type=int, help=f"warm-up rounds ({DEFAULTS['warmup']})")
    parser.add_argument("--sdk-runs", type=int,
                        help=f"timed docker-py rounds ({DEFAULTS['sdk_runs']})")  # fmt: skip
    parser.add_argument("--profile-runs", type=int,
                        help=f"profiled runs ({DEFAULTS['profile_runs']})")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="a smoke run: tiny sizes")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS),
                        help="comma list from cli, sdk, profile (default: all)")  # fmt: skip
    parser.add_argument("--cove", help="the cove launcher (default /usr/local/bin/cove)")
    parser.add_argument("--busybox", default="/bin/busybox", help="a static busybox")
    parser.add_argument("--json", help="write every sample and figure to this file")
    args = parser.parse_args(argv)
    apply_sizes(args, QUICK, DEFAULTS)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r} (want {', '.join(SCENARIOS)})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not is_root("api_bench"):
        return 1
    cove_path = find_cove(args.cove)
    docker_cli = next((p for p in ("/usr/local/bin/docker", "/usr/bin/docker")
                       if os.access(p, os.X_OK)), None)  # fmt: skip
    if cove_path is None or docker_cli is None:
        print("api_bench: needs cove (--cove PATH) and the docker CLI", file=sys.stderr)
        return 1
    if not has_busybox("api_bench", args.busybox):
        return 1
    install_signals()
    workdir = Path(tempfile.mkdtemp(prefix="cove-ab-", dir="/tmp"))
    b = Bench(args, workdir, docker_cli)

    def problems_into_report() -> None:
        b.report["problems"] = b.problems

    return run_and_clean_up("api_bench", lambda: bench(b, cove_path), lambda: teardown(b),
                            b.problems, b.report, args.json, problems_into_report)  # fmt: skip


def bench(b: Bench, cove_path: str) -> int:
    args = b.args
    setup(b, cove_path)
    b.report["config"] = {
        "scenarios": args.scenarios, "runs": args.runs, "warmup": args.warmup,
        "sdk_runs": args.sdk_runs, "profile_runs": args.profile_runs,
        "kernel": platform.release(), "cpus": os.cpu_count(), "cove": cove_path,
        "docker_cli": b.docker_cli,
        "engines": {s.name: s.version or s.error for s in b.sides},
        "load_at_start": os.getloadavg(),
        "timer": "time.perf_counter_ns around posix_spawn + waitpid (CLI), around the call (SDK)",
    }  # fmt: skip
    print(f"API benchmark: kernel {platform.release()}, {os.cpu_count()} CPUs, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, workdir {b.workdir}")  # fmt: skip
    for side in b.sides:
        print(f"  {side.name}: {side.version or side.error}")
    failed = run_scenarios(args.scenarios, lambda scenario: STEPS[scenario](b),
                           b.report["scenarios"], b.problem)  # fmt: skip
    b.report["load_at_end"] = os.getloadavg()
    print(f"\n== targets (load at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    for scenario in ("cli", "sdk"):
        found = b.report["scenarios"].get(scenario)
        if found is None:
            continue
        shown = fmt_ratio(found.get("ratio"))
        print(f"  {scenario:<8}cove/dockerd {shown:>7}   target <= {TARGET}x: "
              f"{found.get('verdict', 'n/a')}")  # fmt: skip
    print_problems(b.problems)
    return 1 if failed == len(args.scenarios) else 0


if __name__ == "__main__":
    sys.exit(main())
