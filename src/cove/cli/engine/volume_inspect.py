"""cove volume inspect [-f FORMAT] VOLUME..."""

from __future__ import annotations

import argparse
import json
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.cli.engine.formatting import render
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="VOLUME")
    parser.add_argument("-f", "--format", default="", help="a {{.Field}} template")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.volumes import VolumeService

    service = VolumeService(context.root)
    documents = []
    status = 0
    for name in args.names:
        try:
            documents.append(service.inspect(name))
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = REQUEST_FAILED
    if args.format:
        for document in documents:
            sys.stdout.write(render(args.format, document) + "\n")
    else:
        sys.stdout.write(json.dumps(documents, indent=4) + "\n")
    return status
