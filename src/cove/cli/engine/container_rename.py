"""cove rename CONTAINER NEW_NAME"""

from __future__ import annotations

import argparse

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("new_name", metavar="NEW_NAME")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService

    ContainerService(context.root).rename(args.container, args.new_name)
    return 0
