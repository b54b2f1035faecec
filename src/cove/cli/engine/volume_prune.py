"""cove volume prune [-a] [-f] [--filter label=...]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import human_size
from cove.cli.engine.volume import filters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true",
                        help="named volumes too, not only anonymous ones")  # fmt: skip
    parser.add_argument("-f", "--force", action="store_true", help="do not ask")
    parser.add_argument("--filter", action="append", default=[],
                        help="label=KEY[=VALUE], label!=KEY[=VALUE]")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.volumes import VolumeService

    wanted = filters(args.filter)
    from cove.cli.engine.prune_filters import confirmed

    what = "all local volumes" if args.all else "anonymous local volumes"
    if not confirmed(args.force, f"WARNING! This will remove {what} not used by at least one "
                     "container."):  # fmt: skip
        return 0
    removed, reclaimed = VolumeService(context.root).prune(args.all, wanted)
    if removed:
        sys.stdout.write("Deleted Volumes:\n" + "".join(f"{name}\n" for name in removed) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0
