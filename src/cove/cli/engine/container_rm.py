"""cove rm [-f] CONTAINER..."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.engine.containers import ContainerService
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.add_argument("-f", "--force", action="store_true", help="kill it first if it runs")


def run(args: argparse.Namespace, context: Context) -> int:
    service = ContainerService(context.root)
    status = 0
    for term in args.containers:
        try:
            service.remove(term, force=args.force)
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = REQUEST_FAILED
            continue
        sys.stdout.write(f"{term}\n")
    return status
