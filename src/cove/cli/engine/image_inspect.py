"""cove image inspect [--format] IMAGE..."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context
from cove.cli.engine.formatting import print_documents
from cove.engine.images import ImageService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-f", "--format", default="", help="a {{.Field}} template")


def run(args: argparse.Namespace, context: Context) -> int:
    service = ImageService(context.root)
    return print_documents(args.images, service.inspect, args.format)
