"""cove network ls [-q] [--filter KEY=VALUE]... [--format TEMPLATE] [--no-trunc]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import print_table, render
from cove.cli.engine.volume import filters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="only network ids")
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="name=, id=, label=KEY[=VALUE], driver=, type=builtin|custom, "
                             "dangling=true|false")  # fmt: skip
    parser.add_argument("--format", default="", help="table, json, or a {{.Field}} template")
    parser.add_argument("--no-trunc", action="store_true", help="full network ids")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.network import NetworkService

    with NetworkService(context.root) as service:
        networks = service.list(filters(args.filter))
    width = 64 if args.no_trunc else 12
    if args.quiet:
        sys.stdout.write("".join(f"{network.id[:width]}\n" for network in networks))
        return 0
    if args.format and args.format != "table":
        for network in networks:
            sys.stdout.write(render(args.format, network.summary(args.no_trunc)) + "\n")
        return 0
    print_table(["NETWORK ID", "NAME", "DRIVER", "SCOPE"],
                [[n.id[:width], n.name, n.driver, n.scope] for n in networks])  # fmt: skip
    return 0
