"""The default network "bridge": its record, and the subnet the engine's settings give it.

    <root>/engine.json           optional engine settings; {"default_subnet": "10.88.0.0/16"}
                                 sets the subnet of the default network "bridge", read once,
                                 when that network is made (on first use)

Without `default_subnet` the network takes a default pool (`ipam.choose_subnet`): the
service (`networks.py`) chooses it, and moves it when another root took it first.
"""

from __future__ import annotations

import json
import os
from ipaddress import IPv4Network
from pathlib import Path

from cove.engine.network import ipam
from cove.engine.network.records import (
    DEFAULT_BRIDGE,
    DEFAULT_NAME,
    Network,
    bridge_name,
    new_network_id,
)
from cove.engine.state_records import utc_now
from cove.errors import InvalidArgument, NetworkError

ENGINE_CONFIG = "engine.json"
STANDARD_ROOT = "/var/lib/cove"
# What Docker's default bridge network says of itself (docker network inspect bridge).
DEFAULT_OPTIONS = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.bridge.name": DEFAULT_BRIDGE,
}


def configured_default_subnet(root: str) -> IPv4Network | None:
    """engine.json's `default_subnet` under `root`, None when it gives none."""
    path = Path(root) / ENGINE_CONFIG
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NetworkError(f"cannot read engine settings {path}: {exc}") from None
    value = data.get("default_subnet") if isinstance(data, dict) else None
    if not value:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{path}: default_subnet must be a string such as "
                              '"172.30.0.0/16"')  # fmt: skip
    try:
        return ipam.parse_subnet(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{path}: default_subnet: {exc}") from None


def default_network(root: str, subnet: IPv4Network) -> Network:
    """A new record of the default network of the engine root `root` on `subnet`."""
    network_id = new_network_id()
    # "cove0" for the engine's standard root; another root (a test's, a second
    # engine's) gets its own bridge, or two roots would fight over one interface.
    standard = os.path.realpath(str(root)) == STANDARD_ROOT
    bridge = DEFAULT_BRIDGE if standard else bridge_name(network_id)
    return Network(
        id=network_id, name=DEFAULT_NAME, subnet=str(subnet),
        gateway=str(subnet.network_address + 1),
        options={**DEFAULT_OPTIONS, "com.docker.network.bridge.name": bridge},
        created=utc_now(), bridge=bridge,
    )  # fmt: skip
