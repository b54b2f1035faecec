"""Connecting a container to a user network and disconnecting it (`cove network connect`,
`docker network connect`, the API's POST /networks/{id}/connect and /disconnect).

The container gets an address on the network (IPAM) and its record remembers the network
(settings["connected"]: the data plane connects it at every start). A running container is
plugged in now by the data plane (`cove.engine.network.attach.connect`); the address is given
back if that fails. Disconnecting unplugs a running container, gives the address back and
makes the record forget the network; with `force` that happens even when the unplugging
fails, or when the container no longer exists (`container` is then its id, or an id prefix).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from types import ModuleType

from cove.errors import CoveError, NetworkConflict, NetworkError, NoSuchContainer, PredefinedNetwork

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.containers import ContainerService
    from cove.engine.network.networks import NetworkService
    from cove.engine.network.records import Lease, Network
    from cove.engine.state import ContainerRecord, ContainerStore

LIVE = ("running", "paused")  # a container with a network namespace to plug into
DATA_PLANE = "cove.engine.network.attach"


def data_plane() -> ModuleType:
    """The data plane's module (looked up in sys.modules, so tests can stand in for it)."""
    return importlib.import_module(DATA_PLANE)


def connect(
    containers: ContainerService,
    service: NetworkService,
    network_term: str,
    container_term: str,
    *,
    ip: str = "",
    aliases: Sequence[str] = (),
    plane: ModuleType | None = None,
) -> None:
    """`plane` is the data plane (`cove.engine.network.attach`, found when not given)."""
    attach = plane if plane is not None else data_plane()
    network = service.get(network_term)
    _refuse_pseudo(network)
    record = containers.get(container_term)
    mode = str(record.config.get("network") or "")
    if mode == "host" or mode.startswith("container:"):
        raise NetworkConflict("container sharing network namespace with another container "
                              "or host cannot be connected to any other network")  # fmt: skip
    if mode == "none":
        raise NetworkConflict("container cannot be connected to multiple networks with one "
                              "of the networks in private (none) mode")  # fmt: skip
    if attached_to(record, network, service.leases(network)):
        raise NetworkConflict(
            f"endpoint with name {record.name} already exists in network {network.name}"
        )
    lease = service.allocate(network, record.id, ip=ip, aliases=aliases)
    try:
        endpoint = None
        if record.status in LIVE:
            endpoint = attach.connect(containers.root, network, record, lease)
        update_endpoints(containers.store, record.id, network, endpoint, attach=True)
    except BaseException:
        service.release(network, record.id)
        raise


def disconnect(
    containers: ContainerService,
    service: NetworkService,
    network_term: str,
    container_term: str,
    *,
    force: bool = False,
    warn: Callable[[str], object] | None = None,
    plane: ModuleType | None = None,
) -> None:
    """`warn` hears of an unplugging that failed and that `force` went past; `plane` as
    for `connect`."""
    attach = plane if plane is not None else data_plane()
    network = service.get(network_term)
    _refuse_pseudo(network)
    try:
        record = containers.get(container_term)
    except NoSuchContainer:
        if not force:
            raise
        gone = [lease.container_id for lease in service.leases(network)
                if lease.container_id.startswith(container_term)]  # fmt: skip
        if len(gone) != 1:
            raise
        service.release(network, gone[0])
        return
    if not attached_to(record, network, service.leases(network)) and not force:
        raise NetworkError(f"container {record.id[:12]} is not connected to network {network.name}")
    if record.status in LIVE:
        try:
            attach.disconnect(containers.root, network, record)
        except CoveError as exc:
            if not force:
                raise
            if warn is not None:
                warn(str(exc))
    service.release(network, record.id)
    update_endpoints(containers.store, record.id, network, None, attach=False)


def _refuse_pseudo(network: Network) -> None:
    if network.pseudo:
        raise PredefinedNetwork(
            f"container cannot be disconnected from {network.name} network or connected "
            f"to {network.name} network"
        )


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
