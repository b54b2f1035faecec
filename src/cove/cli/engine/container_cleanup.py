"""cove container cleanup ID: the monitor's exit command (not for people): record the exit,
delete the runtime state, unmount, apply the restart policy or --rm. With --restart-at it is
the waiter of a restart (cove.engine.container_autorestart)."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="ID")
    parser.add_argument(
        "--restart-at", type=int, default=None,
        help="wait until this CLOCK_MONOTONIC time (ns), then restart the container if it "
        "still waits for that (a restart policy's waiter)",
    )  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService

    ContainerService(context.root).cleanup(args.container, restart_at=args.restart_at)
    return 0
