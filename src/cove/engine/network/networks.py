"""The network service: Docker's networks with its `bridge` driver (the control plane).

What a network is, here, is data: its subnet, gateway, bridge name, options. Bridges, veths
and the firewall rules are the data plane's (`attach.py`), which reads these records. The
service's parts: the records (`records.py`) and their files and lock (`files.py`), the
leases (`leases.py`), the default network (`defaults.py`), the addresses (`ipam.py`), the
shapes `network inspect` and `network ls --filter` show (`network_inspect.py`,
`network_filters.py`).

- Networks. "bridge" is the default network (bridge `cove0`), made on first use: the first
  command that lists, inspects or connects to networks. "host" and "none" are Docker's
  pseudo-networks (drivers host and null): listed and found by name, never stored. The
  three names are reserved and none of them can be removed. Other networks are made by
  `create` (bridge `cv-` + the first 12 digits of the id). A network without `--subnet`
  takes the first of Docker's default pools that overlaps no other network, no route or
  address of the host and no subnet another engine root claims (`ipam.choose_subnet`),
  chosen and claimed under the host-wide lock, so that roots choosing at the same moment
  do not pick the same one (`hostwide.py`); a given subnet must not overlap another
  network's (`NetworkConflict`, Docker's words). The default network takes engine.json's
  `default_subnet` when there is one, else a default pool, which it keeps, unless another
  root's bridge or claim has taken it by the time its own bridge is made (`settle`): then
  it moves to a free one, as long as no container holds an address on it.
- Removing a network (`remove`, `prune`) removes its bridge, its entries in the nft sets
  and its claim too (`repair.remove_network_links`), if it left any.
- Leases (`leases.py`). A network with leases cannot be removed (`NetworkInUse`, naming the
  containers); `prune` removes the user networks with none.
- `get` finds a network by full id, then name, then unique id prefix.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from cove.engine.network import hostwide, ipam
from cove.engine.network.defaults import configured_default_subnet, default_network
from cove.engine.network.files import NetworkFiles
from cove.engine.network.leases import DB_NAME, DEFAULT_DB_TIMEOUT, LeaseDB
from cove.engine.network.network_filters import check_filters, matches
from cove.engine.network.network_inspect import inspect_document
from cove.engine.network.records import (
    BUILTIN_NAMES,
    DEFAULT_NAME,
    DRIVER,
    PSEUDO_DRIVERS,
    Lease,
    Network,
    bridge_name,
    check_driver,
    check_network_name,
    new_network_id,
    parse_mtu,
    pseudo_network,
)
from cove.engine.state_records import utc_now
from cove.errors import (
    AmbiguousNetwork,
    CoveError,
    InvalidArgument,
    IPAMError,
    NetworkConflict,
    NetworkInUse,
    NoSuchNetwork,
    PredefinedNetwork,
)

HostNetworks = Callable[[], Iterable[IPv4Network]]

_HEX = re.compile(r"[0-9a-f]+")


class NetworkService:
    """The networks and leases under `<root>/networks` (see the module docstring).
    `host_networks` lists what the host's routes and interfaces already cover (default:
    read with netlink); tests pass their own, and `host_wide` (default: when
    `host_networks` is not given) whether the host-wide lock and claims are used."""

    def __init__(
        self,
        root: str,
        *,
        host_networks: HostNetworks | None = None,
        timeout: float = DEFAULT_DB_TIMEOUT,
        host_wide: bool | None = None,
    ) -> None:
        self.root = root
        self.dir = Path(root) / "networks"
        self.db_path = self.dir / DB_NAME
        self.timeout = timeout
        self._files = NetworkFiles(self.dir)
        self._leases = LeaseDB(self.db_path, timeout)
        self._host_networks = host_networks or ipam.host_networks
        # the real host: subnets are chosen under the host-wide lock, with other roots'
        # claims, and a removed network's bridge and set elements go (`hostwide`); a test's
        # stand-in host has none of it unless `host_wide` says so
        self._hostwide = host_networks is None if host_wide is None else host_wide

    def close(self) -> None:
        self._leases.close()

    def __enter__(self) -> NetworkService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the host-wide lock and claims --------------------------------------------------
    def _host_section(self) -> contextlib.AbstractContextManager[int]:
        """The host-wide lock, taken before the root's own (never the other way round)."""
        if not self._hostwide:
            return contextlib.nullcontext(-1)
        return hostwide.optional_lock()

    def _in_use(self) -> builtins.list[IPv4Network]:
        """What a chosen subnet must not overlap besides this root's networks: the host's
        routes and addresses, and the subnets other roots claim. Under `_host_section`."""
        hard, soft = self._in_use_split()
        return hard + soft

    def _in_use_split(self) -> tuple[builtins.list[IPv4Network], builtins.list[IPv4Network]]:
        """(what is really in use: the host's routes and addresses and other roots' bridges
        that are made; what other roots only claim so far, their bridges not made yet)."""
        hard = builtins.list(self._host_networks())
        soft: builtins.list[IPv4Network] = []
        if self._hostwide:
            hard += hostwide.claimed_by_others(self.root, placed=True)
            soft = hostwide.claimed_by_others(self.root, placed=False)
        return hard, soft

    def _choose(self, others: builtins.list[Network]) -> IPv4Network:
        """A free default pool. When every free one is only claimed by roots that have not
        made their bridge (idle roots, tests' temporary ones: claims last CLAIM_TTL), one
        of those is taken rather than failing: such a root moves when it makes its bridge
        (`settle`). Under `_host_section`."""
        hard, soft = self._in_use_split()
        try:
            return ipam.choose_subnet(_networks(others), hard + soft)
        except IPAMError:
            if not soft:
                raise
            return ipam.choose_subnet(_networks(others), hard)

    def _claim(self, network: Network) -> None:
        """Claim the network's subnet host-wide (under `_host_section`)."""
        if self._hostwide and network.subnet:
            with contextlib.suppress(OSError):  # (unprivileged: no bridges either)
                hostwide.claim(self.root, network.id, network.subnet, network.bridge)

    # -- reading ------------------------------------------------------------------------
    def default(self) -> Network:
        """The default network "bridge", made on first use (see the module docstring)."""
        found = self._files.by_name(DEFAULT_NAME)
        if found is not None:
            return found
        configured = configured_default_subnet(self.root)
        with self._host_section(), self._files.lock():
            found = self._files.by_name(DEFAULT_NAME)
            if found is not None:
                return found
            others = self._files.stored()
            if configured is not None:
                ipam.check_overlap(configured, _subnets(others))
                subnet = configured
            else:
                subnet = self._choose(others)
            network = default_network(self.root, subnet)
            self._files.write(network)
            self._claim(network)
        return network

    def settle(self, network: Network) -> Network:
        """Before the first container of `network` is plugged in (its bridge is not up):
        its subnet claimed host-wide again (claims go at a reboot; records made by an older
        cove have none). The default network, when its subnet is not configured and no
        container holds an address on it, first moves to a free subnet if its own is now
        in use on the host or claimed by another root: two roots whose records chose the
        same subnet while neither had a bridge up. Returns the network as it now is."""
        if not self._hostwide or network.pseudo or not network.subnet:
            return network
        if os.path.exists(f"/sys/class/net/{network.bridge}"):
            return network  # up: other containers use it (the usual case: no lock)
        with self._host_section():
            network = self._files.load(network.id) or network  # (another start may have moved it)
            if os.path.exists(f"/sys/class/net/{network.bridge}"):
                return network  # up meanwhile (a start of another of its containers)
            if network.name == DEFAULT_NAME:
                network = self._move_if_taken(network)
            self._claim(network)
        return network

    def _move_if_taken(self, network: Network) -> Network:
        hard, soft = self._in_use_split()
        subnet = IPv4Network(network.subnet)
        if not any(subnet.overlaps(other) for other in hard + soft):
            return network
        if configured_default_subnet(self.root) is not None:
            return network  # the engine's settings say so: kept, as given subnets are
        with self._files.lock():
            current = self._files.load(network.id)
            if current is None or current.subnet != network.subnet:
                return current or network
            if self._leases.has_leases(network.id):
                return network
            others = [n for n in self._files.stored() if n.id != network.id]
            try:
                chosen = ipam.choose_subnet(_networks(others), hard + soft)
            except IPAMError:
                if any(subnet.overlaps(other) for other in hard):
                    chosen = ipam.choose_subnet(_networks(others), hard)
                else:
                    return network  # only claimed by roots with no bridge: they move
            moved = dataclasses.replace(network, subnet=str(chosen),
                                        gateway=str(chosen.network_address + 1))  # fmt: skip
            self._files.write(moved)
        return moved

    def get(self, term: str) -> Network:
        """The network `term` names: full id, name, or unique id prefix (`NoSuchNetwork`,
        `AmbiguousNetwork`)."""
        if not term:
            raise NoSuchNetwork(term)
        if term == DEFAULT_NAME:
            return self.default()
        if term in PSEUDO_DRIVERS:
            return pseudo_network(term)
        candidates = [*self._files.stored(), *map(pseudo_network, PSEUDO_DRIVERS)]
        for network in candidates:
            if network.id == term:
                return network
        for network in candidates:
            if network.name == term:
                return network
        if _HEX.fullmatch(term):
            found = [network for network in candidates if network.id.startswith(term)]
            if len(found) == 1:
                return found[0]
            if found:
                raise AmbiguousNetwork(term, [network.id for network in found])
        raise NoSuchNetwork(term)

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> builtins.list[Network]:
        """Every network, by name: the default one (made if need be), host, none and the
        user networks. `filters` as `docker network ls --filter` (`network_filters.py`)."""
        checked = check_filters(filters)
        self.default()
        networks = [*self._files.stored(), *map(pseudo_network, PSEUDO_DRIVERS)]
        used: set[str] = set()
        if checked.get("dangling"):
            used = self._leases.networks_in_use()
        found = [n for n in networks if matches(n, checked, used)]
        return sorted(found, key=lambda n: (n.name, n.id))

    def stored(self) -> builtins.list[Network]:
        """The networks on disk (the default one, once made, and the user networks), without
        making the default one (`list` makes it)."""
        return self._files.stored()

    def lease_holders(self) -> builtins.list[str]:
        """The containers that hold an address on some network (sorted ids)."""
        return self._leases.holders()

    def leases(self, network: Network) -> builtins.list[Lease]:
        """The leases of a network, by address."""
        return self._leases.of_network(network)

    def leases_of(self, container_id: str) -> builtins.list[Lease]:
        """A container's leases, by network name (leases of a network that no longer
        exists are left out)."""
        return self._leases.of_container(container_id, self._files.load)

    def inspect(self, term: str, containers: Mapping[str, str] | None = None) -> dict[str, object]:
        """`docker network inspect`'s shape; `containers` names the containers (id -> name)
        in its Containers section."""
        network = self.get(term)
        leases = () if network.pseudo else self.leases(network)
        return inspect_document(network, leases, containers or {})

    # -- changes ------------------------------------------------------------------------
    def create(
        self,
        name: str,
        *,
        subnet: str = "",
        gateway: str = "",
        ip_range: str = "",
        internal: bool = False,
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        driver: str = DRIVER,
    ) -> Network:
        """A new user network (see the module docstring for the subnet's choice)."""
        check_network_name(name)
        if name in BUILTIN_NAMES:
            raise NetworkConflict(f"network with name {name} already exists")
        check_driver(driver)
        chosen = ipam.parse_subnet(subnet) if subnet else None
        if chosen is None and (gateway or ip_range):
            raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
        gateway_address = ipam.parse_gateway(gateway, chosen) if chosen else None
        pool = ipam.parse_ip_range(ip_range, chosen) if chosen else None
        all_options = dict(options or {})
        mtu = parse_mtu(all_options)
        self.default()  # the default network takes the first free pool, as Docker's does
        with self._host_section(), self._files.lock():
            others = self._files.stored()
            if any(other.name == name for other in others):
                raise NetworkConflict(f"network with name {name} already exists")
            if chosen is not None:
                ipam.check_overlap(chosen, _subnets(others))
            else:
                chosen = self._choose(others)
                gateway_address = chosen.network_address + 1
            assert gateway_address is not None
            network_id = new_network_id()
            network = Network(
                id=network_id, name=name, driver=DRIVER, subnet=str(chosen),
                gateway=str(gateway_address), ip_range=str(pool) if pool else "",
                internal=internal, labels=dict(labels or {}), options=all_options,
                created=utc_now(), bridge=bridge_name(network_id), mtu=mtu,
            )  # fmt: skip
            self._files.write(network)
            self._claim(network)
        network_event(self.root, "create", network)
        return network

    def remove(self, term: str) -> Network:
        """Remove a user network: refused for the pre-defined ones (`PredefinedNetwork`)
        and while containers are connected to it (`NetworkInUse`)."""
        if term in BUILTIN_NAMES:
            raise PredefinedNetwork(f"{term} is a pre-defined network and cannot be removed")
        network = self.get(term)
        if network.builtin:
            raise PredefinedNetwork(
                f"{network.name} is a pre-defined network and cannot be removed"
            )
        with self._files.lock():
            if self._files.load(network.id) is None:
                raise NoSuchNetwork(term)
            holders = [lease.container_id for lease in self.leases(network)]
            if holders:
                raise NetworkInUse(network.name, network.id, self._container_names(holders))
            self._files.unlink(network)
        self._forget(network)
        network_event(self.root, "destroy", network)
        return network

    def prune(self) -> builtins.list[Network]:
        """Remove the user networks that no container is connected to; returns them."""
        removed = []
        with self._files.lock():
            used = self._leases.networks_in_use()
            for network in self._files.stored():
                if not network.builtin and network.id not in used:
                    self._files.unlink(network)
                    removed.append(network)
        for network in removed:
            self._forget(network)
            network_event(self.root, "destroy", network)
        return sorted(removed, key=lambda n: n.name)

    def _forget(self, network: Network) -> None:
        """After a network's record is gone (outside the root's lock: the host-wide one is
        taken first): its claim, its bridge and its entries in the nft sets, if it left any
        (`repair.remove_network_links`). A failure is left to `system check`."""
        if not self._hostwide:
            return
        from cove.engine.network import repair

        with contextlib.suppress(CoveError, OSError):
            repair.remove_network_links(network, self.root)

    def _container_names(self, container_ids: Iterable[str]) -> builtins.list[str]:
        """Container names where the engine's records have them, else short ids."""
        ids = builtins.list(container_ids)
        known: dict[str, str] = {}
        if (Path(self.root) / "containers.db").exists():
            from cove.engine.state import ContainerStore

            with contextlib.suppress(CoveError), ContainerStore(self.root) as store:
                known = {r.id: r.name for r in store.list(all=True)}
        return [known.get(container_id) or container_id[:12] for container_id in ids]

    # -- leases -------------------------------------------------------------------------
    def allocate(
        self,
        network: Network,
        container_id: str,
        *,
        ip: str = "",
        aliases: Sequence[str] = (),
        mac: str = "",
    ) -> Lease:
        """An address on `network` for the container: the lowest free one, or `ip`
        (`AddressInUse` when taken, `IPAMError` when not on the network's subnet or ip
        range). The container's lease when it has one (`IPAMError` if `ip` asks for
        another address). `mac`: its MAC address (default: Docker's, from the address)."""
        if network.pseudo or not network.subnet:
            raise IPAMError(f"network {network.name} (driver {network.driver}) gives out no "
                            "addresses")  # fmt: skip
        if not container_id:
            raise InvalidArgument("allocate: empty container id")
        names = tuple(aliases)
        if not all(isinstance(alias, str) and alias for alias in names):
            raise InvalidArgument(f"invalid network aliases {names!r}: want non-empty names")
        subnet = IPv4Network(network.subnet)
        gateway = IPv4Address(network.gateway)
        pool = IPv4Network(network.ip_range) if network.ip_range else None
        requested = None
        if ip:
            requested = ipam.check_requested(ip, subnet, gateway, pool, network.name)
        with self._files.lock(shared=True):  # the network cannot be removed meanwhile
            if self._files.load(network.id) is None:
                raise NoSuchNetwork(network.name)
            return self._leases.allocate(network, container_id, requested, names,
                                         mac=ipam.parse_mac(mac) if mac else "")  # fmt: skip

    def release(self, network: Network, container_id: str) -> None:
        """Give back the container's address on `network` (nothing when it has none)."""
        self._leases.release(network.id, container_id)

    def release_all(self, container_id: str) -> builtins.list[str]:
        """Give back every address of a container (it is removed); the network ids."""
        return self._leases.release_all(container_id)


def _subnets(networks: Iterable[Network]) -> builtins.list[tuple[str, IPv4Network]]:
    return [(n.name, IPv4Network(n.subnet)) for n in networks if n.subnet]


def _networks(networks: Iterable[Network]) -> builtins.list[IPv4Network]:
    return [subnet for _, subnet in _subnets(networks)]


def network_event(root: str, action: str, network: Network, container_id: str = "") -> None:
    """dockerd's network events: create and destroy, and connect and disconnect (which
    name the container)."""
    from cove.engine import events

    more = {"container": container_id} if container_id else {}
    events.emit_object(root, "network", action, network.id, **more, name=network.name,
                       type=network.driver)  # fmt: skip
