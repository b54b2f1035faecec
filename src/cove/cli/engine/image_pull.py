"""cove pull [--platform OS/ARCH[/VARIANT]] [--tls-verify=false] [-q] NAME[:TAG|@DIGEST]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.errors import InvalidArgument
from cove.image.reference import parse_reference
from cove.image.registry.client import RegistryClient
from cove.image.registry.progress import ProgressPrinter, no_progress
from cove.image.registry.pull import pull, start_resolve


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_tls_verify(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tls-verify", type=parse_bool, nargs="?", const=True, default=None, metavar="BOOL",
        help="check the registry's TLS certificate (false: also allow plain HTTP); "
        "loopback registries use plain HTTP unless this is true",
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")
    parser.add_argument("--platform", default=None, help="os/arch[/variant] (default: this host)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image name")
    parser.add_argument("-a", "--all-tags", action="store_true", help=argparse.SUPPRESS)
    add_tls_verify(parser)


def run(args: argparse.Namespace, context: Context) -> int:
    if args.all_tags:
        raise InvalidArgument("--all-tags is not supported")
    progress = no_progress if args.quiet else ProgressPrinter(sys.stdout)
    ref = parse_reference(args.reference)
    with RegistryClient(ref.registry, tls_verify=args.tls_verify) as client:
        # The manifests come from the registry while the store is imported and opened.
        resolved = start_resolve(client, ref, args.platform)
        from cove.image.store import ImageStore

        with ImageStore(context.images_dir) as store:
            pull(
                store, ref, client=client, platform=args.platform, progress=progress,
                resolved=resolved,
            )  # fmt: skip
    sys.stdout.write(f"{ref.familiar() if ref.digest is None else str(ref)}\n")
    return 0
