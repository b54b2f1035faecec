"""cove rmi / cove image rm [-f] IMAGE..."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.engine.images import ImageService
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-f", "--force", action="store_true", help="remove all names")
    parser.add_argument("--no-prune", action="store_true",
                        help="accepted: cove keeps no untagged parents to prune")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    service = ImageService(context.root)
    status = 0
    for term in args.images:
        try:
            removed = service.remove(term, force=args.force)
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = REQUEST_FAILED
            continue
        for name in removed.untagged:
            sys.stdout.write(f"Untagged: {name}\n")
        for digest in removed.deleted:
            sys.stdout.write(f"Deleted: {digest}\n")
    return status
