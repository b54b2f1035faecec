"""cove container cleanup ID: the monitor's exit command (not for people): record the exit,
delete the runtime state, unmount, apply --rm."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="ID")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService

    ContainerService(context.root).cleanup(args.container)
    return 0
