"""cove builder prune [-a] [-f] [--filter until=T] [--keep-storage SIZE]: remove the
folders of RUN --mount=type=cache that no build uses; with -a the step cache too (the
next build runs every step). See cove.engine.build_prune."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import human_size
from cove.cli.engine.parser import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true",
                        help="the step cache and its intermediate images too")  # fmt: skip
    parser.add_argument("-f", "--force", action="store_true", help="do not ask")
    parser.add_argument("--filter", action="append", default=[],
                        help="until=TIME: only what was last used before TIME")  # fmt: skip
    parser.add_argument("--keep-storage", default="0",
                        help="keep this much (such as 1g), the most recently used")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.cli.engine import prune_filters
    from cove.engine.build_prune import prune_build_cache
    from cove.engine.create_options import parse_bytes

    wanted, until = prune_filters.parse(args.filter)
    if wanted:
        raise UsageError(f"invalid filter {sorted(wanted)[0]!r}: builder prune takes until=TIME")
    keep = parse_bytes(args.keep_storage, "--keep-storage")
    what = "all build cache" if args.all else "the build cache no build uses"
    if not prune_filters.confirmed(args.force, f"WARNING! This will remove {what}."):
        return 0
    pruned = prune_build_cache(context.root, all_cache=args.all, until=until, keep_storage=keep)
    if pruned.deleted:
        sys.stdout.write("Deleted build cache objects:\n")
        sys.stdout.write("".join(f"{name}\n" for name in pruned.deleted) + "\n")
    sys.stdout.write(f"Total reclaimed space: {human_size(pruned.reclaimed)}\n")
    return 0
