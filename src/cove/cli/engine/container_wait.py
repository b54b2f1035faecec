"""cove wait CONTAINER...: block until each stops, print its exit code."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService

    service = ContainerService(context.root)
    status = 0
    for term in args.containers:
        try:
            code = service.wait(term)
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = REQUEST_FAILED
            continue
        sys.stdout.write(f"{code}\n")
        sys.stdout.flush()
    return status
