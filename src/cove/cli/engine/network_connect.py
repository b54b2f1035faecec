"""cove network connect [--ip IP] [--alias NAME]... NETWORK CONTAINER

The container gets an address on the network (IPAM) and its record remembers the network
(settings["connected"]: the data plane connects it at every start). A running container is
plugged in now by the data plane (`cove.engine.network.attach.connect`); the address is given
back if that fails."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context
from cove.cli.engine.network import data_plane


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("network", metavar="NETWORK")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("--ip", default="", help="the IPv4 address (default: a free one)")
    parser.add_argument("--alias", action="append", default=[],
                        help="another DNS name of the container on this network")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService
    from cove.engine.network import NetworkService
    from cove.engine.network.connect import connect

    plane = data_plane("connect")
    containers = ContainerService(context.root)
    with NetworkService(context.root) as service:
        connect(containers, service, args.network, args.container, ip=args.ip,
                aliases=args.alias, plane=plane)  # fmt: skip
    return 0
