"""cove stop [-t SECONDS] [-s SIGNAL] CONTAINER...  and  cove restart [...] CONTAINER..."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import REQUEST_FAILED, Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")
    parser.add_argument("-t", "--time", "--timeout", dest="time", type=int, default=None,
                        help="seconds before SIGKILL (default: the container's, 10)")  # fmt: skip
    parser.add_argument("-s", "--signal", default=None,
                        help="the signal that stops it (default: the container's)")  # fmt: skip


def run(args: argparse.Namespace, context: Context, restart: bool = False) -> int:
    from cove.cli.engine.container_rm import for_each
    from cove.engine.containers import ContainerService

    service = ContainerService(context.root)

    def act(term: str) -> None:
        if restart:
            service.restart(term, args.time, args.signal)
        else:
            service.stop(term, args.time, args.signal)

    status = 0
    for term, error in for_each(args.containers, act):
        if error is not None:
            sys.stderr.write(f"Error: {error}\n")
            status = REQUEST_FAILED
        else:
            sys.stdout.write(f"{term}\n")
    return status
