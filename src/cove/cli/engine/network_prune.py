"""cove network prune [-f] [--filter until=T|label=K[=V]|label!=K[=V]]"""

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
    from cove.engine.network import NetworkService
    from cove.engine.network.network_filters import prune_networks

    wanted, until = prune_filters.parse(args.filter)

    if not prune_filters.confirmed(args.force, "WARNING! This will remove all custom networks "
                                   "not used by at least one container."):  # fmt: skip
        return 0
    with NetworkService(context.root) as service:
        removed = prune_networks(service, wanted, until)
    if removed:
        sys.stdout.write("Deleted Networks:\n" + "".join(f"{name}\n" for name in removed))
    return 0
