"""cove network SUBCOMMAND: create, ls, inspect, rm, prune, connect, disconnect.

The default network "bridge" takes its subnet from `<root>/engine.json`
({"default_subnet": "10.88.0.0/16"}) when that file says one, else from Docker's default
pools; it is chosen once, when the network is first used."""

from __future__ import annotations

import argparse
from types import ModuleType

from cove.cli.engine import Context, run_module

SUBCOMMANDS = {
    "connect": ("network_connect", "connect a container to a network"),
    "create": ("network_create", "create a network"),
    "disconnect": ("network_disconnect", "disconnect a container from a network"),
    "dns-serve": ("network_dns", "the engine's DNS responder (the engine starts it)"),
    "inspect": ("network_inspect", "show networks' details (JSON)"),
    "ls": ("network_ls", "list networks"),
    "list": ("network_ls", "list networks"),
    "prune": ("network_prune", "remove the networks no container uses"),
    "rm": ("network_rm", "remove networks"),
    "remove": ("network_rm", "remove networks"),
}
DATA_PLANE = "cove.engine.network.attach"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subcommand", choices=sorted(SUBCOMMANDS))
    parser.add_argument("rest", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace, context: Context) -> int:
    module_name, summary = SUBCOMMANDS[args.subcommand]
    return run_module(module_name, f"cove network {args.subcommand}", summary, args.rest,
                      context)  # fmt: skip


def data_plane(verb: str) -> ModuleType:
    """The data plane's module (`attach`, with `connect` and `disconnect`), or a usage
    error that says it is not there."""
    import importlib

    from cove.cli.engine.parser import UsageError

    try:
        module = importlib.import_module(DATA_PLANE)
    except ModuleNotFoundError as exc:
        if exc.name != DATA_PLANE:
            raise
        module = None
    if module is None or not callable(getattr(module, verb, None)):
        raise UsageError(f"network {verb} needs the data plane (not available)")
    return module


def container_names(root: str) -> dict[str, str]:
    """Container id -> name, from the engine's records ({} when there are none)."""
    import os

    if not os.path.exists(os.path.join(root, "containers.db")):
        return {}
    from cove.engine.state import ContainerStore

    with ContainerStore(root) as store:
        return {record.id: record.name for record in store.list(all=True)}
