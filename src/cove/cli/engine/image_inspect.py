"""cove image inspect [--format] IMAGE..."""

from __future__ import annotations

import argparse
import json
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.cli.engine.formatting import render
from cove.engine.images import ImageService
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("-f", "--format", default="", help="a {{.Field}} template")


def run(args: argparse.Namespace, context: Context) -> int:
    service = ImageService(context.root)
    documents = []
    status = 0
    for term in args.images:
        try:
            documents.append(service.inspect(term))
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = REQUEST_FAILED
    if args.format:
        for document in documents:
            sys.stdout.write(render(args.format, document) + "\n")
    else:
        sys.stdout.write(json.dumps(documents, indent=4) + "\n")
    return status
