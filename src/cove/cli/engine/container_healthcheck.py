"""cove container healthcheck CONTAINER: run the container's healthcheck once and record it
(its monitor runs this every interval; see cove.engine.healthcheck). Prints State.Health;
exit status 0 when healthy, 1 otherwise (nothing to check: 1 with a line saying why)."""

from __future__ import annotations

import argparse
import json
import sys

from cove.cli.engine import REQUEST_FAILED, Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")


def _end_on_term(signum: int, _frame: object) -> None:
    """The monitor ends a check that still runs when the container exits (SIGTERM): unwind,
    so the runtime's exec is killed and its scratch files removed on the way out."""
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace, context: Context) -> int:
    import signal

    from cove.engine.healthcheck import HEALTHY, run_check

    signal.signal(signal.SIGTERM, _end_on_term)
    health = run_check(context.root, args.container)
    if health is None:
        sys.stderr.write(
            f"Error: container {args.container} has no healthcheck or is not running\n"
        )
        return REQUEST_FAILED
    sys.stdout.write(json.dumps(health) + "\n")
    return 0 if health["Status"] == HEALTHY else REQUEST_FAILED
