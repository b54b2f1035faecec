"""cove ps [-a] [-q] [-n N] [-l] [--filter KEY=VALUE]... [--format T] [--no-trunc]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import human_since, print_table, render
from cove.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.state import ContainerRecord

FILTER_KEYS = ("id", "name", "status", "exited", "ancestor", "label", "runtime", "before",
               "since")  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true", help="stopped containers too")
    parser.add_argument("-q", "--quiet", action="store_true", help="only the ids")
    parser.add_argument("--no-trunc", action="store_true", help="do not shorten")
    parser.add_argument("-f", "--filter", action="append", default=[], help="KEY=VALUE")
    parser.add_argument("--format", default="", help="table, json or a {{.Field}} template")
    parser.add_argument("-n", "--last", type=int, default=-1, help="the last N created")
    parser.add_argument("-l", "--latest", action="store_true", help="the last created")
    parser.add_argument("-s", "--size", action="store_true", help="the SIZE column")


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{item}' (keys: {', '.join(FILTER_KEYS)})")
        filters.setdefault(key, []).append(value)
    return filters


def _exposed_ports(context: Context, records: list[ContainerRecord]) -> dict[str, list[str]]:
    """The EXPOSEd ports ("80/tcp") of the running containers' images, by image id."""
    wanted = {r.image_id for r in records if r.status in ("running", "paused")}
    found: dict[str, list[str]] = {}
    if not wanted:
        return found
    from cove.errors import CoveError
    from cove.image.store import ImageStore

    with ImageStore(context.images_dir) as store:
        for image_id in wanted:
            try:
                config = store.config(store.resolve(image_id))
            except CoveError:
                continue  # removed (forced) meanwhile
            found[image_id] = [str(key) for key in config.config.exposed_ports]
    return found


def _ports(record: ContainerRecord, exposed: dict[str, list[str]]) -> str:
    """The PORTS column: published and exposed ports of a running container."""
    if record.status not in ("running", "paused"):
        return ""
    from cove.engine.network.ports import parse_expose, ports_column, published

    keys = list(exposed.get(record.image_id, []))
    for spec in record.config.get("expose") or []:
        keys += parse_expose(str(spec))
    return ports_column(published(record.settings), keys)


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.container_status import status_text
    from cove.engine.containers import ContainerService

    show_all = args.all or args.last >= 0 or args.latest
    service = ContainerService(context.root)
    records = service.list(show_all, parse_filters(args.filter))
    if args.latest:
        records = records[:1]
    elif args.last >= 0:
        records = records[: args.last]
    if args.quiet:
        sys.stdout.write("".join(f"{r.id if args.no_trunc else r.id[:12]}\n" for r in records))
        return 0
    from cove.engine.healthcheck import read_state

    exposed = _exposed_ports(context, records)
    images: dict[str, int] = {}
    rows = []
    for record in records:
        health = ""
        if record.status == "running" and record.settings.get("healthcheck"):
            state = read_state(service.store.container_dir(record.id)) or {}
            health = str(state.get("Status") or "starting")
        command = " ".join(record.config.get("cmd") or record.config.get("entrypoint") or [])
        if not args.no_trunc and len(command) > 20:
            command = command[:19] + "…"
        rows.append({
            "ID": record.id if args.no_trunc else record.id[:12], "Image": record.image_name,
            "Command": f'"{command}"', "CreatedAt": record.created,
            "RunningFor": human_since(record.created), "Status": status_text(record, health=health),
            "State": record.status, "Ports": _ports(record, exposed), "Names": record.name,
            "Labels": ",".join(f"{k}={v}" for k, v in (record.config.get("labels") or {}).items()),
        })  # fmt: skip
        if args.size or "{{.Size}}" in args.format.replace(" ", ""):
            from cove.cli.engine.formatting import human_size
            from cove.engine.system_df import container_sizes

            size = container_sizes(context.root, record, images)
            rows[-1]["Size"] = (f"{human_size(size['SizeRw'])} "
                                f"(virtual {human_size(size['SizeRootFs'])})")  # fmt: skip
    if args.format and args.format != "table":
        for row in rows:
            sys.stdout.write(render(args.format, dict(row)) + "\n")
        return 0
    header = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    keys = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"]
    if args.size:
        header.append("SIZE")
        keys.append("Size")
    print_table(header, [[str(row[k]) for k in keys] for row in rows])
    return 0
