"""cove volume inspect [-f FORMAT] VOLUME..."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context
from cove.cli.engine.formatting import print_documents


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="VOLUME")
    parser.add_argument("-f", "--format", default="", help="a {{.Field}} template")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.volumes import VolumeService

    service = VolumeService(context.root)
    return print_documents(args.names, service.inspect, args.format)
