"""cove attach [--no-stdin] CONTAINER: connect to a running container's stdio."""

from __future__ import annotations

import argparse

from cove.cli.engine import REQUEST_FAILED, Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("--no-stdin", action="store_true", help="do not attach stdin")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.attach import pump
    from cove.engine.containers import ContainerService

    service = ContainerService(context.root)
    client = service.attach(args.container)
    record = service.get(args.container)
    stdin = None if args.no_stdin or not record.settings.get("stdin") else 0
    try:
        code = pump(client, stdin=stdin, tty=bool(record.settings.get("tty")))
    finally:
        client.close()
    return REQUEST_FAILED if code is None else code
