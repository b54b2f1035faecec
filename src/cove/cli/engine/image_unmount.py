"""cove image unmount IMAGE"""

from __future__ import annotations

import argparse

from cove.cli.engine import Context
from cove.engine.images import ImageService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE")


def run(args: argparse.Namespace, context: Context) -> int:
    ImageService(context.root).unmount(args.image)
    return 0
