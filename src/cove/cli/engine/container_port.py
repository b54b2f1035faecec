"""cove port CONTAINER [PRIVATE_PORT[/PROTO]]

The published ports of a running container, from its record (`settings["ports"]`, which
the data plane writes when it publishes them): "80/tcp -> 0.0.0.0:8080" lines, or for one
private port the host addresses only."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("port", nargs="?", default="", metavar="PRIVATE_PORT[/PROTO]")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService
    from cove.engine.network.ports import (
        format_host,
        format_port_line,
        parse_port_proto,
        published,
    )
    from cove.errors import PortNotPublished

    wanted = parse_port_proto(args.port) if args.port else None
    record = ContainerService(context.root).get(args.container)
    bindings = [b for b in published(record.settings) if b.host_port] if record.running else []
    if wanted is None:
        sys.stdout.write("".join(format_port_line(b) + "\n" for b in bindings))
        return 0
    port, protocol = wanted
    matching = [b for b in bindings if (b.container_port, b.protocol) == (port, protocol)]
    if not matching:
        raise PortNotPublished(f"{port}/{protocol}", args.container)
    sys.stdout.write("".join(format_host(b) + "\n" for b in matching))
    return 0
