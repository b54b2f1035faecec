"""cove image bootstrap --from-host [--copy] [--host-root DIR] NAME
cove image bootstrap --debootstrap SUITE [--mirror URL] [--include PKG,...] NAME"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.parser import UsageError
from cove.engine.images import ImageService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME[:TAG]")
    parser.add_argument(
        "--from-host",
        action="store_true",
        help="the host's /usr, /etc and /var/lib (the seed's chroot)",
    )
    parser.add_argument(
        "--copy", action="store_true", help="copy the host's folders into a real, portable layer"
    )
    parser.add_argument("--host-root", default="/", help="take the host's folders from here")
    parser.add_argument(
        "--debootstrap",
        metavar="SUITE",
        help="a Debian image of this suite (bookworm...), made by debootstrap",
    )
    parser.add_argument("--mirror", help="the Debian mirror (default: the one apt uses)")
    parser.add_argument("--include", default="", help="extra packages, comma separated")


def run(args: argparse.Namespace, context: Context) -> int:
    service = ImageService(context.root)
    if args.from_host == bool(args.debootstrap):
        raise UsageError("cove image bootstrap: give one of --from-host or --debootstrap SUITE")
    if args.from_host:
        image_id = service.bootstrap_from_host(args.name, args.host_root, args.copy)
    else:
        include = tuple(p for p in args.include.split(",") if p)
        image_id = service.bootstrap_debian(args.name, args.debootstrap, args.mirror, include)
    sys.stdout.write(image_id + "\n")
    return 0
