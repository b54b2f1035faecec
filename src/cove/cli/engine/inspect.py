"""cove inspect [--type container|image] [-f FORMAT] NAME...: containers first, then images,
as docker's."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context
from cove.cli.engine.formatting import print_documents
from cove.errors import CoveError, NoSuchContainer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME")
    parser.add_argument("-f", "--format", default="", help="a {{.Field.Sub}} template")
    parser.add_argument("--type", default="", choices=["", "container", "image"],
                        help="what NAME is")  # fmt: skip
    parser.add_argument("-s", "--size", action="store_true",
                        help="a container's SizeRw and SizeRootFs too")  # fmt: skip


def inspect_one(context: Context, name: str, kind: str, size: bool = False) -> dict[str, object]:
    from cove.engine.containers import ContainerService

    if kind in ("", "container"):
        try:
            service = ContainerService(context.root)
            document = service.inspect(name)
            if size:
                from cove.engine.system_df import container_sizes

                document.update(container_sizes(context.root, service.get(name), {}))
            return document
        except NoSuchContainer:
            if kind == "container":
                raise
    from cove.engine.images import ImageService

    try:
        return ImageService(context.root).inspect(name)
    except CoveError:
        if kind == "image":
            raise
        raise CoveError(f"No such object: {name}") from None


def run(args: argparse.Namespace, context: Context, kind: str = "") -> int:
    size = bool(getattr(args, "size", False))
    return print_documents(
        args.names, lambda name: inspect_one(context, name, kind or args.type, size), args.format
    )
