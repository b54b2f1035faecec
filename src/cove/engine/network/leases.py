"""The lease database of the network service (`networks.py`): which container holds which
address on which network.

    <root>/networks/ipam.db      SQLite (WAL): the leases, one row per (network, container):
                                 its address, MAC address and DNS aliases

`allocate` gives a container the lowest free address of the network's pool (its ip range,
or its subnet less the network, broadcast and gateway addresses), or the one asked for. One
SQLite write transaction (BEGIN IMMEDIATE: writers of all processes take turns) reads the
used addresses and inserts the lease, with a UNIQUE (network_id, ip) constraint behind it,
so two processes never get the same address. Allocating again for the same container
returns its lease; `release` is idempotent. sqlite3 is imported on first use.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cove.engine.network import ipam
from cove.engine.network.records import Lease, Network, is_network_id
from cove.errors import AddressInUse, IPAMError, NetworkError

if TYPE_CHECKING:
    import sqlite3

DB_NAME = "ipam.db"
DEFAULT_DB_TIMEOUT = 30.0

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
_COLUMNS = "network_id, container_id, ip, mac, aliases"


class LeaseDB:
    """The leases in the SQLite database at `db_path` (made on first write). One connection,
    shared by the threads of a process (under a lock)."""

    def __init__(self, db_path: Path, timeout: float = DEFAULT_DB_TIMEOUT) -> None:
        self.db_path = db_path
        self.timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._mutex = threading.RLock()

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- reading ------------------------------------------------------------------------
    def networks_in_use(self) -> set[str]:
        """The networks some container holds an address on (ids)."""
        return {row[0] for row in self._rows("SELECT DISTINCT network_id FROM leases")}

    def holders(self) -> list[str]:
        """The containers that hold an address on some network (sorted ids)."""
        return sorted(str(row[0]) for row in self._rows("SELECT DISTINCT container_id FROM leases"))

    def has_leases(self, network_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM leases WHERE network_id = ? LIMIT 1", (network_id,)))

    def of_network(self, network: Network) -> list[Lease]:
        """The leases of a network, by address."""
        rows = self._rows(f"SELECT {_COLUMNS} FROM leases WHERE network_id = ?", (network.id,))
        found = [lease_from_row(row, network) for row in rows]
        return sorted(found, key=lambda lease: IPv4Address(lease.ip))

    def of_container(self, container_id: str, load: Callable[[str], Network | None]) -> list[Lease]:
        """A container's leases, by network name; `load` finds a network by id (leases of a
        network that no longer exists are left out)."""
        rows = self._rows(f"SELECT {_COLUMNS} FROM leases WHERE container_id = ?", (container_id,))
        found = []
        for row in rows:
            network = load(row[0]) if is_network_id(row[0]) else None
            if network is not None:
                found.append((network.name, lease_from_row(row, network)))
        return [lease for _, lease in sorted(found, key=lambda pair: pair[0])]

    # -- changes ------------------------------------------------------------------------
    def allocate(
        self,
        network: Network,
        container_id: str,
        requested: IPv4Address | None,
        aliases: tuple[str, ...],
        mac: str = "",
    ) -> Lease:
        """The container's lease on `network`, made if need be: `requested`, or the lowest
        free address (the caller checked the request against the network)."""
        subnet = IPv4Network(network.subnet)
        gateway = IPv4Address(network.gateway)
        pool = IPv4Network(network.ip_range) if network.ip_range else None
        with self._txn() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM leases WHERE network_id = ? AND container_id = ?",
                (network.id, container_id),
            ).fetchone()
            if row is not None:
                lease = lease_from_row(row, network)
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
                mac=mac or ipam.mac_for(address), aliases=aliases,
            )  # fmt: skip
            conn.execute(
                f"INSERT INTO leases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (lease.network_id, lease.container_id, lease.ip, lease.mac,
                 json.dumps(list(lease.aliases))),
            )  # fmt: skip
        return lease

    def release(self, network_id: str, container_id: str) -> None:
        """Give back the container's address on the network (nothing when it has none)."""
        if not self.db_path.exists():
            return
        with self._txn() as conn:
            conn.execute(
                "DELETE FROM leases WHERE network_id = ? AND container_id = ?",
                (network_id, container_id),
            )

    def release_all(self, container_id: str) -> list[str]:
        """Give back every address of a container; the network ids."""
        if not self.db_path.exists():
            return []
        with self._txn() as conn:
            rows = conn.execute(
                "SELECT network_id FROM leases WHERE container_id = ?", (container_id,)
            ).fetchall()
            conn.execute("DELETE FROM leases WHERE container_id = ?", (container_id,))
        return sorted(row[0] for row in rows)

    # -- the connection -----------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        import sqlite3

        from cove.sqlite_retry import retry_locked

        with self._mutex:
            if self._conn is not None:
                return self._conn
            try:
                self.db_path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.db_path, timeout=self.timeout, isolation_level=None,
                                       check_same_thread=False)  # fmt: skip
            except (OSError, sqlite3.Error) as err:
                raise NetworkError(f"cannot open lease database {self.db_path}: {err}") from None
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), self.timeout)
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

        from cove.sqlite_retry import retry_locked

        with self._mutex:
            conn = self._db()
            try:
                retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), self.timeout)
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

    def _rows(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        import sqlite3

        if not self.db_path.exists():
            return []
        with self._mutex:
            try:
                return self._db().execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as err:
                raise NetworkError(f"cannot read lease database {self.db_path}: {err}") from None


def lease_from_row(row: Sequence[Any], network: Network) -> Lease:
    """A lease from its row (`network_id, container_id, ip, mac, aliases`)."""
    try:
        aliases = tuple(str(alias) for alias in json.loads(row[4] or "[]"))
    except ValueError:
        aliases = ()
    return Lease(network_id=str(row[0]), container_id=str(row[1]), ip=str(row[2]),
                 prefixlen=network.prefixlen, gateway=network.gateway, mac=str(row[3]),
                 aliases=aliases)  # fmt: skip
