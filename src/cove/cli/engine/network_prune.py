"""cove network prune [-f]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="do not ask")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.network import NetworkService

    if not args.force and sys.stdin.isatty():
        sys.stdout.write("WARNING! This will remove all custom networks not used by at least "
                         "one container.\nAre you sure you want to continue? [y/N] ")  # fmt: skip
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    with NetworkService(context.root) as service:
        removed = service.prune()
    if removed:
        sys.stdout.write("Deleted Networks:\n" + "".join(f"{n.name}\n" for n in removed))
    return 0
