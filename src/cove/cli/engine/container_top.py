"""cove top CONTAINER [ps OPTIONS]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="OPTIONS",
                        help="ps options (default -ef)")  # fmt: skip


def table(titles: list[str], rows: list[list[str]]) -> str:
    """As docker's tabwriter (min width 20, padding 3); the last column is not padded."""
    lines = [titles, *rows]
    columns = len(titles)
    widths = [max([20] + [len(line[i]) + 3 for line in lines if i < len(line)])
              for i in range(columns - 1)]  # fmt: skip
    out = []
    for line in lines:
        cells = [cell.ljust(widths[i]) if i < columns - 1 else cell for i, cell in enumerate(line)]
        out.append("".join(cells).rstrip() + "\n")
    return "".join(out)


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.container_top import top
    from cove.engine.containers import ContainerService

    service = ContainerService(context.root)
    titles, rows = top(context.root, service.get(args.container), args.ps_args)
    sys.stdout.write(table(titles, rows))
    return 0
