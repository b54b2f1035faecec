"""`docker inspect`'s NetworkSettings of a container and the port maps of its HostConfig
(`cove.engine.container_inspect`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cove.engine.container_inspect_values import as_int, strings

Json = dict[str, Any]


def _endpoint() -> Json:
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": "",
        "DriverOpts": None,
    }


def port_map(entries: object) -> Json:
    """settings' port bindings -> Docker's {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    (HostPort "" for a port picked at start)."""
    found: dict[str, list[Json]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping) or not entry.get("container_port"):
            continue
        key = f"{entry['container_port']}/{entry.get('protocol') or 'tcp'}"
        port = as_int(entry.get("host_port"))
        found.setdefault(key, []).append(
            {"HostIp": str(entry.get("host_ip") or ""), "HostPort": str(port) if port else ""}
        )
    return dict(found)


def _ports(extra: Mapping[str, Any]) -> Json:
    """NetworkSettings.Ports of a running container: where each published port listens."""
    found = port_map(extra.get("ports"))
    for bindings in found.values():
        for binding in bindings:
            binding["HostIp"] = binding["HostIp"] or "0.0.0.0"
    return found


def _connected(endpoint: Mapping[str, Any], options: Mapping[str, Any], primary: bool) -> Json:
    data = _endpoint()
    aliases = strings(endpoint.get("aliases"))
    ip = str(options.get("ip") or "") if primary else ""
    data.update({
        "IPAMConfig": {"IPv4Address": ip} if ip else None,
        "Aliases": aliases or None,
        "NetworkID": str(endpoint.get("network_id") or ""),
        "EndpointID": str(endpoint.get("endpoint_id") or ""),
        "Gateway": str(endpoint.get("gateway") or ""),
        "IPAddress": str(endpoint.get("ip") or ""),
        "IPPrefixLen": as_int(endpoint.get("prefixlen")),
        "MacAddress": str(endpoint.get("mac") or ""),
    })  # fmt: skip
    return data


def network_settings(options: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Json:
    """Docker's NetworkSettings: the endpoints of a running container (settings["networks"]),
    else its network mode with empty ones; the top-level address fields for the default
    network "bridge", as Docker has them."""
    mode = str(options.get("network") or "none")
    more = extra or {}
    endpoints = [e for e in more.get("networks") or [] if isinstance(e, Mapping)]
    networks: Json = {mode: _endpoint()}
    if endpoints:
        networks = {str(e.get("name")): _connected(e, options, index == 0)
                    for index, e in enumerate(endpoints)}  # fmt: skip
    default = networks.get("bridge") if mode == "bridge" else None
    top = {key: default[key] if default else "" for key in
           ("EndpointID", "Gateway", "IPAddress", "MacAddress")}  # fmt: skip
    return {
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": _ports(more) if endpoints else {},
        "SandboxKey": "",
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": top["EndpointID"],
        "Gateway": top["Gateway"],
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top["IPAddress"],
        "IPPrefixLen": default["IPPrefixLen"] if default else 0,
        "IPv6Gateway": "",
        "MacAddress": top["MacAddress"],
        "Networks": networks,
    }
