"""cove pause CONTAINER...  and  cove unpause CONTAINER..."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace, context: Context, unpause: bool = False) -> int:
    from cove.engine.containers import ContainerService

    service = ContainerService(context.root)
    status = 0
    for term in args.containers:
        try:
            if unpause:
                service.unpause(term)
            else:
                service.pause(term)
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = REQUEST_FAILED
            continue
        sys.stdout.write(f"{term}\n")
    return status
