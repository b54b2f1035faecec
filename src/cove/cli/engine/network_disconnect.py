"""cove network disconnect [-f] NETWORK CONTAINER

A running container is unplugged by the data plane (`cove.engine.network.attach.disconnect`);
then its address is given back and its record forgets the network. With -f that happens
even when the unplugging fails, or when the container no longer exists (CONTAINER is then its
id, or an id prefix)."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.network import data_plane


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("network", metavar="NETWORK")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("-f", "--force", action="store_true",
                        help="give the address back even if the unplugging fails")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService
    from cove.engine.network import NetworkService
    from cove.engine.network.connect import disconnect

    plane = data_plane("disconnect")
    containers = ContainerService(context.root)
    with NetworkService(context.root) as service:
        disconnect(containers, service, args.network, args.container, force=args.force,
                   warn=lambda message: sys.stderr.write(f"Warning: {message}\n"),
                   plane=plane)  # fmt: skip
    return 0
