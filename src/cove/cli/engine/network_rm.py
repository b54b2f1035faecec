"""cove network rm [-f] NETWORK..."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.errors import CoveError, NoSuchNetwork


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NETWORK")
    parser.add_argument("-f", "--force", action="store_true",
                        help="no error for a network that does not exist")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.network import NetworkService

    status = 0
    with NetworkService(context.root) as service:
        for term in args.names:
            try:
                service.remove(term)
            except NoSuchNetwork:
                if not args.force:
                    sys.stderr.write(f"Error: {NoSuchNetwork(term)}\n")
                    status = REQUEST_FAILED
                continue
            except CoveError as exc:
                sys.stderr.write(f"Error: {exc}\n")
                status = REQUEST_FAILED
                continue
            sys.stdout.write(f"{term}\n")
    return status
