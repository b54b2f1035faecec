"""What a network and a lease are: the records of the network service (`networks.py`),
Docker's names for them, and the rules for names, drivers and options.

- "bridge" is the default network (bridge `cove0` under the engine's standard root);
  "host" and "none" are Docker's pseudo-networks (drivers host and null), never stored.
  The three names are reserved.
- A user network's bridge is `cv-` + the first 12 digits of its id.
- Names follow Docker's rule, [a-zA-Z0-9][a-zA-Z0-9_.-]*.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from cove.errors import InvalidArgument, PredefinedNetwork

DRIVER = "bridge"
SCOPE = "local"
DEFAULT_NAME = "bridge"
DEFAULT_BRIDGE = "cove0"
BRIDGE_PREFIX = "cv-"
PSEUDO_DRIVERS = {"host": "host", "none": "null"}  # name -> driver
BUILTIN_NAMES = (DEFAULT_NAME, *PSEUDO_DRIVERS)
MTU_OPTION = "com.docker.network.driver.mtu"
NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Network:
    """One network. `subnet`, `gateway` and `bridge` are "" for the pseudo-networks host
    and none; `mtu` 0 means the uplink's (the data plane decides)."""

    id: str
    name: str
    driver: str = DRIVER
    subnet: str = ""
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created: str = ""
    bridge: str = ""
    mtu: int = 0

    @property
    def builtin(self) -> bool:
        """One of Docker's pre-defined networks: bridge, host, none."""
        return self.name in BUILTIN_NAMES

    @property
    def pseudo(self) -> bool:
        """host or none: nothing on disk, no addresses."""
        return self.driver in PSEUDO_DRIVERS.values()

    @property
    def scope(self) -> str:
        return SCOPE

    @property
    def prefixlen(self) -> int:
        return IPv4Network(self.subnet).prefixlen if self.subnet else 0

    def summary(self, no_trunc: bool = True) -> dict[str, object]:
        """The fields of `network ls --format`."""
        return {
            "ID": self.id if no_trunc else self.id[:12], "Name": self.name,
            "Driver": self.driver, "Scope": SCOPE, "IPv6": False, "Internal": self.internal,
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())),
            "CreatedAt": self.created,
        }  # fmt: skip


@dataclass(frozen=True)
class Lease:
    """A container's address on a network."""

    network_id: str
    container_id: str
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    aliases: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """Docker's IPv4Address of an endpoint: "172.30.0.2/16"."""
        return f"{self.ip}/{self.prefixlen}"

    @property
    def endpoint_id(self) -> str:
        """Docker's EndpointID (64 hex digits): stable for one container on one network."""
        return hashlib.sha256(f"{self.network_id}/{self.container_id}".encode()).hexdigest()


def pseudo_network(name: str) -> Network:
    """The pseudo-network host or none (its id is fixed: the same on every engine)."""
    network_id = hashlib.sha256(f"cove network {name}".encode()).hexdigest()
    return Network(id=network_id, name=name, driver=PSEUDO_DRIVERS[name])


def new_network_id() -> str:
    return os.urandom(32).hex()


def is_network_id(text: str) -> bool:
    """A full network id: 64 hex digits."""
    return _ID.fullmatch(text) is not None


def valid_network_name(name: str) -> bool:
    return NETWORK_NAME.fullmatch(name) is not None


def check_network_name(name: str) -> str:
    if not valid_network_name(name):
        raise InvalidArgument(
            f'invalid network name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'
        )
    return name


def bridge_name(network_id: str) -> str:
    """The Linux interface of a user network: "cv-" + 12 digits of its id (15 characters,
    the kernel's limit)."""
    return BRIDGE_PREFIX + network_id[:12]


def check_driver(driver: str) -> None:
    """Only the bridge driver makes networks (host and null have their one instance)."""
    if driver in ("", DRIVER):
        return
    if driver in ("host", "null", "none"):
        shown = "null" if driver == "none" else driver
        raise PredefinedNetwork(f'only one instance of "{shown}" network is allowed')
    raise InvalidArgument(f"network driver {driver!r} is not supported: cove has only 'bridge'")


def parse_mtu(options: Mapping[str, str]) -> int:
    """The MTU a network's options ask for (`MTU_OPTION`), 0 when none."""
    text = options.get(MTU_OPTION, "")
    if not text:
        return 0
    try:
        mtu = int(text)
    except ValueError:
        mtu = -1
    if not 68 <= mtu <= 65535:
        raise InvalidArgument(f"invalid option {MTU_OPTION}={text}: want an MTU from 68 to 65535")
    return mtu
