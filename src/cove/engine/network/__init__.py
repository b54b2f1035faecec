"""Networks: the control plane (records, addresses, published ports) in `networks`, `ipam`
and `ports`; the data plane (bridges, veths, firewall rules) in `attach`.

The package re-exports the network service's API (`Network`, `Lease`, `NetworkService`...)
from `networks`, loaded on first use, so that importing `ports` or `ipam` alone stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.network.networks import DEFAULT_BRIDGE as DEFAULT_BRIDGE
    from cove.engine.network.networks import DEFAULT_NAME as DEFAULT_NAME
    from cove.engine.network.networks import Lease as Lease
    from cove.engine.network.networks import Network as Network
    from cove.engine.network.networks import NetworkService as NetworkService
    from cove.engine.network.networks import bridge_name as bridge_name
    from cove.engine.network.networks import check_network_name as check_network_name
    from cove.engine.network.networks import pseudo_network as pseudo_network

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
    if name in __all__:
        from cove.engine.network import networks

        return getattr(networks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
