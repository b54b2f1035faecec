"""cove update [--memory ...] [--cpus ...] [--pids-limit ...] CONTAINER...: change the limits
of running containers (applied at once through the runtime, kept for later starts)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cove.cli.engine import REQUEST_FAILED, Context
from cove.errors import CoveError, InvalidArgument

# flag dest -> CreateOptions field
_FIELDS = {
    "memory": "memory", "memory_swap": "memory_swap",
    "memory_reservation": "memory_reservation", "cpus": "cpus", "cpu_shares": "cpu_shares",
    "cpu_quota": "cpu_quota", "cpu_period": "cpu_period", "cpuset_cpus": "cpuset_cpus",
    "cpuset_mems": "cpuset_mems", "pids_limit": "pids_limit", "blkio_weight": "blkio_weight",
}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("containers", nargs="+", metavar="CONTAINER")
    add("-m", "--memory", default=None, help="memory limit")
    add("--memory-swap", default=None, help="memory + swap limit")
    add("--memory-reservation", default=None, help="memory soft limit")
    add("--cpus", default=None, help="number of CPUs")
    add("-c", "--cpu-shares", type=int, default=None, help="relative CPU weight")
    add("--cpu-quota", type=int, default=None, help="CFS quota")
    add("--cpu-period", type=int, default=None, help="CFS period")
    add("--cpuset-cpus", default=None, help="CPUs allowed")
    add("--cpuset-mems", default=None, help="memory nodes allowed")
    add("--pids-limit", type=int, default=None, help="process limit")
    add("--blkio-weight", type=int, default=None, help="block IO weight")
    add("--restart", default=None, help="the restart policy from the next exit")


def resources_for(changes: dict[str, Any]) -> dict[str, Any]:
    """linux.resources for the changed flags only (specgen's checks and conversions)."""
    from cove.engine import spec_resources
    from cove.engine.create_options import CreateOptions
    from cove.engine.host_info import HostInfo

    options = CreateOptions(**changes)
    host = HostInfo.probe()
    warnings: list[str] = []
    resources: dict[str, Any] = {}
    for key, part in (("memory", spec_resources.memory(options, host, warnings)),
                      ("cpu", spec_resources.cpu(options, host, warnings)),
                      ("pids", spec_resources.pids(options)),
                      ("blockIO", spec_resources.block_io(options, host))):  # fmt: skip
        if part:
            resources[key] = part
    for warning in warnings:
        sys.stderr.write(f"WARNING: {warning}\n")
    return resources


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService

    changes = {field: getattr(args, dest) for dest, field in _FIELDS.items()
               if getattr(args, dest) is not None}  # fmt: skip
    if not changes and args.restart is None:
        raise InvalidArgument("update: nothing to change (give --memory, --cpus, --restart...)")
    policy = None
    if args.restart is not None:
        from cove.engine.restart_policy import parse_restart_policy

        policy = parse_restart_policy(args.restart)
    resources = resources_for(changes) if changes else {}
    service = ContainerService(context.root)
    status = 0
    for term in args.containers:
        try:
            service.update(term, resources, changes, policy)
        except CoveError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            status = REQUEST_FAILED
            continue
        sys.stdout.write(f"{term}\n")
    return status
