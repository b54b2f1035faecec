#!/usr/bin/env python3
"""Build benchmark: `cove build` against `podman build` (Buildah inside podman), the same
five-step Dockerfile on the same busybox image in each.

The Dockerfile (FROM the busybox image, COPY a folder of the context, RUN, ENV, CMD) is
built twice per turn:

1. ``cold``: nothing of it in the engine's cache or image store (the previous turn's
   image, its intermediate images and cache entries are removed, untimed, beforehand).
   Target: cove median <= 0.7x podman's.
2. ``rebuild``: the same build again, nothing changed: every step a cache hit.  Target:
   cove median <= 0.5x podman's, and under 0.5 s.

The engines take turns (the first engine alternates between rounds), one warm-up round
first, then ``--runs`` rounds.  Each engine has its own temporary storage (podman as
bench/engine_bench.py sets it up: runc, cgroupfs, its own --root); RUN steps get
``--network none`` in both, so no build touches the host's network set-up.  Each build is
checked: the cold one ran the RUN step, the rebuild did not and gave the same image id,
and the image runs and prints what the Dockerfile put in it.

Needs root.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_cli import Interrupted, find_cove, on_signal
from bench_engine_setup import (
    CALL_TIMEOUT_S,
    Engine,
    make_cove,
    make_podman,
    teardown,
    untimed,
)
from bench_procs import Spawner, become_subreaper, progress, reap_orphans
from bench_tables import figures_table, stats, stats_rows
from benchlib import BenchError, build_image_tar

TARGET_COLD = 0.7  # cove cold build median <= 0.7x podman's
TARGET_REBUILD = 0.5  # cove no-change rebuild median <= 0.5x podman's ...
TARGET_REBUILD_MS = 500.0  # ... and under 0.5 s
DEFAULT_RUNS = 10
QUICK_RUNS = 2
BUILD_TIMEOUT_S = 300.0
TAG = "bench-build:1"
RUN_MARKER = "bench-run step-ran"  # (the RUN text says "bench-run \"step-ran\"")
FILES = 16  # files in the copied folder, 4 KiB each

DOCKERFILE = """\
FROM {image}
COPY app/ /app/
RUN cat /app/*.txt > /app/all && wc -c /app/all && echo bench-run "step-ran"
ENV APP_HOME=/app
CMD ["sh", "-c", "echo $APP_HOME; wc -c < /app/all"]
"""
EXPECTED_OUTPUT = f"/app\n{FILES * 4096}\n"


# --------------------------------------------------------------------------- set-up


def make_context(workdir: Path, engine: Engine) -> Path:
    """The build context of one engine (the FROM line names its copy of the image)."""
    ctx = workdir / f"ctx-{engine.name}"
    (ctx / "app").mkdir(parents=True)
    for i in range(FILES):
        line = f"file {i:02d} of the build context\n".encode()
        (ctx / "app" / f"f{i:02d}.txt").write_bytes((line * (4096 // len(line) + 1))[:4096])
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(image=engine.image, marker=RUN_MARKER))
    return ctx


def setup(workdir: Path, cove_path: str, tarball: Path) -> tuple[Engine, Engine | None, str]:
    """cove and podman (None, with the reason, when podman cannot be used)."""
    import shutil

    cove = make_cove(cove_path, workdir)
    untimed(cove, ["import", str(tarball), cove.image], "import", CALL_TIMEOUT_S)
    binary = shutil.which("podman")
    if binary is None:
        return cove, None, "podman not found on PATH: podman columns are skipped"
    podman = make_podman(binary, workdir)
    try:
        untimed(podman, ["import", str(tarball), podman.image], "import", CALL_TIMEOUT_S * 2)
    except BenchError as exc:
        teardown([podman], None)
        return cove, None, f"podman set-up failed, podman columns are skipped: {exc}"
    return cove, podman, ""


# --------------------------------------------------------------------------- one turn


class Builds:
    def __init__(self, spawner: Spawner, workdir: Path, problems: list[str]) -> None:
        self.spawner = spawner
        self.workdir = workdir
        self.problems = problems
        self.baseline: dict[str, set[str]] = {}

    def build(self, engine: Engine, ctx: Path, what: str) -> tuple[int, str, str]:
        """One timed build: (elapsed ns, image id, output)."""
        iidfile = self.workdir / f"iid-{engine.name}"
        iidfile.unlink(missing_ok=True)
        argv = engine.argv("build", "--network", "none", "--iidfile", str(iidfile), "-t", TAG,
                           str(ctx))  # fmt: skip
        try:
            out = self.spawner.run(argv, engine.env, BUILD_TIMEOUT_S)
        finally:
            reap_orphans()
        text = out.stdout + out.stderr
        if out.code != 0:
            raise BenchError(f"{engine.name} build ({what}): exit {out.code}: {out.last_error()}")
        try:
            image_id = iidfile.read_text().strip()
        except OSError as exc:
            raise BenchError(f"{engine.name} build ({what}) wrote no --iidfile: {exc}") from None
        return out.elapsed_ns, image_id, text

    def images(self, engine: Engine) -> set[str]:
        out = untimed(engine, ["images", "-a", "-q", "--no-trunc"], "images -a", CALL_TIMEOUT_S)
        return {line.strip() for line in out.stdout.splitlines() if line.strip()}

    def forget(self, engine: Engine) -> None:
        """Untimed: remove the built image and its intermediate images (the steps' cache:
        cove's cache rows are dropped once their image is gone), so the next build is
        cold."""
        untimed(engine, ["rmi", "-f", TAG], "rmi", CALL_TIMEOUT_S, check=False)
        left = self.images(engine) - self.baseline[engine.name]
        if left:
            untimed(engine, ["rmi", "-f", *sorted(left)], "rmi (intermediate images)",
                    CALL_TIMEOUT_S, check=False)  # fmt: skip
        left = self.images(engine) - self.baseline[engine.name]
        if left:
            raise BenchError(f"{engine.name}: {len(left)} images left after removing the "
                             "build's: the next build would not be cold")  # fmt: skip

    def turn(self, engine: Engine, ctx: Path) -> tuple[int, int]:
        """A cold build and a no-change rebuild, both checked: (cold ns, rebuild ns)."""
        self.forget(engine)
        cold_ns, cold_id, cold_out = self.build(engine, ctx, "cold")
        if RUN_MARKER not in cold_out:
            raise BenchError(f"{engine.name}: the cold build did not run the RUN step")
        if "Using cache" in cold_out:
            raise BenchError(f"{engine.name}: the cold build used its cache")
        again_ns, again_id, again_out = self.build(engine, ctx, "rebuild")
        if RUN_MARKER in again_out:
            raise BenchError(f"{engine.name}: the no-change rebuild ran the RUN step again")
        if again_id != cold_id:
            raise BenchError(f"{engine.name}: the rebuild gave {again_id[:19]}, the cold build "
                             f"{cold_id[:19]}")  # fmt: skip
        return cold_ns, again_ns

    def check_image(self, engine: Engine) -> None:
        flags = ["--network", "none"] if engine.name == "podman" else []
        out = untimed(engine, ["run", "--rm", *flags, TAG], "run the built image",
                      CALL_TIMEOUT_S)  # fmt: skip
        if out.stdout != EXPECTED_OUTPUT:
            raise BenchError(f"{engine.name}: the built image printed {out.stdout!r}, "
                             f"not {EXPECTED_OUTPUT!r}")  # fmt: skip


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Build benchmark: cove build against podman.")
    parser.add_argument("--runs", type=int, help=f"rounds after the warm-up (default "
                                                  f"{DEFAULT_RUNS})")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_RUNS} rounds")
    parser.add_argument(
        "--cove", metavar="PATH", help="cove launcher (default /usr/local/bin/cove)"
    )
    parser.add_argument("--busybox", default="/bin/busybox", help="static busybox binary")
    parser.add_argument("--json", metavar="FILE", help="write all figures to FILE")
    args = parser.parse_args(argv)
    if args.runs is None:
        args.runs = QUICK_RUNS if args.quick else DEFAULT_RUNS
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("build_bench: must run as root", file=sys.stderr)
        return 1
    cove_path = find_cove(args.cove)
    if cove_path is None:
        print("build_bench: no cove launcher found (--cove PATH)", file=sys.stderr)
        return 1
    if not os.access(args.busybox, os.X_OK):
        print(f"build_bench: no busybox at {args.busybox}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    workdir = Path(tempfile.mkdtemp(prefix="cove-bb-"))
    spawner = Spawner(workdir)
    engines: list[Engine] = []
    report: dict[str, Any] = {"problems": []}
    status = 0
    try:
        status = bench(args, cove_path, workdir, spawner, engines, report)
    except KeyboardInterrupt as exc:
        why = str(exc) or "Ctrl-C"
        print(f"\nbuild_bench: interrupted ({why}); cleaning up", file=sys.stderr)
        status = 130
    except BenchError as exc:
        print(f"\nbuild_bench: {exc}", file=sys.stderr)
        status = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        spawner.close()
        left = teardown(engines, workdir)
        print("\nclean-up: " + ("everything removed" if not left else "problems:"))
        for text in left:
            print(f"  {text}")
        report["problems"].extend(left)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
            print(f"wrote {args.json}")
    return status


def bench(
    args: argparse.Namespace,
    cove_path: str,
    workdir: Path,
    spawner: Spawner,
    engines: list[Engine],
    report: dict[str, Any],
) -> int:
    problems: list[str] = report["problems"]
    subreaper = become_subreaper()
    tarball = build_image_tar(workdir, Path(args.busybox))
    cove, podman, podman_note = setup(workdir, cove_path, tarball)
    engines.append(cove)
    if podman is not None:
        engines.append(podman)
    contexts = {e.name: make_context(workdir, e) for e in engines}
    builds = Builds(spawner, workdir, problems)
    for engine in engines:
        builds.baseline[engine.name] = builds.images(engine)
    report["config"] = {
        "runs": args.runs,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "subreaper": subreaper,
        "cove": cove_path,
        "cove_version": cove.version,
        "podman": podman.version if podman else None,
        "podman_note": podman_note,
        "dockerfile": DOCKERFILE.format(image="IMAGE", marker=RUN_MARKER),
        "timer": "time.perf_counter_ns around posix_spawn + waitpid",
    }
    podman_line = podman_note or f"{podman.version if podman else ''}, runc, cgroupfs, own --root"
    print(
        f"build benchmark: kernel {platform.release()}, {os.cpu_count()} CPUs, workdir {workdir}\n"
        f"  cove: {cove_path} --root {cove.dirs[0]} ({cove.version})\n"
        f"  podman: {podman_line}\n"
        f"  Dockerfile: FROM busybox, COPY {FILES} files, RUN, ENV, CMD; --network none\n"
        f"  rounds: 1 warm-up + {args.runs}, engines taking turns"
    )
    samples: dict[str, dict[str, list[int]]] = {
        e.name: {"cold": [], "rebuild": []} for e in engines
    }
    errors: dict[str, str] = {}
    for i in range(args.runs + 1):
        order = engines if i % 2 == 0 else list(reversed(engines))
        for engine in order:
            if engine.name in errors:
                continue
            try:
                cold_ns, again_ns = builds.turn(engine, contexts[engine.name])
                if i == 0:
                    builds.check_image(engine)
            except BenchError as exc:
                errors[engine.name] = str(exc)
                problems.append(str(exc))
                print(f"  problem: {exc}")
                continue
            if i > 0:
                samples[engine.name]["cold"].append(cold_ns)
                samples[engine.name]["rebuild"].append(again_ns)
        progress(f"round {i + 1}/{args.runs + 1}", done=i == args.runs)
    if "cove" in errors:
        raise BenchError(f"cove failed: {errors['cove']}")

    st = {name: {k: stats(v) for k, v in by.items()} for name, by in samples.items()}
    results: dict[str, Any] = {}
    for scenario, title in (("cold", "cold build"), ("rebuild", "no-change rebuild")):
        mine = st["cove"][scenario]
        pod = st.get("podman", {}).get(scenario)
        rows: list[tuple[str, dict[str, float] | None, str | None]] = [
            (f"cove build ({scenario})", mine, None)
        ]
        rows.append((f"podman build ({scenario})", pod, errors.get("podman", podman_note)))
        stats_rows(f"== {title} ({args.runs} runs, wall time of the CLI)", rows)
        cove_ms = mine["median"] if mine else None
        pod_ms = pod["median"] if pod else None
        limit = TARGET_COLD if scenario == "cold" else TARGET_REBUILD
        value, v = figures_table(f"{title} median (ms)", cove_ms, pod_ms, ".1f",
                                 f"cove <= {limit}x podman", limit)  # fmt: skip
        results[scenario] = {"ratio": value, "verdict": v, "target": f"cove <= {limit}x podman",
                             "cove_ms": cove_ms, "podman_ms": pod_ms}  # fmt: skip
        if scenario == "rebuild":
            under = cove_ms is not None and cove_ms < TARGET_REBUILD_MS
            results["rebuild_absolute"] = {
                "cove_ms": cove_ms,
                "target": f"cove < {TARGET_REBUILD_MS:.0f} ms",
                "verdict": "n/a" if cove_ms is None else ("met" if under else "NOT met"),
            }
    report["stats_ms"] = st
    report["samples_ms"] = {n: {k: [ns / 1e6 for ns in v] for k, v in by.items()}
                            for n, by in samples.items()}  # fmt: skip
    report["results"] = results
    report["errors"] = errors

    print("\n== targets")
    for key, label in (("cold", "cold build"), ("rebuild", "no-change rebuild"),
                       ("rebuild_absolute", "no-change rebuild time")):  # fmt: skip
        res = results[key]
        if key == "rebuild_absolute":
            shown = f"{res['cove_ms']:.0f} ms" if res["cove_ms"] is not None else "n/a"
        else:
            shown = f"{res['ratio']:.2f}x" if res["ratio"] is not None else "n/a"
        print(f"  {label:<26}{res['target']:<30}{shown:>9}  {res['verdict']}")
    if problems:
        print("\nproblems seen:")
        for text in problems:
            print(f"  {text}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Interrupted:
        sys.exit(130)
