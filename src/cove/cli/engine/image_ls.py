"""cove images / cove image ls [-a] [-q] [--digests] [--no-trunc] [--filter] [--format]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import human_since, human_size, print_table, render
from cove.cli.engine.parser import UsageError
from cove.engine.images import ImageRow, ImageService


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", nargs="?", help="only images whose name matches")
    parser.add_argument("-a", "--all", action="store_true", help="show all images")
    parser.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    parser.add_argument("--digests", action="store_true", help="show digests")
    parser.add_argument("--no-trunc", action="store_true", help="do not shorten ids")
    parser.add_argument("-f", "--filter", action="append", default=[], help="dangling=true")
    parser.add_argument("--format", default="", help="table, json, or a {{.Field}} template")


def run(args: argparse.Namespace, context: Context) -> int:
    dangling = None
    for entry in args.filter:
        key, _, value = entry.partition("=")
        if key != "dangling" or value not in ("true", "false"):
            raise UsageError(f"unsupported filter {entry!r} (dangling=true|false)")
        dangling = value == "true"
    rows = ImageService(context.root).rows(args.all, dangling)
    if args.reference:
        rows = [r for r in rows if _matches(r, args.reference)]
    if args.quiet:
        seen: list[str] = []
        for row in rows:
            image_id = _id(row, args.no_trunc)
            if image_id not in seen:
                seen.append(image_id)
        sys.stdout.write("".join(f"{image_id}\n" for image_id in seen))
        return 0
    if args.format and args.format != "table":
        for row in rows:
            sys.stdout.write(render(args.format, _fields(row, args.no_trunc)) + "\n")
        return 0
    header = ["REPOSITORY", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID",
              "CREATED", "SIZE"]  # fmt: skip
    table = [
        [row.repository, row.tag, *([row.digest] if args.digests else []),
         _id(row, args.no_trunc), human_since(row.created), human_size(row.size)]
        for row in rows
    ]  # fmt: skip
    print_table(header, table)
    return 0


def _id(row: ImageRow, no_trunc: bool) -> str:
    return row.id if no_trunc else row.id.removeprefix("sha256:")[:12]


def _matches(row: ImageRow, pattern: str) -> bool:
    name, _, tag = pattern.partition(":")
    return row.repository == name and (not tag or row.tag == tag)


def _fields(row: ImageRow, no_trunc: bool) -> dict[str, object]:
    return {
        "Containers": "N/A",
        "CreatedAt": row.created,
        "CreatedSince": human_since(row.created),
        "Digest": row.digest,
        "ID": _id(row, no_trunc),
        "Repository": row.repository,
        "SharedSize": "N/A",
        "Size": human_size(row.size),
        "Tag": row.tag,
        "UniqueSize": "N/A",
        "VirtualSize": human_size(row.size),
    }
