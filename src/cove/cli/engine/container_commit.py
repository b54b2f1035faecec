"""cove commit [-a AUTHOR] [-c CHANGE]... [-m MESSAGE] [-p=false] CONTAINER [REPOSITORY[:TAG]]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", ""):
        return True
    if value in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean '{text}'")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    parser.add_argument("-a", "--author", default="", help='e.g. "Jane <jane@example.com>"')
    parser.add_argument("-c", "--change", action="append", default=[],
                        help="a Dockerfile instruction (CMD, ENV, WORKDIR...)")  # fmt: skip
    parser.add_argument("-m", "--message", default="", help="a comment for the history")
    parser.add_argument("-p", "--pause", type=_bool, nargs="?", const=True, default=True,
                        help="pause the container while committing (default true)")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.container_commit import commit

    image_id = commit(
        context.root, args.container, args.reference, changes=args.change,
        message=args.message, author=args.author, pause=args.pause,
    )  # fmt: skip
    sys.stdout.write(f"{image_id}\n")
    return 0
