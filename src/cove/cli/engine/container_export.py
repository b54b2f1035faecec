"""cove export [-o FILE] CONTAINER: the container's filesystem as a tar."""

from __future__ import annotations

import argparse
import os
import sys

from cove.cli.engine import Context
from cove.errors import InvalidArgument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("-o", "--output", default="", help="write to this file, not stdout")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.container_export import export

    if not args.output:
        if sys.stdout.isatty():
            raise InvalidArgument(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect"
            )
        export(context.root, args.container, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    partial = f"{args.output}.partial-{os.getpid()}"
    try:
        with open(partial, "wb") as out:
            export(context.root, args.container, out)
        os.replace(partial, args.output)
    except OSError as exc:
        raise InvalidArgument(f"cannot write {args.output}: {exc.strerror}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return 0
