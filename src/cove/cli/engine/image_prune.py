"""cove image prune [-a] [-f]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import human_size
from cove.engine.images import ImageService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true", help="every unused image")
    parser.add_argument("-f", "--force", action="store_true", help="do not ask")


def run(args: argparse.Namespace, context: Context) -> int:
    if not args.force and sys.stdin.isatty():
        what = "all images without at least one container" if args.all else "dangling images"
        sys.stdout.write(f"WARNING! This will remove {what}.\nAre you sure? [y/N] ")
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    removed, reclaimed = ImageService(context.root).prune(args.all)
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
