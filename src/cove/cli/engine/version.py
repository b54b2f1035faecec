"""cove version"""

from __future__ import annotations

import argparse
import json
import platform
import sys

from cove import __version__
from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", "-f", default="", help="json")


def run(args: argparse.Namespace, context: Context) -> int:
    info = {
        "Version": __version__,
        "ApiVersion": "1.44",
        "Os": "linux",
        "Arch": platform.machine(),
        "KernelVersion": platform.release(),
        "Root": context.root,
    }
    if args.format == "json":
        sys.stdout.write(json.dumps(info) + "\n")
    else:
        sys.stdout.write("".join(f"{key + ':':<16}{value}\n" for key, value in info.items()))
    return 0
