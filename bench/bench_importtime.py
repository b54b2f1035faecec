"""The Python section of `runtime_bench.py`: interpreter start-up, the import of the
runtime's hot path, and a `-X importtime` profile of it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

from bench_runtime_setup import HOT_IMPORT, HOT_MODULE, REPO_ROOT, Series, Spawner, measure
from benchlib import BenchError, first_line, percentile, summarize

# --------------------------------------------------------------------------- import time


def parse_importtime(stderr: str) -> list[tuple[str, int, int, int]]:
    """(module, self us, cumulative us, nesting level) for each ``-X importtime`` line."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        name_field = parts[2][1:]
        level = (len(name_field) - len(name_field.lstrip(" "))) // 2
        rows.append((name_field.strip(), int(parts[0]), int(parts[1]), level))
    return rows


def hot_path_env(python: str, spawner: Spawner) -> tuple[dict[str, str] | None, str]:
    """Environment in which ``import cove.cli.runtime`` gives a real module."""
    check = f"import {HOT_MODULE} as m; assert m.__file__, 'namespace package only'"
    fallback = dict(spawner.env)
    src = str(REPO_ROOT / "src")
    fallback["PYTHONPATH"] = os.pathsep.join(p for p in (src, fallback.get("PYTHONPATH")) if p)
    message = ""
    for env, note in ((spawner.env, "venv"), (fallback, f"PYTHONPATH={src}")):
        proc = subprocess.run([python, "-c", check], capture_output=True, text=True, env=env)
        if proc.returncode == 0:
            return env, note
        lines = proc.stderr.strip().splitlines()
        message = lines[-1] if lines else f"exit {proc.returncode}"
    return None, message


def profile_imports(python: str, env: dict[str, str], runs: int, warmup: int) -> dict[str, Any]:
    """Median ``-X importtime`` figures of the hot-path import, startup imports excluded."""
    base = subprocess.run(
        [python, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, env=env
    )
    startup = {row[0] for row in parse_importtime(base.stderr)}
    totals: list[int] = []
    per_module: dict[str, tuple[list[int], list[int]]] = {}
    for i in range(warmup + runs):
        proc = subprocess.run(
            [python, "-X", "importtime", "-c", HOT_IMPORT],
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            raise BenchError(f"import failed: {proc.stderr.strip().splitlines()[-1:]}")
        if i < warmup:
            continue
        rows = [row for row in parse_importtime(proc.stderr) if row[0] not in startup]
        totals.append(sum(cum for _, _, cum, level in rows if level == 0))
        for name, self_us, cum_us, _ in rows:
            entry = per_module.setdefault(name, ([], []))
            entry[0].append(self_us)
            entry[1].append(cum_us)
    modules: list[dict[str, Any]] = [
        {"module": name, "self_us": percentile(s, 50), "cumulative_us": percentile(c, 50)}
        for name, (s, c) in per_module.items()
    ]
    modules.sort(key=lambda m: m["self_us"], reverse=True)
    return {
        "total_cumulative_us_median": percentile(totals, 50),
        "total_cumulative_us_min": min(totals),
        "module_count": len(modules),
        "startup_modules_excluded": len(startup),
        "modules": modules,
    }


def python_section(python: str, spawner: Spawner, runs: int, warmup: int) -> dict[str, Any]:
    print(f"\n== Python start-up and import of {HOT_MODULE} ({python})")
    result: dict[str, Any] = {"python": python, "version": first_line([python, "--version"])}
    env, note = hot_path_env(python, spawner)
    result["hot_path_importable"] = env is not None
    result["hot_path_note"] = note
    probes: list[tuple[str, list[str], dict[str, str] | None]] = [
        ("python -c pass", [python, "-c", "pass"], None),
        ("python -I -S -c pass", [python, "-I", "-S", "-c", "pass"], None),
    ]
    if env is not None:
        probes.append(("python -c '<run path imports>'", [python, "-c", HOT_IMPORT], env))

    def probe(argv: list[str], penv: dict[str, str] | None) -> Callable[[int], dict[str, int]]:
        def once(_: int) -> dict[str, int]:
            elapsed, code = spawner.timed(argv, penv)
            if code != 0:
                raise BenchError(f"exited {code}: {spawner.last_stderr()}")
            return {"total": elapsed}

        return once

    series = [Series(label, probe(argv, penv)) for label, argv, penv in probes]
    measure(series, runs, warmup, "python")
    result["wall"] = {
        s.name: {"error": s.error} if s.error else summarize(s.totals) for s in series
    }
    print(f"{'command':<44}{'median ms':>10}{'p90 ms':>9}{'min ms':>9}")
    for s in series:
        if s.error:
            print(f"{s.name:<44}failed: {s.error}")
            continue
        st = summarize(s.totals)
        print(f"{s.name:<44}{st['median']:>10.2f}{st['p90']:>9.2f}{st['min']:>9.2f}")

    if env is None:
        print(f"{HOT_MODULE}: not importable ({note}); import-time profile skipped")
        return result
    if note != "venv":
        print(f"note: {HOT_MODULE} is not installed in the venv; imported with {note}")
    try:
        prof = profile_imports(python, env, runs, warmup)
    except BenchError as exc:
        print(f"import-time profile failed: {exc}")
        result["importtime_error"] = str(exc)
        return result
    result["importtime"] = prof
    print(
        f"\n-X importtime, {HOT_IMPORT}: total cumulative "
        f"{prof['total_cumulative_us_median']:.0f} us median "
        f"(min {prof['total_cumulative_us_min']}) over {runs} runs, "
        f"{prof['module_count']} modules beyond the {prof['startup_modules_excluded']} "
        "imported at interpreter start-up"
    )
    print(f"top 10 modules by self time:\n{'module':<44}{'self us':>10}{'cumul. us':>11}")
    for mod in prof["modules"][:10]:
        print(f"{mod['module']:<44}{mod['self_us']:>10.0f}{mod['cumulative_us']:>11.0f}")
    return result
