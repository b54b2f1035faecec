"""cove volume rm [-f] VOLUME..."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="VOLUME")
    parser.add_argument("-f", "--force", action="store_true",
                        help="no error for a volume that does not exist")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.volumes import VolumeService

    service = VolumeService(context.root)
    status = 0
    for name in args.names:
        try:
            service.remove(name, force=args.force)
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = REQUEST_FAILED
        else:
            sys.stdout.write(f"{name}\n")
    return status
