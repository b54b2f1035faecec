"""cove volume ls [-q] [--filter KEY=VALUE]... [--format TEMPLATE]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import print_table, render
from cove.cli.engine.volume import filters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="only volume names")
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="dangling=true|false, name=, label=KEY[=VALUE], driver=")  # fmt: skip
    parser.add_argument("--format", default="", help="table, json, or a {{.Field}} template")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.volumes import VolumeService

    volumes = VolumeService(context.root).list(filters(args.filter))
    if args.quiet:
        sys.stdout.write("".join(f"{volume.name}\n" for volume in volumes))
        return 0
    if args.format and args.format != "table":
        for volume in volumes:
            fields: dict[str, object] = {
                "CreatedAt": volume.created_at, "Driver": volume.driver,
                "Labels": ",".join(f"{k}={v}" for k, v in sorted(volume.labels.items())),
                "Links": "N/A", "Mountpoint": volume.mountpoint, "Name": volume.name,
                "Scope": "local", "Size": "N/A",
            }  # fmt: skip
            sys.stdout.write(render(args.format, fields) + "\n")
        return 0
    print_table(["DRIVER", "VOLUME NAME"], [[v.driver, v.name] for v in volumes])
    return 0
