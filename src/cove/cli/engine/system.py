"""cove system check [--repair]: find (and remove) what a crash left behind.
cove system boot: at the host's start, repair stale records and start the containers whose
restart policy says so (tools/systemd/cove-boot.service runs it).
cove system df [-v] / cove system prune [-a] [-f] [--volumes]: disk use, and removing what
nothing uses (`system_df`)."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subcommand", choices=["check", "boot", "df", "prune"])
    parser.add_argument("--repair", action="store_true", help="remove what is found")
    parser.add_argument("-v", "--verbose", action="store_true", help="df: per object")
    parser.add_argument("-a", "--all", action="store_true", help="prune: every unused image")
    parser.add_argument("-f", "--force", action="store_true", help="prune: do not ask")
    parser.add_argument("--volumes", action="store_true", help="prune: anonymous volumes too")
    parser.add_argument("--filter", action="append", default=[],
                        help="prune: until=TIME, label=K[=V], label!=K[=V]")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.system_check import check

    if args.subcommand == "boot":
        return _boot(context)
    if args.subcommand in ("df", "prune"):
        from cove.cli.engine import system_df

        return system_df.run(args, context)
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


def _boot(context: Context) -> int:
    from cove.engine.system_boot import boot

    report = boot(context.root)
    for line in report.lines:
        sys.stdout.write(line + "\n")
    if not report.lines:
        sys.stdout.write("nothing to repair or start\n")
    return 1 if report.failed else 0
