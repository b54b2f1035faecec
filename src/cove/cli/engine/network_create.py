"""cove network create [--subnet CIDR] [--gateway IP] [--ip-range CIDR] [--internal]
[--label K=V]... [-d bridge] [-o K=V]... NAME"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.volume import pairs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NETWORK")
    parser.add_argument("-d", "--driver", default="bridge", help="the driver: bridge")
    parser.add_argument("--subnet", default="",
                        help="the subnet (CIDR; default: a free Docker pool)")  # fmt: skip
    parser.add_argument("--gateway", default="", help="the gateway (default: first address)")
    parser.add_argument("--ip-range", default="",
                        help="give containers addresses from this sub-range (CIDR)")  # fmt: skip
    parser.add_argument("--internal", action="store_true", help="no access to the outside")
    parser.add_argument("--label", action="append", default=[], help="KEY=VALUE metadata")
    parser.add_argument("-o", "--opt", action="append", default=[],
                        help="driver options (com.docker.network.driver.mtu=N ...)")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.network import NetworkService

    with NetworkService(context.root) as service:
        network = service.create(
            args.name, subnet=args.subnet, gateway=args.gateway, ip_range=args.ip_range,
            internal=args.internal, labels=pairs(args.label, "--label"),
            options=pairs(args.opt, "--opt"), driver=args.driver,
        )  # fmt: skip
    sys.stdout.write(network.id + "\n")
    return 0
