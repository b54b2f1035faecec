"""cove builder SUBCOMMAND: prune (the build cache)."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context, run_module

SUBCOMMANDS = {
    "prune": ("builder_prune", "remove the build cache"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subcommand", choices=sorted(SUBCOMMANDS))
    parser.add_argument("rest", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace, context: Context) -> int:
    module_name, summary = SUBCOMMANDS[args.subcommand]
    return run_module(module_name, f"cove builder {args.subcommand}", summary, args.rest, context)
