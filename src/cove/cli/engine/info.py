"""cove info [--format json]: the engine and the host, as docker info shows them (the
document is the API's GET /info: cove.engine.system_info)."""

from __future__ import annotations

import argparse
import json
import sys

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", "-f", default="", help="json")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.system_info import system_info

    info = system_info(context.root)
    if args.format == "json":
        sys.stdout.write(json.dumps(info) + "\n")
        return 0
    for key, value in info.items():
        shown = value if isinstance(value, str) else json.dumps(value)
        sys.stdout.write(f" {key}: {shown}\n")
    return 0
