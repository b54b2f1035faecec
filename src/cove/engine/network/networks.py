"""The network service: Docker's networks with its `bridge` driver (the control plane).

    <root>/networks/<id>.json    what a network is (written atomically)
    <root>/networks/ipam.db      SQLite (WAL): the leases, one row per (network, container):
                                 its address, MAC address and DNS aliases
    <root>/networks/.lock        flock(2): exclusive while a network is created or removed,
                                 shared while an address is given out (so no lease lands
                                 on a network being removed)
    <root>/engine.json           optional engine settings; {"default_subnet": "10.88.0.0/16"}
                                 sets the subnet of the default network "bridge", read once,
                                 when that network is made (on first use)

What a network is, here, is data: its subnet, gateway, bridge name, options. Bridges, veths
and the firewall rules are the data plane's (`attach.py`), which reads these records.

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
- Leases. `allocate` gives a container the lowest free address of the network's pool (its
  ip range, or its subnet less the network, broadcast and gateway addresses), or the one
  asked for. One SQLite write transaction reads the used addresses and inserts the lease
  (with a UNIQUE (network_id, ip) constraint behind it), so two processes never get the
  same address. Allocating again for the same container returns its lease; `release` is
  idempotent. A network with leases cannot be removed (`NetworkInUse`, naming the
  containers); `prune` removes the user networks with none.
- Names follow Docker's rule, [a-zA-Z0-9][a-zA-Z0-9_.-]*; `get` finds a network by full
  id, then name, then unique id prefix.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cove.engine.network import hostwide, ipam
from cove.engine.state_records import utc_now
from cove.errors import (
    AddressInUse,
    AmbiguousNetwork,
    CoveError,
    InvalidArgument,
    IPAMError,
    NetworkConflict,
    NetworkError,
    NetworkInUse,
    NoSuchNetwork,
    PredefinedNetwork,
)

if TYPE_CHECKING:
    import sqlite3

DRIVER = "bridge"
SCOPE = "local"
DEFAULT_NAME = "bridge"
DEFAULT_BRIDGE = "cove0"
STANDARD_ROOT = "/var/lib/cove"
BRIDGE_PREFIX = "cv-"
PSEUDO_DRIVERS = {"host": "host", "none": "null"}  # name -> driver
BUILTIN_NAMES = (DEFAULT_NAME, *PSEUDO_DRIVERS)
MTU_OPTION = "com.docker.network.driver.mtu"
ENGINE_CONFIG = "engine.json"
DB_NAME = "ipam.db"
DEFAULT_DB_TIMEOUT = 30.0
FILTERS = ("dangling", "driver", "id", "label", "name", "type")
NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
_ID = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")
# What Docker's default bridge network says of itself (docker network inspect bridge).
DEFAULT_OPTIONS = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.bridge.name": DEFAULT_BRIDGE,
}

HostNetworks = Callable[[], Iterable[IPv4Network]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS leases (
    network_id TEXT NOT NULL,
    container_id TEXT NOT NULL,
    ip TEXT NOT NULL,
    mac TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (network_id, container_id),
    UNIQUE (network_id, ip)
);
CREATE INDEX IF NOT EXISTS leases_by_container ON leases (container_id);
"""


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
        self._host_networks = host_networks or ipam.host_networks
        # the real host: subnets are chosen under the host-wide lock, with other roots'
        # claims, and a removed network's bridge and set elements go (`hostwide`); a test's
        # stand-in host has none of it unless `host_wide` says so
        self._hostwide = host_networks is None if host_wide is None else host_wide
        self._conn: sqlite3.Connection | None = None
        self._mutex = threading.RLock()

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> NetworkService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the locks and the files --------------------------------------------------------
    def _host_section(self) -> contextlib.AbstractContextManager[int]:
        """The host-wide lock, taken before the root's own (never the other way round)."""
        if not self._hostwide:
            return contextlib.nullcontext(-1)
        return hostwide.optional_lock()

    def _in_use(self) -> builtins.list[IPv4Network]:
        """What a chosen subnet must not overlap besides this root's networks: the host's
        routes and addresses, and the subnets other roots claim. Under `_host_section`."""
        found = builtins.list(self._host_networks())
        if self._hostwide:
            found += hostwide.claimed_by_others(self.root)
        return found

    def _claim(self, network: Network) -> None:
        """Claim the network's subnet host-wide (under `_host_section`)."""
        if self._hostwide and network.subnet:
            with contextlib.suppress(OSError):  # (unprivileged: no bridges either)
                hostwide.claim(self.root, network.id, network.subnet, network.bridge)

    @contextlib.contextmanager
    def _lock(self, shared: bool = False) -> Iterator[None]:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise NetworkError(
                f"cannot open the networks lock in {self.dir}: {err.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the lock

    def _path(self, network_id: str) -> Path:
        return self.dir / f"{network_id}.json"

    def _load(self, network_id: str) -> Network | None:
        path = self._path(network_id)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise NetworkError(f"network {network_id[:12]}: cannot read {path}: {exc}") from None
        try:
            return Network(
                id=network_id, name=str(data["name"]), driver=str(data.get("driver") or DRIVER),
                subnet=str(data["subnet"]), gateway=str(data["gateway"]),
                ip_range=str(data.get("ip_range") or ""), internal=bool(data.get("internal")),
                labels=dict(data.get("labels") or {}), options=dict(data.get("options") or {}),
                created=str(data.get("created") or ""), bridge=str(data["bridge"]),
                mtu=int(data.get("mtu") or 0),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise NetworkError(f"network {network_id[:12]}: malformed {path}: {exc}") from None

    def _stored(self) -> builtins.list[Network]:
        """The networks on disk (the default one and the user networks)."""
        try:
            entries = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise NetworkError(f"cannot list networks in {self.dir}: {exc.strerror}") from None
        found = []
        for entry in entries:
            stem, dot, suffix = entry.partition(".")
            if dot and suffix == "json" and _ID.fullmatch(stem):
                network = self._load(stem)
                if network is not None:
                    found.append(network)
        return found

    def _by_name(self, name: str) -> Network | None:
        return next((n for n in self._stored() if n.name == name), None)

    def _write(self, network: Network) -> None:
        data = {
            "id": network.id, "name": network.name, "driver": network.driver,
            "subnet": network.subnet, "gateway": network.gateway, "ip_range": network.ip_range,
            "internal": network.internal, "labels": dict(network.labels),
            "options": dict(network.options), "created": network.created,
            "bridge": network.bridge, "mtu": network.mtu,
        }  # fmt: skip
        path = self._path(network.id)
        tmp = self.dir / f".{network.id}.json.{os.urandom(4).hex()}"
        try:
            with open(tmp, "w") as file:
                file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise NetworkError(
                f"cannot write network {network.name} to {path}: {exc.strerror}"
            ) from None

    # -- the lease database -------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        import sqlite3

        with self._mutex:
            if self._conn is not None:
                return self._conn
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.db_path, timeout=self.timeout, isolation_level=None,
                                       check_same_thread=False)  # fmt: skip
            except (OSError, sqlite3.Error) as err:
                raise NetworkError(f"cannot open lease database {self.db_path}: {err}") from None
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), self.timeout)
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("BEGIN IMMEDIATE")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                conn.close()
                raise NetworkError(f"cannot open lease database {self.db_path}: {err}") from None
            self._conn = conn
            return conn

    @contextlib.contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers of all processes take turns)."""
        import sqlite3

        with self._mutex:
            conn = self._db()
            try:
                _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), self.timeout)
            except sqlite3.Error as err:
                raise NetworkError(f"cannot write lease database {self.db_path}: {err}") from None
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise NetworkError(f"cannot write lease database {self.db_path}: {err}") from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, params: Sequence[object] = ()) -> builtins.list[Any]:
        import sqlite3

        if not self.db_path.exists():
            return []
        with self._mutex:
            try:
                return self._db().execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as err:
                raise NetworkError(f"cannot read lease database {self.db_path}: {err}") from None

    # -- reading ------------------------------------------------------------------------
    def default(self) -> Network:
        """The default network "bridge", made on first use (see the module docstring)."""
        found = self._by_name(DEFAULT_NAME)
        if found is not None:
            return found
        configured = self._configured_default_subnet()
        with self._host_section(), self._lock():
            found = self._by_name(DEFAULT_NAME)
            if found is not None:
                return found
            others = self._stored()
            if configured is not None:
                ipam.check_overlap(configured, _subnets(others))
                subnet = configured
            else:
                subnet = ipam.choose_subnet(_networks(others), self._in_use())
            network_id = _new_id()
            # "cove0" for the engine's standard root; another root (a test's, a second
            # engine's) gets its own bridge, or two roots would fight over one interface.
            standard = os.path.realpath(str(self.root)) == STANDARD_ROOT
            bridge = DEFAULT_BRIDGE if standard else bridge_name(network_id)
            network = Network(
                id=network_id, name=DEFAULT_NAME, subnet=str(subnet),
                gateway=str(subnet.network_address + 1),
                options={**DEFAULT_OPTIONS, "com.docker.network.bridge.name": bridge},
                created=utc_now(), bridge=bridge,
            )  # fmt: skip
            self._write(network)
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
            network = self._load(network.id) or network  # (another start may have moved it)
            if os.path.exists(f"/sys/class/net/{network.bridge}"):
                return network  # up meanwhile (a start of another of its containers)
            if network.name == DEFAULT_NAME:
                network = self._move_if_taken(network)
            self._claim(network)
        return network

    def _move_if_taken(self, network: Network) -> Network:
        in_use = self._in_use()
        subnet = IPv4Network(network.subnet)
        if not any(subnet.overlaps(other) for other in in_use):
            return network
        if self._configured_default_subnet() is not None:
            return network  # the engine's settings say so: kept, as given subnets are
        with self._lock():
            current = self._load(network.id)
            if current is None or current.subnet != network.subnet:
                return current or network
            if self._rows("SELECT 1 FROM leases WHERE network_id = ? LIMIT 1", (network.id,)):
                return network
            others = [n for n in self._stored() if n.id != network.id]
            chosen = ipam.choose_subnet(_networks(others), in_use)
            moved = dataclasses.replace(network, subnet=str(chosen),
                                        gateway=str(chosen.network_address + 1))  # fmt: skip
            self._write(moved)
        return moved

    def _configured_default_subnet(self) -> IPv4Network | None:
        path = Path(self.root) / ENGINE_CONFIG
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

    def get(self, term: str) -> Network:
        """The network `term` names: full id, name, or unique id prefix (`NoSuchNetwork`,
        `AmbiguousNetwork`)."""
        if not term:
            raise NoSuchNetwork(term)
        if term == DEFAULT_NAME:
            return self.default()
        if term in PSEUDO_DRIVERS:
            return pseudo_network(term)
        candidates = [*self._stored(), *map(pseudo_network, PSEUDO_DRIVERS)]
        for network in candidates:
            if network.id == term:
                return network
        for network in candidates:
            if network.name == term:
                return network
        if _HEX.fullmatch(term):
            matches = [network for network in candidates if network.id.startswith(term)]
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise AmbiguousNetwork(term, [network.id for network in matches])
        raise NoSuchNetwork(term)

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> builtins.list[Network]:
        """Every network, by name: the default one (made if need be), host, none and the
        user networks. `filters` as `docker network ls --filter`: name (a regular
        expression searched in the name), id (a prefix), label (KEY or KEY=VALUE; all must
        match), driver, type (builtin|custom), dangling (true: user networks without
        containers; false: the others). Values of one key are OR-ed except label's."""
        filters = {key: builtins.list(values) for key, values in (filters or {}).items()}
        for key, values in filters.items():
            if key not in FILTERS:
                raise InvalidArgument(f"invalid filter {key!r} (networks take "
                                      f"{', '.join(FILTERS)})")  # fmt: skip
            for value in values:
                if key == "type" and value not in ("builtin", "custom"):
                    raise InvalidArgument(f"invalid filter 'type={value}' (builtin or custom)")
                if key == "dangling" and value.lower() not in ("true", "1", "false", "0"):
                    raise InvalidArgument(f"invalid filter 'dangling={value}' (true or false)")
        self.default()
        networks = [*self._stored(), *map(pseudo_network, PSEUDO_DRIVERS)]
        used: set[str] = set()
        if filters.get("dangling"):
            used = {row[0] for row in self._rows("SELECT DISTINCT network_id FROM leases")}
        found = [n for n in networks if _matches(n, filters, used)]
        return sorted(found, key=lambda n: (n.name, n.id))

    def stored(self) -> builtins.list[Network]:
        """The networks on disk (the default one, once made, and the user networks), without
        making the default one (`list` makes it)."""
        return self._stored()

    def lease_holders(self) -> builtins.list[str]:
        """The containers that hold an address on some network (sorted ids)."""
        return sorted(str(row[0]) for row in self._rows("SELECT DISTINCT container_id FROM leases"))

    def leases(self, network: Network) -> builtins.list[Lease]:
        """The leases of a network, by address."""
        rows = self._rows(
            "SELECT network_id, container_id, ip, mac, aliases FROM leases WHERE network_id = ?",
            (network.id,),
        )
        found = [_lease(row, network) for row in rows]
        return sorted(found, key=lambda lease: IPv4Address(lease.ip))

    def leases_of(self, container_id: str) -> builtins.list[Lease]:
        """A container's leases, by network name (leases of a network that no longer
        exists are left out)."""
        rows = self._rows(
            "SELECT network_id, container_id, ip, mac, aliases FROM leases WHERE container_id = ?",
            (container_id,),
        )
        found = []
        for row in rows:
            network = self._load(row[0]) if _ID.fullmatch(row[0]) else None
            if network is not None:
                found.append((network.name, _lease(row, network)))
        return [lease for _, lease in sorted(found, key=lambda pair: pair[0])]

    def inspect(self, term: str, containers: Mapping[str, str] | None = None) -> dict[str, object]:
        """`docker network inspect`'s shape; `containers` names the containers (id -> name)
        in its Containers section."""
        network = self.get(term)
        names = containers or {}
        config: builtins.list[dict[str, str]] = []
        if network.subnet:
            entry = {"Subnet": network.subnet}
            if network.ip_range:
                entry["IPRange"] = network.ip_range
            entry["Gateway"] = network.gateway
            config.append(entry)
        attached: dict[str, object] = {}
        if not network.pseudo:
            for lease in self.leases(network):
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
        _check_driver(driver)
        chosen = ipam.parse_subnet(subnet) if subnet else None
        if chosen is None and (gateway or ip_range):
            raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
        gateway_address = ipam.parse_gateway(gateway, chosen) if chosen else None
        pool = ipam.parse_ip_range(ip_range, chosen) if chosen else None
        all_options = dict(options or {})
        mtu = _mtu(all_options)
        self.default()  # the default network takes the first free pool, as Docker's does
        with self._host_section(), self._lock():
            others = self._stored()
            if any(other.name == name for other in others):
                raise NetworkConflict(f"network with name {name} already exists")
            if chosen is not None:
                ipam.check_overlap(chosen, _subnets(others))
            else:
                chosen = ipam.choose_subnet(_networks(others), self._in_use())
                gateway_address = chosen.network_address + 1
            assert gateway_address is not None
            network_id = _new_id()
            network = Network(
                id=network_id, name=name, driver=DRIVER, subnet=str(chosen),
                gateway=str(gateway_address), ip_range=str(pool) if pool else "",
                internal=internal, labels=dict(labels or {}), options=all_options,
                created=utc_now(), bridge=bridge_name(network_id), mtu=mtu,
            )  # fmt: skip
            self._write(network)
            self._claim(network)
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
        with self._lock():
            if self._load(network.id) is None:
                raise NoSuchNetwork(term)
            holders = [lease.container_id for lease in self.leases(network)]
            if holders:
                raise NetworkInUse(network.name, network.id, self._container_names(holders))
            self._unlink(network)
        self._forget(network)
        return network

    def prune(self) -> builtins.list[Network]:
        """Remove the user networks that no container is connected to; returns them."""
        removed = []
        with self._lock():
            used = {row[0] for row in self._rows("SELECT DISTINCT network_id FROM leases")}
            for network in self._stored():
                if not network.builtin and network.id not in used:
                    self._unlink(network)
                    removed.append(network)
        for network in removed:
            self._forget(network)
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

    def _unlink(self, network: Network) -> None:
        try:
            os.unlink(self._path(network.id))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise NetworkError(f"cannot remove network {network.name}: {exc.strerror}") from None

    def _container_names(self, container_ids: Iterable[str]) -> builtins.list[str]:
        """Container names where the engine's records have them, else short ids."""
        ids = builtins.list(container_ids)
        known: dict[str, str] = {}
        if (Path(self.root) / "containers.db").exists():
            from cove.engine.state import ContainerStore
            from cove.errors import CoveError

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
    ) -> Lease:
        """An address on `network` for the container: the lowest free one, or `ip`
        (`AddressInUse` when taken, `IPAMError` when not on the network's subnet or ip
        range). The container's lease when it has one (`IPAMError` if `ip` asks for
        another address)."""
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
        with self._lock(shared=True):  # the network cannot be removed meanwhile
            if self._load(network.id) is None:
                raise NoSuchNetwork(network.name)
            with self._txn() as conn:
                row = conn.execute(
                    "SELECT network_id, container_id, ip, mac, aliases FROM leases "
                    "WHERE network_id = ? AND container_id = ?",
                    (network.id, container_id),
                ).fetchone()
                if row is not None:
                    lease = _lease(row, network)
                    if requested is not None and str(requested) != lease.ip:
                        raise IPAMError(
                            f"container {container_id[:12]} already has address {lease.ip} "
                            f"on network {network.name}"
                        )
                    return lease
                used = {
                    int(IPv4Address(value))
                    for (value,) in conn.execute(
                        "SELECT ip FROM leases WHERE network_id = ?", (network.id,)
                    )
                }
                if requested is not None:
                    if int(requested) in used:
                        raise AddressInUse(str(requested), network.name)
                    address = requested
                else:
                    found = ipam.first_free(subnet, gateway, pool, used)
                    if found is None:
                        raise IPAMError(
                            "no available IPv4 addresses on this network's address pools: "
                            f"{network.name} ({network.id[:12]})"
                        )
                    address = found
                lease = Lease(
                    network_id=network.id, container_id=container_id, ip=str(address),
                    prefixlen=subnet.prefixlen, gateway=network.gateway,
                    mac=ipam.mac_for(address), aliases=names,
                )  # fmt: skip
                conn.execute(
                    "INSERT INTO leases (network_id, container_id, ip, mac, aliases) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (lease.network_id, lease.container_id, lease.ip, lease.mac,
                     json.dumps(builtins.list(lease.aliases))),
                )  # fmt: skip
        return lease

    def release(self, network: Network, container_id: str) -> None:
        """Give back the container's address on `network` (nothing when it has none)."""
        if not self.db_path.exists():
            return
        with self._txn() as conn:
            conn.execute(
                "DELETE FROM leases WHERE network_id = ? AND container_id = ?",
                (network.id, container_id),
            )

    def release_all(self, container_id: str) -> builtins.list[str]:
        """Give back every address of a container (it is removed); the network ids."""
        if not self.db_path.exists():
            return []
        with self._txn() as conn:
            rows = conn.execute(
                "SELECT network_id FROM leases WHERE container_id = ?", (container_id,)
            ).fetchall()
            conn.execute("DELETE FROM leases WHERE container_id = ?", (container_id,))
        return sorted(row[0] for row in rows)


