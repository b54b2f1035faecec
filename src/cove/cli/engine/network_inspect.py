"""cove network inspect [-f FORMAT] NETWORK..."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context
from cove.cli.engine.formatting import print_documents
from cove.cli.engine.network import container_names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NETWORK")
    parser.add_argument("-f", "--format", default="", help="a {{.Field}} template")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.network import NetworkService

    names = container_names(context.root)
    with NetworkService(context.root) as service:
        return print_documents(args.names, lambda term: service.inspect(term, names), args.format)
