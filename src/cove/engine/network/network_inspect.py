"""`docker network inspect`'s document of a network (`NetworkService.inspect`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cove.engine.network.records import SCOPE, Lease, Network

_EPOCH = "0001-01-01T00:00:00Z"  # Go's zero time, what Docker shows for host and none


def inspect_document(
    network: Network, leases: Iterable[Lease], names: Mapping[str, str]
) -> dict[str, object]:
    """Docker's shape of `network` with its `leases`; `names` names the containers
    (id -> name) in its Containers section."""
    config: list[dict[str, str]] = []
    if network.subnet:
        entry = {"Subnet": network.subnet}
        if network.ip_range:
            entry["IPRange"] = network.ip_range
        entry["Gateway"] = network.gateway
        config.append(entry)
    attached: dict[str, object] = {}
    for lease in leases:
        attached[lease.container_id] = {
            "Name": names.get(lease.container_id, ""), "EndpointID": lease.endpoint_id,
            "MacAddress": lease.mac, "IPv4Address": lease.address, "IPv6Address": "",
        }  # fmt: skip
    return {
        "Name": network.name, "Id": network.id, "Created": network.created or _EPOCH,
        "Scope": SCOPE, "Driver": network.driver, "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": network.internal, "Attachable": False, "Ingress": False,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False, "Containers": attached,
        "Options": dict(sorted(network.options.items())),
        "Labels": dict(sorted(network.labels.items())),
    }  # fmt: skip
