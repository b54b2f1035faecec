"""Command-line scaffolding shared by the engine benchmarks (`engine_bench.py`,
`network_bench.py`, `api_bench.py`): the size options, the checks before a run, signals
that unwind like Ctrl-C, running the scenarios, and the clean-up and JSON report that
follow every run, interrupted or not.

Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchlib import BenchError

COVE_CANDIDATES = (Path("/usr/local/bin/cove"), Path("/opt/cove/venv/bin/cove"))


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGHUP: unwound like Ctrl-C, so the clean-up runs."""


def on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(f"signal {signum}")


def install_signals() -> None:
    """Ctrl-C raises KeyboardInterrupt even when started in the background by a shell
    that set SIGINT to ignored; SIGTERM and SIGHUP unwind the same way."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)


def ignore_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)


# --------------------------------------------------------------------------- options


def add_quick(parser: argparse.ArgumentParser, quick: Mapping[str, float]) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: " + ", ".join(f"{k} {v:g}" for k, v in quick.items()),
    )


def add_tools(parser: argparse.ArgumentParser) -> None:
    """--cove, --busybox and --json."""
    parser.add_argument(
        "--cove", metavar="PATH", help="cove launcher (default /usr/local/bin/cove)"
    )
    parser.add_argument("--busybox", default="/bin/busybox", help="static busybox binary")
    parser.add_argument("--json", metavar="FILE", help="write all figures to FILE")


def apply_sizes(
    args: argparse.Namespace, quick: Mapping[str, float], defaults: Mapping[str, float]
) -> None:
    """Sizes not given on the command line: ``quick`` with --quick, else ``defaults``."""
    base = quick if args.quick else defaults
    for key, value in base.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def find_cove(explicit: str | None) -> str | None:
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for path in COVE_CANDIDATES:
        if os.access(path, os.X_OK):
            return str(path)
    return shutil.which("cove")


def is_root(prog: str) -> bool:
    if os.geteuid() != 0:
        print(f"{prog}: must run as root", file=sys.stderr)
        return False
    return True


def has_busybox(prog: str, path: str) -> bool:
    if not os.access(path, os.X_OK):
        print(f"{prog}: no busybox at {path}", file=sys.stderr)
        return False
    return True


def preflight(prog: str, args: argparse.Namespace) -> str | None:
    """Root, a cove launcher (returned) and a busybox; None after saying what is missing."""
    if not is_root(prog):
        return None
    cove_path = find_cove(args.cove)
    if cove_path is None:
        print(f"{prog}: no cove launcher found (--cove PATH)", file=sys.stderr)
        return None
    if not has_busybox(prog, args.busybox):
        return None
    return cove_path


# --------------------------------------------------------------------------- running


def run_scenarios(
    names: Sequence[str],
    run: Callable[[str], dict[str, Any]],
    results: dict[str, Any],
    problem: Callable[[str], None],
    on_failure: Callable[[], object] | None = None,
) -> int:
    """``results[name] = run(name)`` for each scenario; a BenchError is a problem, the
    scenario's result an error and ``on_failure`` is called.  Returns how many failed."""
    failed = 0
    for scenario in names:
        try:
            results[scenario] = run(scenario)
        except BenchError as exc:
            failed += 1
            problem(f"scenario {scenario} failed: {exc}")
            results[scenario] = {"error": str(exc)}
            if on_failure is not None:
                on_failure()
    return failed


def run_and_clean_up(
    prog: str,
    body: Callable[[], int],
    clean_up: Callable[[], list[str]],
    problems: list[str],
    report: dict[str, Any],
    json_path: str | None,
    before_json: Callable[[], None] | None = None,
) -> int:
    """``body()`` (its exit status), then, whatever happened (Ctrl-C, SIGTERM, SIGHUP
    included), ``clean_up()`` with the signals ignored: its problems are printed and
    added to ``problems``; ``before_json()``, then the report written to ``json_path``."""
    status = 0
    try:
        status = body()
    except KeyboardInterrupt as exc:
        why = str(exc) or "Ctrl-C"
        print(f"\n{prog}: interrupted ({why}); cleaning up", file=sys.stderr)
        status = 130
    except BenchError as exc:
        print(f"\n{prog}: {exc}", file=sys.stderr)
        status = 1
    finally:
        ignore_signals()
        left = clean_up()
        print("\nclean-up: " + ("everything removed" if not left else "problems:"))
        for text in left:
            print(f"  {text}")
        problems.extend(left)
        if before_json is not None:
            before_json()
        if json_path:
            Path(json_path).write_text(json.dumps(report, indent=2, default=str) + "\n")
            print(f"wrote {json_path}")
    return status
