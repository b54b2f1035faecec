"""cove network dns-serve [--detach]: the engine's DNS responder (hidden; `dns_control`
starts and stops it). It answers container names on user networks and forwards the rest to
the host's resolvers (see cove.engine.network.dns)."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detach", action="store_true",
                        help="serve in a new process; return once it listens")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.network.dns_control import serve

    return serve(context.root, detach=args.detach)
