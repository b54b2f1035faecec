"""cove ps [-a] [-q] [--no-trunc]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import human_since, print_table
from cove.engine.containers import ContainerService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true", help="stopped containers too")
    parser.add_argument("-q", "--quiet", action="store_true", help="only the ids")
    parser.add_argument("--no-trunc", action="store_true", help="do not shorten")


def run(args: argparse.Namespace, context: Context) -> int:
    records = ContainerService(context.root).list(args.all)
    ids = [r.id if args.no_trunc else r.id[:12] for r in records]
    if args.quiet:
        sys.stdout.write("".join(f"{i}\n" for i in ids))
        return 0
    rows = []
    for container_id, record in zip(ids, records, strict=True):
        command = " ".join(record.config.get("cmd") or [])
        if not args.no_trunc and len(command) > 20:
            command = command[:19] + "…"
        if record.status == "exited":
            status = f"Exited ({record.exit_code}) {human_since(record.finished_at)}"
        else:
            status = record.status.capitalize()
        rows.append([container_id, record.image_name, f'"{command}"',
                     human_since(record.created), status, "", record.name])  # fmt: skip
    print_table(["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"], rows)
    return 0
