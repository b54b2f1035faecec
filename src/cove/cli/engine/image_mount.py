"""cove image mount IMAGE / cove image unmount IMAGE (as podman's)."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.engine.images import ImageService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE")


def run(args: argparse.Namespace, context: Context) -> int:
    sys.stdout.write(ImageService(context.root).mount(args.image) + "\n")
    return 0
