"""cove tag SOURCE_IMAGE TARGET_IMAGE"""

from __future__ import annotations

import argparse

from cove.cli.engine import Context
from cove.engine.images import ImageService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE_IMAGE")
    parser.add_argument("target", metavar="TARGET_IMAGE")


def run(args: argparse.Namespace, context: Context) -> int:
    ImageService(context.root).tag(args.source, args.target)
    return 0
