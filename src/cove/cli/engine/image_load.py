"""cove load [-i FILE] [-q]

Loads a docker-archive or an OCI archive (plain, or compressed with gzip, zstd, bzip2
or xz) from FILE or stdin, and prints what `docker load` prints: `Loaded image: NAME`
for each name, `Loaded image ID: sha256:...` for an image without one.
"""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO

from cove.cli.engine import Context
from cove.errors import InvalidArgument
from cove.image.archive import load
from cove.image.store import ImageStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", metavar="FILE", help="read from FILE, not stdin")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="suppress progress output (cove prints none)")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    stream: BinaryIO
    if args.input in (None, "-"):
        if sys.stdin.isatty():
            raise InvalidArgument("requested load from stdin, but stdin is empty")
        stream = sys.stdin.buffer
    else:
        try:
            stream = open(args.input, "rb")  # closed below
        except OSError as exc:
            raise InvalidArgument(f"cannot read {args.input}: {exc.strerror}") from None
    try:
        with ImageStore(context.images_dir) as store:
            loaded = load(store, stream)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    for image in loaded:
        for line in image.lines():
            sys.stdout.write(line + "\n")
    return 0
