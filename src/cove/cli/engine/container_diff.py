"""cove diff CONTAINER: the files a container added (A), changed (C) or deleted (D)."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.container_diff import container_changes
    from cove.engine.containers import ContainerService

    record = ContainerService(context.root).get(args.container)
    for kind, path in container_changes(context.root, record.id, record.bundle):
        sys.stdout.write(f"{kind} {path}\n")
    return 0
