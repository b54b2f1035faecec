"""cove system check [--repair]: find (and remove) what a crash left behind."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subcommand", choices=["check"])
    parser.add_argument("--repair", action="store_true", help="remove what is found")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.system_check import check

    findings = check(context.root, repair=args.repair)
    for finding in findings:
        sys.stdout.write(finding.line() + "\n")
    if not findings:
        sys.stdout.write("nothing to repair\n")
        return 0
    if args.repair:
        return 1 if any(f.error for f in findings) else 0
    sys.stdout.write(f"{len(findings)} problem(s): run 'cove system check --repair'\n")
    return 1
