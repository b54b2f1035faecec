"""`cove system df [-v]` and `cove system prune [-a] [-f] [--volumes]` (the flags are
declared by `cove.cli.engine.system`)."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.formatting import human_since, human_size, print_table


def reclaimable(size: int, total: int, percent: bool = True) -> str:
    """Docker's RECLAIMABLE cell: "1.2MB (40%)"."""
    if not percent or total <= 0:
        return human_size(size)
    return f"{human_size(size)} ({size * 100 // total}%)"


def run(args: argparse.Namespace, context: Context) -> int:
    if args.subcommand == "prune":
        return _prune(args, context)
    from cove.engine.system_df import disk_usage

    usage = disk_usage(context.root)
    rows = [[kind, str(total), str(active), human_size(size),
             reclaimable(free, size, percent=kind != "Build Cache")]
            for kind, total, active, size, free in usage.summary()]  # fmt: skip
    if not args.verbose:
        print_table(["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], rows)
        return 0
    out = sys.stdout.write
    out("Images space usage:\n\n")
    image_rows = []
    for image in usage.images:
        for name in image.names or ("<none>:<none>",):
            repository, _, tag = name.rpartition(":")
            image_rows.append([repository, tag, image.id.removeprefix("sha256:")[:12],
                               human_since(image.created), human_size(image.size),
                               human_size(image.shared_size),
                               human_size(image.size - image.shared_size),
                               str(image.containers)])  # fmt: skip
    print_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE",
                 "UNIQUE SIZE", "CONTAINERS"], image_rows)  # fmt: skip
    out("\nContainers space usage:\n\n")
    from cove.engine.container_status import status_text

    container_rows = []
    for item in usage.containers:
        record = item.record
        command = " ".join(record.config.get("cmd") or record.config.get("entrypoint") or [])
        if len(command) > 20:
            command = command[:19] + "…"
        volumes = record.settings.get("volumes") if isinstance(record.settings, dict) else None
        container_rows.append([record.short_id, record.image_name, f'"{command}"',
                               str(len(volumes) if isinstance(volumes, list) else 0),
                               human_size(item.size), human_since(record.created),
                               status_text(record), record.name])  # fmt: skip
    print_table(["CONTAINER ID", "IMAGE", "COMMAND", "LOCAL VOLUMES", "SIZE", "CREATED",
                 "STATUS", "NAMES"], container_rows)  # fmt: skip
    out("\nLocal Volumes space usage:\n\n")
    print_table(["VOLUME NAME", "LINKS", "SIZE"],
                [[v.name, str(v.links), human_size(v.size)] for v in usage.volumes])  # fmt: skip
    out(f"\nBuild cache usage: {human_size(sum(m.size for m in usage.build_cache))}\n\n")
    cache_rows = [[m.name[:12], "exec.cachemount", human_size(m.size), _since(m.created),
                   _since(m.last_used), str(m.uses), "false"]
                  for m in usage.build_cache]  # fmt: skip
    print_table(["CACHE ID", "CACHE TYPE", "SIZE", "CREATED", "LAST USED", "USAGE", "SHARED"],
                cache_rows)  # fmt: skip
    return 0


def _since(moment: float) -> str:
    import datetime

    return human_since(datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat())


def _prune(args: argparse.Namespace, context: Context) -> int:
    from cove.cli.engine import prune_filters
    from cove.engine.system_df import prune

    what = ["all stopped containers", "all networks not used by at least one container"]
    if args.volumes:
        what.append("all anonymous volumes not used by at least one container")
    what.append("all images without at least one container associated to them"
                if args.all else "all dangling images")  # fmt: skip
    what.append("all build cache" if args.all else "unused build cache")
    warning = "WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in what)
    if not prune_filters.confirmed(args.force, warning):
        return 0

    wanted, until = prune_filters.parse(args.filter)
    report = prune(context.root, all_images=args.all, volumes=args.volumes, filters=wanted,
                   until=until)  # fmt: skip
    out = sys.stdout.write
    if report.containers:
        out("Deleted Containers:\n" + "".join(f"{i}\n" for i in report.containers) + "\n")
    if report.networks:
        out("Deleted Networks:\n" + "".join(f"{n}\n" for n in report.networks) + "\n")
    if report.volumes:
        out("Deleted Volumes:\n" + "".join(f"{n}\n" for n in report.volumes) + "\n")
    if report.untagged or report.deleted:
        out("Deleted Images:\n")
        out("".join(f"untagged: {name}\n" for name in report.untagged))
        out("".join(f"deleted: {digest}\n" for digest in report.deleted) + "\n")
    if report.build_cache:
        out("Deleted build cache objects:\n" + "".join(f"{n}\n" for n in report.build_cache)
            + "\n")  # fmt: skip
    out(f"Total reclaimed space: {human_size(report.reclaimed)}\n")
    return 0