_EPOCH = "0001-01-01T00:00:00Z"  # Go's zero time, what Docker shows for host and none


def _new_id() -> str:
    return os.urandom(32).hex()


def _subnets(networks: Iterable[Network]) -> builtins.list[tuple[str, IPv4Network]]:
    return [(n.name, IPv4Network(n.subnet)) for n in networks if n.subnet]


def _networks(networks: Iterable[Network]) -> builtins.list[IPv4Network]:
    return [subnet for _, subnet in _subnets(networks)]


def _lease(row: Sequence[Any], network: Network) -> Lease:
    try:
        aliases = tuple(str(alias) for alias in json.loads(row[4] or "[]"))
    except ValueError:
        aliases = ()
    return Lease(network_id=str(row[0]), container_id=str(row[1]), ip=str(row[2]),
                 prefixlen=network.prefixlen, gateway=network.gateway, mac=str(row[3]),
                 aliases=aliases)  # fmt: skip


def _check_driver(driver: str) -> None:
    if driver in ("", DRIVER):
        return
    if driver in ("host", "null", "none"):
        shown = "null" if driver == "none" else driver
        raise PredefinedNetwork(f'only one instance of "{shown}" network is allowed')
    raise InvalidArgument(f"network driver {driver!r} is not supported: cove has only 'bridge'")


def _mtu(options: Mapping[str, str]) -> int:
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


def _matches(network: Network, filters: Mapping[str, Sequence[str]], used: set[str]) -> bool:
    for key, values in filters.items():
        if not values:
            continue
        if key == "name":
            if not any(_search(value, network.name) for value in values):
                return False
        elif key == "id":
            if not any(network.id.startswith(value) for value in values):
                return False
        elif key == "driver":
            if network.driver not in values:
                return False
        elif key == "type":
            if ("builtin" if network.builtin else "custom") not in values:
                return False
        elif key == "label":
            if not all(_label_matches(network, value) for value in values):
                return False
        elif key == "dangling":
            dangling = not network.builtin and network.id not in used
            if dangling not in {value.lower() in ("true", "1") for value in values}:
                return False
    return True


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return pattern in text


def _label_matches(network: Network, text: str) -> bool:
    key, eq, wanted = text.partition("=")
    return key in network.labels and (not eq or network.labels[key] == wanted)


def _retry_locked(action: Callable[[], object], timeout: float) -> None:
    import sqlite3
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
