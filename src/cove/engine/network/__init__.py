"""Networks: the control plane (records, addresses, published ports) in `networks` (the
service), `records`, `files`, `leases`, `defaults`, `ipam` and `ports`; the data plane
(bridges, veths, firewall rules) in `attach`.

The package re-exports the network service's API (`Network`, `Lease`, `NetworkService`...)
from `networks` and `records`, loaded on first use, so that importing `ports` or `ipam`
alone stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.network.networks import NetworkService as NetworkService
    from cove.engine.network.records import DEFAULT_BRIDGE as DEFAULT_BRIDGE
    from cove.engine.network.records import DEFAULT_NAME as DEFAULT_NAME
    from cove.engine.network.records import Lease as Lease
    from cove.engine.network.records import Network as Network
    from cove.engine.network.records import bridge_name as bridge_name
    from cove.engine.network.records import check_network_name as check_network_name
    from cove.engine.network.records import pseudo_network as pseudo_network

# name -> module: imported on first use
_LAZY = {
    "DEFAULT_BRIDGE": "records",
    "DEFAULT_NAME": "records",
    "Lease": "records",
    "Network": "records",
    "NetworkService": "networks",
    "bridge_name": "records",
    "check_network_name": "records",
    "pseudo_network": "records",
}

__all__ = [
    "DEFAULT_BRIDGE",
    "DEFAULT_NAME",
    "Lease",
    "Network",
    "NetworkService",
    "bridge_name",
    "check_network_name",
    "pseudo_network",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module == "networks":
        from cove.engine.network import networks

        return getattr(networks, name)
    if module == "records":
        from cove.engine.network import records

        return getattr(records, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
