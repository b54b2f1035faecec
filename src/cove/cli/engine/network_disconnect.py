"""cove network disconnect [-f] NETWORK CONTAINER

A running container is unplugged by the data plane (`cove.engine.network.attach.disconnect`);
then its address is given back and its record forgets the network. With -f that happens
even when the unplugging fails, or when the container no longer exists (CONTAINER is then its
id, or an id prefix)."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.network import LIVE, attached_to, data_plane, update_endpoints


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("network", metavar="NETWORK")
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("-f", "--force", action="store_true",
                        help="give the address back even if the unplugging fails")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService
    from cove.engine.network import NetworkService
    from cove.errors import CoveError, NetworkError, NoSuchContainer, PredefinedNetwork

    attach = data_plane("disconnect")
    containers = ContainerService(context.root)
    with NetworkService(context.root) as service:
        network = service.get(args.network)
        if network.pseudo:
            raise PredefinedNetwork(
                f"container cannot be disconnected from {network.name} network or connected "
                f"to {network.name} network"
            )
        try:
            record = containers.get(args.container)
        except NoSuchContainer:
            if not args.force:
                raise
            gone = [lease.container_id for lease in service.leases(network)
                    if lease.container_id.startswith(args.container)]  # fmt: skip
            if len(gone) != 1:
                raise
            service.release(network, gone[0])
            return 0
        if not attached_to(record, network, service.leases(network)) and not args.force:
            raise NetworkError(
                f"container {record.id[:12]} is not connected to network {network.name}"
            )
        if record.status in LIVE:
            try:
                attach.disconnect(context.root, network, record)
            except CoveError as exc:
                if not args.force:
                    raise
                sys.stderr.write(f"Warning: {exc}\n")
        service.release(network, record.id)
        update_endpoints(containers.store, record.id, network, None, attach=False)
    return 0
