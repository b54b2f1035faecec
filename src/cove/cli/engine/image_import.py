"""cove import [--change INSTRUCTION]... [--message M] FILE|- [REPOSITORY[:TAG]]"""

from __future__ import annotations

import argparse
import os
import sys

from cove.cli.engine import Context
from cove.engine.image_import import import_tarball
from cove.errors import InvalidArgument
from cove.image.store import ImageStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE|-", help="a root filesystem tarball, - for stdin")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")
    parser.add_argument("-c", "--change", action="append", default=[],
                        help="a Dockerfile instruction (CMD, ENV, WORKDIR...)")  # fmt: skip
    parser.add_argument("-m", "--message", default="", help="a comment for the history")


def run(args: argparse.Namespace, context: Context) -> int:
    if args.file == "-":
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(args.file, "rb")
        except OSError as exc:
            raise InvalidArgument(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        with ImageStore(context.images_dir) as store:
            record = import_tarball(
                store, stream, args.reference, tuple(args.change), args.message,
                source=args.file if args.file == "-" else os.path.abspath(args.file),
            )  # fmt: skip
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    sys.stdout.write(f"{record.id}\n")
    return 0
