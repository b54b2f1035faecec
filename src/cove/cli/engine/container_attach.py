"""cove attach [--no-stdin] CONTAINER: connect to a running container's stdio."""

from __future__ import annotations

import argparse

from cove.cli.engine import REQUEST_FAILED, Context
from cove.cli.engine.attach_flags import add_attach_arguments, detach_keys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    add_attach_arguments(parser)


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.attach import DETACHED, pump
    from cove.engine.containers import ContainerService

    service = ContainerService(context.root)
    client = service.attach(args.container)
    record = service.get(args.container)
    stdin = None if args.no_stdin or not record.settings.get("stdin") else 0
    tty = bool(record.settings.get("tty"))
    restore = None
    if args.sig_proxy and not tty:
        from cove.cli.engine.container_run import forward_signals

        restore = forward_signals(record.pid)
    try:
        code = pump(client, stdin=stdin, tty=tty, detach_keys=detach_keys(args, tty))
    finally:
        client.close()
        if restore is not None:
            restore()
    if code == DETACHED:
        return 0
    return REQUEST_FAILED if code is None else code
