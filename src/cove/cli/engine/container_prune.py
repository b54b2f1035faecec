"""cove container prune [-f] [--filter until=T|label=K[=V]|label!=K[=V]]: remove the stopped
containers."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="do not ask")
    parser.add_argument("--filter", action="append", default=[],
                        help="until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE]")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.cli.engine import prune_filters
    from cove.cli.engine.formatting import human_size
    from cove.engine.container_prune import check_prune_filters, prune_containers

    wanted, until = prune_filters.parse(args.filter)
    check_prune_filters(wanted)
    if not prune_filters.confirmed(args.force, "WARNING! This will remove all stopped containers."):
        return 0
    removed, reclaimed = prune_containers(context.root, wanted, until)
    if removed:
        sys.stdout.write("Deleted Containers:\n" + "".join(f"{i}\n" for i in removed) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0
