"""cove container prune [-f]: remove every stopped container."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="do not ask (cove never asks)")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService

    removed = ContainerService(context.root).prune()
    if removed:
        sys.stdout.write("Deleted Containers:\n" + "".join(f"{i}\n" for i in removed) + "\n")
    sys.stdout.write(f"Total reclaimed containers: {len(removed)}\n")
    return 0
