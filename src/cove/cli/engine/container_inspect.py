"""cove container inspect [-f FORMAT] CONTAINER..."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context
from cove.cli.engine import inspect as inspect_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="CONTAINER")
    parser.add_argument("-f", "--format", default="", help="a {{.Field.Sub}} template")
    parser.add_argument("-s", "--size", action="store_true", help="SizeRw and SizeRootFs too")


def run(args: argparse.Namespace, context: Context) -> int:
    return inspect_command.run(args, context, kind="container")
