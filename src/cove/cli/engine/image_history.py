"""cove image history [--no-trunc] [-q] [--format] IMAGE"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import human_since, human_size, print_table, render
from cove.engine.images import ImageService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("--no-trunc", action="store_true", help="do not shorten the output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only the image ids")
    parser.add_argument("--format", default="", help="json or a {{.Field}} template")


def run(args: argparse.Namespace, context: Context) -> int:
    rows = ImageService(context.root).history(args.image)
    if args.quiet:
        for row in rows:
            sys.stdout.write(_short(row["Id"], args.no_trunc) + "\n")
        return 0
    if args.format:
        for row in rows:
            sys.stdout.write(render(args.format, row) + "\n")
        return 0
    table = []
    for row in rows:
        created_by = row["CreatedBy"]
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        table.append([_short(row["Id"], args.no_trunc), human_since(row["Created"]),
                      created_by, human_size(row["Size"]), row["Comment"]])  # fmt: skip
    print_table(["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"], table)
    return 0


def _short(image_id: str, no_trunc: bool) -> str:
    if no_trunc or image_id == "<missing>":
        return image_id
    return image_id.removeprefix("sha256:")[:12]
