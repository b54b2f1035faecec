"""cove network SUBCOMMAND: create, ls, inspect, rm, prune, connect, disconnect.

The default network "bridge" takes its subnet from `<root>/engine.json`
({"default_subnet": "10.88.0.0/16"}) when that file says one, else from Docker's default
pools; it is chosen once, when the network is first used."""

from __future__ import annotations

import argparse
from types import ModuleType

from cove.cli.engine import Context, run_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.network import Lease, Network
    from cove.engine.state import ContainerRecord, ContainerStore

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


LIVE = ("running", "paused")  # a container with a network namespace to plug into


def update_endpoints(
    store: ContainerStore, container_id: str, network: Network, endpoint: object, attach: bool
) -> None:
    """Remember in the container's record that it is connected to `network` (`attach`) or
    no longer is: settings["connected"] (network names, which the data plane connects at
    every start) and settings["networks"] (the endpoints of a running container, as the
    data plane's `connect` returns them). Under the container's lock."""
    with store.lock(container_id):
        record = store.get(container_id)
        settings = dict(record.settings)
        connected = [str(name) for name in settings.get("connected") or []]
        connected = [name for name in connected if name not in (network.name, network.id)]
        endpoints = [e for e in settings.get("networks") or [] if isinstance(e, dict)
                     and e.get("network_id") != network.id]  # fmt: skip
        if attach:
            connected.append(network.name)
            if isinstance(endpoint, dict):
                endpoints.append(endpoint)
        if connected:
            settings["connected"] = connected
        else:
            settings.pop("connected", None)
        if endpoints or "networks" in settings:
            settings["networks"] = endpoints
        store.update_state(container_id, settings=settings)


def attached_to(record: ContainerRecord, network: Network, leases: list[Lease]) -> bool:
    """Whether the container is on `network`: a lease there, or its record says so."""
    if any(lease.container_id == record.id for lease in leases):
        return True
    names = {str(name) for name in record.settings.get("connected") or []}
    names.add(str(record.config.get("network") or ""))
    return network.name in names or network.id in names
