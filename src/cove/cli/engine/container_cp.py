"""cove cp [-a] [-L] [-q] CONTAINER:SRC_PATH DEST_PATH|-  and  cove cp [-a] [-L] SRC_PATH|-
CONTAINER:DEST_PATH"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC")
    parser.add_argument("destination", metavar="DEST")
    parser.add_argument("-a", "--archive", action="store_true",
                        help="keep uid and gid (else: the container's root, or you)")  # fmt: skip
    parser.add_argument("-L", "--follow-link", action="store_true",
                        help="copy what SRC links to, not the link")  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.cli.engine.formatting import human_size
    from cove.engine.container_cp import copy, parse_location

    source = parse_location(args.source)
    destination = parse_location(args.destination)
    if destination.is_stream and sys.stdout.isatty():
        from cove.errors import InvalidArgument

        raise InvalidArgument("cannot write a tar stream to a terminal (redirect stdout)")
    copied = copy(
        context.root, source, destination, archive=args.archive, follow_link=args.follow_link,
        stdin=sys.stdin.buffer, stdout=sys.stdout.buffer,
    )  # fmt: skip
    if destination.is_stream:
        sys.stdout.buffer.flush()
    elif not args.quiet:
        sys.stderr.write(f"Successfully copied {human_size(copied.bytes)} to {args.destination}\n")
    return 0
