"""Address management for cove's networks: pure functions over `ipaddress` values.

- Subnets: a network's subnet is given (`--subnet`, checked here) or chosen from Docker's
  default pools: 172.17.0.0/16 ... 172.31.0.0/16, then 192.168.0.0/20, 192.168.16.0/20, ...
  192.168.240.0/20. A chosen subnet overlaps no other network's and no route or interface
  address of the host (`host_networks`); a given one is checked against the other
  networks only (as Docker).
- Addresses: the lowest free host address of the network's pool (its `ip_range`, else its
  subnet), never the subnet's network or broadcast address, nor the gateway.
- MAC addresses as Docker's: 02:42 and the four bytes of the IPv4 address.

The service (`networks.py`) holds the locks (`files.py`) and the lease database
(`leases.py`); nothing here touches the disk except `host_networks`, which reads the host's
routes and addresses.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network

from cove.errors import AddressInUse, InvalidArgument, IPAMError, NetworkConflict

#: (base, prefix length of each subnet), in the order they are tried: Docker's defaults.
DEFAULT_POOLS: tuple[tuple[str, int], ...] = (("172.17.0.0/16", 16), ("172.18.0.0/15", 16),
                                              ("172.20.0.0/14", 16), ("172.24.0.0/13", 16),
                                              ("192.168.0.0/16", 20))  # fmt: skip
#: The smallest network: a /30 holds its gateway and one container.
MAX_PREFIXLEN = 30
POOL_OVERLAP = "Pool overlaps with other one on this address space"  # Docker's words
NO_FREE_POOL = (
    "could not find an available, non-overlapping IPv4 address pool among the defaults to "
    "assign to the network"
)  # Docker's words
MAIN_TABLE = 254


def default_pools() -> Iterator[IPv4Network]:
    """The candidate subnets in order: 172.17-31.0.0/16, then 192.168.0-240.0/20."""
    for base, prefixlen in DEFAULT_POOLS:
        yield from IPv4Network(base).subnets(new_prefix=prefixlen)


def choose_subnet(taken: Iterable[IPv4Network], host: Iterable[IPv4Network]) -> IPv4Network:
    """The first default pool that overlaps none of `taken` (cove's networks) and `host`
    (the host's routes and interface networks: `host_networks()`). `IPAMError` when every
    pool is used."""
    avoid = [*taken, *host]
    for candidate in default_pools():
        if not any(candidate.overlaps(other) for other in avoid):
            return candidate
    raise IPAMError(NO_FREE_POOL)


def parse_subnet(text: str) -> IPv4Network:
    """A `--subnet` value: IPv4, /30 or larger; host bits are dropped (172.30.0.1/16 is
    172.30.0.0/16)."""
    try:
        subnet = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {text!r}: want an IPv4 CIDR such as "
                              "172.30.0.0/16") from None  # fmt: skip
    if not isinstance(subnet, IPv4Network):
        raise InvalidArgument(f"invalid subnet {text!r}: ipv6 networks are not supported yet")
    if "/" not in text:
        raise InvalidArgument(f"invalid subnet {text!r}: want a prefix length (/16, /24...)")
    if subnet.prefixlen > MAX_PREFIXLEN:
        raise InvalidArgument(
            f"invalid subnet {subnet}: too small, a network needs a /{MAX_PREFIXLEN} or larger"
        )
    return subnet


def parse_gateway(text: str, subnet: IPv4Network) -> IPv4Address:
    """A `--gateway` value (default: the subnet's first host address)."""
    if not text:
        return subnet.network_address + 1
    address = _address(text, "gateway")
    if address not in subnet:
        raise InvalidArgument(f"invalid gateway {address}: it is not in subnet {subnet}")
    if address in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(
            f"invalid gateway {address}: the network or broadcast address of {subnet}"
        )
    return address


def parse_ip_range(text: str, subnet: IPv4Network) -> IPv4Network | None:
    """An `--ip-range` value: a sub-range of the subnet to give addresses from."""
    if not text:
        return None
    try:
        pool = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid ip range {text!r}: want an IPv4 CIDR") from None
    if not isinstance(pool, IPv4Network) or not pool.subnet_of(subnet):
        raise InvalidArgument(f"invalid ip range {text}: it is not inside subnet {subnet}")
    return pool


def check_overlap(subnet: IPv4Network, others: Iterable[tuple[str, IPv4Network]]) -> None:
    """`NetworkConflict` (Docker's words, then which network) when `subnet` overlaps one of
    `others` ((name, subnet) pairs)."""
    for name, other in others:
        if subnet.overlaps(other):
            raise NetworkConflict(f"{POOL_OVERLAP}: {subnet} overlaps network {name} ({other})")


def mac_for(ip: IPv4Address | str) -> str:
    """Docker's MAC address of an endpoint: 02:42 then the four bytes of its address."""
    packed = IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{byte:02x}" for byte in packed)


_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")


def parse_mac(text: str) -> str:
    """--mac-address: six colon-separated bytes, unicast (lower case)."""
    value = text.strip().replace("-", ":")
    if _MAC.fullmatch(value) is None:
        raise InvalidArgument(f"invalid MAC address {text!r}: want six bytes such as "
                              "02:42:ac:11:00:02")  # fmt: skip
    if int(value[:2], 16) & 1:
        raise InvalidArgument(f"invalid MAC address {text}: a multicast address")
    return value.lower()


def reserved(subnet: IPv4Network, gateway: IPv4Address) -> set[int]:
    """The addresses never given to a container: network, broadcast, gateway."""
    return {int(subnet.network_address), int(subnet.broadcast_address), int(gateway)}


def first_free(
    subnet: IPv4Network,
    gateway: IPv4Address,
    pool: IPv4Network | None,
    used: Collection[int],
) -> IPv4Address | None:
    """The lowest address of `pool` (default: the subnet) that is not reserved and not in
    `used` (addresses as integers); None when there is none."""
    skip = reserved(subnet, gateway)
    area = pool or subnet
    start = max(int(area.network_address), int(subnet.network_address) + 1)
    end = min(int(area.broadcast_address), int(subnet.broadcast_address) - 1)
    for value in range(start, end + 1):
        if value not in skip and value not in used:
            return IPv4Address(value)
    return None


def check_requested(
    text: str,
    subnet: IPv4Network,
    gateway: IPv4Address,
    pool: IPv4Network | None,
    network: str,
) -> IPv4Address:
    """An address asked for explicitly (`--ip`): not the gateway (`AddressInUse`), nor the
    subnet's network or broadcast address, and on the subnet and in the ip range when the
    network has one (`IPAMError`)."""
    address = _address(text, "address", error=IPAMError)
    if address == gateway:
        raise AddressInUse(str(address), network)
    if address in (subnet.network_address, subnet.broadcast_address):
        raise IPAMError(f"invalid address {address}: the network or broadcast address of "
                        f"{subnet}")  # fmt: skip
    if address not in subnet or (pool is not None and address not in pool):
        area = f"{subnet}" + (f" (ip range {pool})" if pool is not None else "")
        raise IPAMError(
            f"invalid address {address}: it does not belong to any of this network's subnets"
            f" ({network}: {area})"
        )
    return address


def _address(text: str, what: str, error: type[Exception] = InvalidArgument) -> IPv4Address:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise error(f"invalid {what} {text!r}: want an IPv4 address") from None
    if not isinstance(address, IPv4Address):
        raise error(f"invalid {what} {text}: ipv6 is not supported yet")
    return address


# --- the host's networks -------------------------------------------------------------------


def host_networks() -> list[IPv4Network]:
    """The IPv4 networks the host already reaches directly: the destinations of its routes
    in the main table (not the default route) and the networks of its interface addresses
    (other engine roots' bridges among them). Read with netlink (`rtnl`: importing pyroute2
    would cost ~100 ms); /proc/net/route when that fails."""
    try:
        return _netlink_networks()
    except OSError:  # no netlink: the kernel's text table
        return proc_route_networks()


def _netlink_networks() -> list[IPv4Network]:
    from cove.engine.network.rtnl import Netlink

    found: list[IPv4Network] = []
    with Netlink() as nl:
        for dst, length, _ in nl.routes(MAIN_TABLE):
            if length > 0:
                found.append(IPv4Network(f"{dst}/{length}", strict=False))
        for _, address, length in nl.addresses():
            if length > 0:
                found.append(IPv4Network(f"{address}/{length}", strict=False))
    return _unique(found)


def proc_route_networks(path: str = "/proc/net/route") -> list[IPv4Network]:
    """The route destinations in /proc/net/route (hex, host byte order), without the
    default route; [] when it cannot be read."""
    found: list[IPv4Network] = []
    try:
        with open(path) as file:
            lines = file.read().splitlines()[1:]
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination = IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
            network = IPv4Network(f"{destination}/{mask}", strict=False)
        except ValueError:
            continue
        if network.prefixlen > 0:
            found.append(network)
    return _unique(found)


def _unique(networks: Iterable[IPv4Network]) -> list[IPv4Network]:
    return sorted(set(networks))
