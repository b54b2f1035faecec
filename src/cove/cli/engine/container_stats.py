"""cove stats [-a] [--no-stream] [--no-trunc] [--format T] [CONTAINER...]"""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import TYPE_CHECKING

from cove.cli.engine import Context
from cove.cli.engine.formatting import human_size, print_table, render

if TYPE_CHECKING:
    from cove.engine.container_stats import Figures, Sample
    from cove.engine.containers import ContainerService
    from cove.engine.state import ContainerRecord

INTERVAL = 1.0
HEADERS = {"Container": "CONTAINER", "ID": "CONTAINER ID", "Name": "NAME", "CPUPerc": "CPU %",
           "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
           "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}  # fmt: skip
DEFAULT_TABLE = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t" \
    "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}"  # fmt: skip
CLEAR = "\033[2J\033[H"
_FIELD = re.compile(r"\{\{\s*(?:json\s+)?\.(\w+)[^}]*\}\}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="*", metavar="CONTAINER")
    parser.add_argument("-a", "--all", action="store_true", help="stopped containers too")
    parser.add_argument("--no-stream", action="store_true", help="print once and exit")
    parser.add_argument("--no-trunc", action="store_true", help="full ids")
    parser.add_argument("--format", default="", help="table, json or a {{.Field}} template")


def binary_size(size: float) -> str:
    """docker's units.BytesSize: binary units, 4 significant digits (3.664MiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.4g}{unit}"
        size /= 1024
    return f"{size:.4g}PiB"


def fields(record: ContainerRecord, figures: Figures | None, no_trunc: bool) -> dict[str, object]:
    """The template fields of one line (docker's names); "--" figures when not running."""
    ident = record.id if no_trunc else record.id[:12]
    row: dict[str, object] = {"Container": record.name or ident, "ID": ident, "Name": record.name}
    if figures is None:
        row.update(CPUPerc="--", MemUsage="-- / --", MemPerc="--", NetIO="--", BlockIO="--",
                   PIDs="--")  # fmt: skip
        return row
    row.update(
        CPUPerc=f"{figures.cpu_percent:.2f}%",
        MemUsage=f"{binary_size(figures.memory_usage)} / {binary_size(figures.memory_limit)}",
        MemPerc=f"{figures.memory_percent:.2f}%",
        NetIO=f"{human_size(figures.net_rx)} / {human_size(figures.net_tx)}",
        BlockIO=f"{human_size(figures.block_read)} / {human_size(figures.block_write)}",
        PIDs=str(figures.pids),
    )
    return row


def render_rows(template: str, rows: list[dict[str, object]]) -> str:
    """The output for one refresh: a table (default, or `table TEMPLATE`), JSON lines, or a
    line per container from a template."""
    template = template or DEFAULT_TABLE
    if template == "table":
        template = DEFAULT_TABLE
    if template == "json":
        return "".join(render("json", row) + "\n" for row in rows)
    if not template.startswith("table"):
        return "".join(render(template, row) + "\n" for row in rows)
    cells = template[len("table") :].strip().replace("\\t", "\t").split("\t")
    header = [_FIELD.sub(lambda m: HEADERS.get(m.group(1), m.group(1).upper()), c) for c in cells]
    table = [[render(cell, row) for cell in cells] for row in rows]
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        print_table(header, table)
    return out.getvalue()


def _targets(service: ContainerService, names: list[str], show_all: bool) -> list[ContainerRecord]:
    if names:
        return [service.get(name) for name in names]
    return service.list(all_containers=show_all)


def _sample(record: ContainerRecord) -> Sample | None:
    from cove.engine.container_stats import read_sample

    if record.status not in ("running", "paused"):
        return None
    return read_sample(record.pid)


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.container_stats import figures
    from cove.engine.containers import ContainerService
    from cove.errors import NoSuchContainer

    service = ContainerService(context.root)
    records = _targets(service, args.containers, args.all)
    previous = {r.id: _sample(r) for r in records}
    terminal = sys.stdout.isatty() and not args.no_stream
    while True:
        time.sleep(INTERVAL)
        if not args.no_stream:
            try:
                records = _targets(service, args.containers, args.all)
            except NoSuchContainer:
                records = [r for r in records if service.store.exists(r.id)]
        rows = []
        current = {}
        for record in records:
            sample = _sample(record)
            current[record.id] = sample
            before = previous.get(record.id)
            shown = None if sample is None else figures(before, sample)
            rows.append(fields(record, shown, args.no_trunc))
        previous = current
        text = render_rows(args.format, rows)
        sys.stdout.write((CLEAR if terminal else "") + text)
        sys.stdout.flush()
        if args.no_stream:
            return 0
