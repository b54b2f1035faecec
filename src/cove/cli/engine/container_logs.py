"""cove logs [-f] [--tail N] [--since T] [--until T] [-t] CONTAINER"""

from __future__ import annotations

import argparse
import os

from cove.cli.engine import Context
from cove.errors import CoveError, InvalidArgument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    parser.add_argument("-n", "--tail", default="all", help="only the last N lines")
    parser.add_argument("--since", default="", help="from this time (RFC 3339, unix, 10m)")
    parser.add_argument("--until", default="", help="up to this time")
    parser.add_argument("-t", "--timestamps", action="store_true", help="show timestamps")
    parser.add_argument("--details", action="store_true", help="accepted; nothing extra")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.container_logs import follow_logs, format_entry, parse_since, read_logs
    from cove.engine.containers import ContainerService

    service = ContainerService(context.root)
    record = service.get(args.container)
    tail: int | None = None
    if args.tail != "all":
        if not args.tail.lstrip("-").isdigit():
            raise InvalidArgument(f"invalid value '{args.tail}' for flag --tail: want a number")
        tail = max(int(args.tail), 0) if int(args.tail) >= 0 else None
    since = parse_since(args.since) if args.since else 0
    until = parse_since(args.until, flag="--until") if args.until else 0
    if args.follow and record.status in ("running", "paused"):

        def stopped() -> bool:
            try:
                return service.get(record.id).status not in ("running", "paused")
            except CoveError:
                return True  # removed (--rm) as it stopped

        entries = follow_logs(record.log_path, since_ns=since, tail=tail, stop=stopped)
    else:
        entries = iter(read_logs(record.log_path, tail=tail, since_ns=since, until_ns=until))
    for entry in entries:
        if until and entry.time_ns > until:
            break
        os.write(2 if entry.stream == "stderr" else 1, format_entry(entry, args.timestamps))
    return 0
