"""cove network connect [--ip IP] [--alias NAME]... NETWORK CONTAINER

The container gets an address on the network (IPAM) and its record remembers the network
(settings["connected"]: the data plane connects it at every start). A running container is
plugged in now by the data plane (`cove.engine.network.attach.connect`); the address is given
back if that fails."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context
from cove.cli.engine.network import LIVE, attached_to, data_plane, update_endpoints


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("network", metavar="NETWORK")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("--ip", default="", help="the IPv4 address (default: a free one)")
    parser.add_argument("--alias", action="append", default=[],
                        help="another DNS name of the container on this network")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService
    from cove.engine.network import NetworkService
    from cove.errors import NetworkConflict, PredefinedNetwork

    attach = data_plane("connect")
    containers = ContainerService(context.root)
    with NetworkService(context.root) as service:
        network = service.get(args.network)
        if network.pseudo:
            raise PredefinedNetwork(
                f"container cannot be disconnected from {network.name} network or connected "
                f"to {network.name} network"
            )
        record = containers.get(args.container)
        mode = str(record.config.get("network") or "")
        if mode == "host" or mode.startswith("container:"):
            raise NetworkConflict("container sharing network namespace with another container "
                                  "or host cannot be connected to any other network")  # fmt: skip
        if mode == "none":
            raise NetworkConflict("container cannot be connected to multiple networks with one "
                                  "of the networks in private (none) mode")  # fmt: skip
        if attached_to(record, network, service.leases(network)):
            raise NetworkConflict(
                f"endpoint with name {record.name} already exists in network {network.name}"
            )
        lease = service.allocate(network, record.id, ip=args.ip, aliases=args.alias)
        try:
            endpoint = None
            if record.status in LIVE:
                endpoint = attach.connect(context.root, network, record, lease)
            update_endpoints(containers.store, record.id, network, endpoint, attach=True)
        except BaseException:
            service.release(network, record.id)
            raise
    return 0
