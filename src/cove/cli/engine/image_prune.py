"""cove image prune [-a] [-f] [--filter until=T|label=K[=V]|label!=K[=V]]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import human_size


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true", help="every unused image")
    parser.add_argument("-f", "--force", action="store_true", help="do not ask")
    parser.add_argument("--filter", action="append", default=[],
                        help="until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.cli.engine import prune_filters

    what = "all images without at least one container" if args.all else "dangling images"
    if not prune_filters.confirmed(args.force, f"WARNING! This will remove {what}.",
                                   "Are you sure?"):  # fmt: skip
        return 0
    from cove.engine.image_filters import prune

    wanted, until = prune_filters.parse(args.filter)
    if args.all:
        wanted["dangling"] = ["false"]
    removed, reclaimed = prune(context.root, wanted, until)
    if removed:
        sys.stdout.write("Deleted Images:\n")
        for item in removed:
            for name in item.untagged:
                sys.stdout.write(f"untagged: {name}\n")
            for digest in item.deleted:
                sys.stdout.write(f"deleted: {digest}\n")
        sys.stdout.write("\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0
