"""cove push [--tls-verify=false] [-q] NAME[:TAG]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.image_pull import add_tls_verify
from cove.image.registry.progress import ProgressPrinter, no_progress
from cove.image.registry.push import push
from cove.image.store import ImageStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", metavar="NAME[:TAG]")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    add_tls_verify(parser)


def run(args: argparse.Namespace, context: Context) -> int:
    progress = no_progress if args.quiet else ProgressPrinter(sys.stdout)
    with ImageStore(context.images_dir) as store:
        push(store, args.reference, tls_verify=args.tls_verify, progress=progress)
    return 0
