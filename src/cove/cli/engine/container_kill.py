"""cove kill [-s SIGNAL] CONTAINER..."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.add_argument("-s", "--signal", default="SIGKILL", help="signal to send (SIGKILL)")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService

    service = ContainerService(context.root)
    status = 0
    for term in args.containers:
        try:
            service.kill(term, args.signal)
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = REQUEST_FAILED
            continue
        sys.stdout.write(f"{term}\n")
    return status
