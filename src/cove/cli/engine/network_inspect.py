"""cove network inspect [-f FORMAT] NETWORK..."""

from __future__ import annotations

import argparse
import json
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.cli.engine.formatting import render
from cove.cli.engine.network import container_names
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NETWORK")
    parser.add_argument("-f", "--format", default="", help="a {{.Field}} template")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.network import NetworkService

    names = container_names(context.root)
    documents = []
    status = 0
    with NetworkService(context.root) as service:
        for term in args.names:
            try:
                documents.append(service.inspect(term, names))
            except CoveError as exc:
                sys.stderr.write(f"Error: {exc}\n")
                status = REQUEST_FAILED
    if args.format:
        for document in documents:
            sys.stdout.write(render(args.format, document) + "\n")
    else:
        sys.stdout.write(json.dumps(documents, indent=4) + "\n")
    return status
