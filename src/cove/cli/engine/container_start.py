"""cove start [-a] [-i] CONTAINER..."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.cli.engine.container_run import warn
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.add_argument("-a", "--attach", action="store_true", help="attach stdout/stderr")
    parser.add_argument("-i", "--interactive", action="store_true", help="attach stdin")
    parser.add_argument("--detach-keys", default="",
                        help="the keys that detach (default ctrl-p,ctrl-q)")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.cli.engine.attach_flags import detach_keys
    from cove.engine.attach import DETACHED, pump
    from cove.engine.containers import ContainerService

    service = ContainerService(context.root)
    attach = args.attach or args.interactive
    if attach and len(args.containers) > 1:
        sys.stderr.write("cove: you cannot start and attach multiple containers at once\n")
        return REQUEST_FAILED
    status = 0
    for term in args.containers:
        try:
            record, client = service.start(term, attach=attach, warn=warn)
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = REQUEST_FAILED
            continue
        if client is None:
            sys.stdout.write(f"{term}\n")
            continue
        tty = bool(record.settings.get("tty"))
        try:
            code = pump(client, stdin=0 if args.interactive else None, tty=tty,
                        detach_keys=detach_keys(args, tty))  # fmt: skip
        finally:
            client.close()
        if code == DETACHED:
            return 0
        service.finish(record.id)
        return REQUEST_FAILED if code is None else code
    return status
