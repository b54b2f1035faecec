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
    parser.add_argument("--ipam-driver", default="default", help="default (the only one)")
    parser.add_argument("--attachable", action="store_true",
                        help="accepted: every cove network is attachable")  # fmt: skip
    parser.add_argument("--scope", default="local", help="local (the only one)")
    parser.add_argument("--ipv6", action="store_true", help="not supported: IPv4 only")
    parser.add_argument("--aux-address", action="append", default=[], help="not supported")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.network import NetworkService
    from cove.errors import InvalidArgument

    if args.ipv6:
        raise InvalidArgument("--ipv6: cove's networks are IPv4 only")
    if args.aux_address:
        raise InvalidArgument("--aux-address is not supported: give containers --ip instead, "
                              "or narrow --ip-range")  # fmt: skip
    if args.ipam_driver != "default":
        raise InvalidArgument(f"IPAM driver {args.ipam_driver!r} is not supported: cove has "
                              "only 'default'")  # fmt: skip
    if args.scope != "local":
        raise InvalidArgument(f"--scope {args.scope}: cove's networks are local")

    with NetworkService(context.root) as service:
        network = service.create(
            args.name, subnet=args.subnet, gateway=args.gateway, ip_range=args.ip_range,
            internal=args.internal, labels=pairs(args.label, "--label"),
            options=pairs(args.opt, "--opt"), driver=args.driver,
        )  # fmt: skip
    sys.stdout.write(network.id + "\n")
    return 0
