"""cove volume create [--name NAME | NAME] [-d local] [--label K=V]... [-o K=V]..."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.parser import UsageError
from cove.cli.engine.volume import pairs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("volume", nargs="?", default="", metavar="VOLUME")
    parser.add_argument("--name", default="", help="the volume's name (random when none)")
    parser.add_argument("-d", "--driver", default="local", help="the driver: local")
    parser.add_argument("--label", action="append", default=[], help="KEY=VALUE metadata")
    parser.add_argument("-o", "--opt", action="append", default=[],
                        help="driver options: type=tmpfs|none|FS, device=..., o=...")  # fmt: skip


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.volumes import VolumeService

    if args.volume and args.name and args.volume != args.name:
        raise UsageError(
            "conflicting options: either specify --name or provide positional arg, not both"
        )
    volume = VolumeService(context.root).create(
        args.volume or args.name, args.driver, pairs(args.label, "--label"),
        pairs(args.opt, "--opt"),
    )  # fmt: skip
    sys.stdout.write(volume.name + "\n")
    return 0
