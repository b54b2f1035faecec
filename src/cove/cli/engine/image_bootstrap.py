"""cove image bootstrap --from-host [--copy] [--host-root DIR] NAME"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.parser import UsageError
from cove.engine.images import ImageService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME[:TAG]")
    parser.add_argument("--from-host", action="store_true",
                        help="the host's /usr, /etc and /var/lib (the seed's chroot)")  # fmt: skip
    parser.add_argument("--copy", action="store_true",
                        help="copy the host's folders into a real, portable layer")  # fmt: skip
    parser.add_argument("--host-root", default="/", help="take the host's folders from here")


def run(args: argparse.Namespace, context: Context) -> int:
    if not args.from_host:
        raise UsageError("cove image bootstrap: give --from-host")
    image_id = ImageService(context.root).bootstrap_from_host(args.name, args.host_root, args.copy)
    sys.stdout.write(image_id + "\n")
    return 0
