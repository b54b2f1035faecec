"""Container records of the engine: one SQLite row per container, plus per-container locks.

    <engine root>/containers.db            SQLite (WAL, busy timeout): table `containers`
    <engine root>/containers/<id>/lock     flock(2) target that serialises commands on one id

Rules:

- Names are unique (a UNIQUE column): of two processes adding the same name at once, exactly
  one wins and the other gets `NameConflict`, docker's message word for word.
- `get(term)` resolves as docker does: a full id, then a name (with or without the leading
  '/'), then a unique id prefix (`AmbiguousContainer` when it matches several).
- Every write is one `BEGIN IMMEDIATE` transaction; SQLite serialises writers across
  processes (busy timeout) and WAL lets readers proceed. A connection may be shared by
  threads: calls are serialised by a lock.
- `lock(id)` is what makes a multi-step command on one container (stop, rm, start...) safe
  against a concurrent one: hold it, re-read the record, act, write the new state. Locks of
  different containers are independent. The lock is not re-entrant (a second `lock(id)` in
  the same process waits for the first). `remove()` deletes the row only: the caller removes
  `container_dir(id)` while still holding the lock, and whoever waited on it finds the
  record gone (`NoSuchContainer`) when it re-reads.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import fcntl
import json
import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from cove.errors import (
    AmbiguousContainer,
    ContainerBusy,
    ContainerStoreError,
    InvalidArgument,
    NameConflict,
    NoSuchContainer,
)

SCHEMA_VERSION = "1"
DB_NAME = "containers.db"
DEFAULT_DB_TIMEOUT = 30.0

STATUSES = ("created", "running", "paused", "exited", "dead")
NAME_PATTERN = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
_HEX = re.compile(r"^[0-9a-f]+$")

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    image_name TEXT NOT NULL,
    created TEXT NOT NULL,
    runtime TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER NOT NULL,
    exit_code INTEGER NOT NULL,
    oom_killed INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    restart_count INTEGER NOT NULL,
    config TEXT NOT NULL,
    bundle TEXT NOT NULL,
    rootfs TEXT NOT NULL,
    log_path TEXT NOT NULL
);
"""

_COLUMNS = (
    "id",
    "name",
    "image_id",
    "image_name",
    "created",
    "runtime",
    "status",
    "pid",
    "exit_code",
    "oom_killed",
    "started_at",
    "finished_at",
    "restart_count",
    "config",
    "bundle",
    "rootfs",
    "log_path",
)
# What update_state() may change; id, name (rename), image and created never change.
MUTABLE_FIELDS = frozenset(
    {
        "status",
        "pid",
        "exit_code",
        "oom_killed",
        "started_at",
        "finished_at",
        "restart_count",
        "config",
        "bundle",
        "rootfs",
        "log_path",
        "runtime",
    }
)


def new_id() -> str:
    """A container id: 64 hex digits from os.urandom(32)."""
    return os.urandom(32).hex()


def utc_now() -> str:
    """The current time as docker writes it: RFC 3339, UTC, nanosecond digits."""
    now = time.time_ns()
    stamp = datetime.fromtimestamp(now // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{now % 1_000_000_000:09d}Z"


@dataclass(frozen=True)
class ContainerRecord:
    """One container as the engine knows it.

    `name` has no leading '/'; "" asks `add` for a random one. `config` is the create options
    as given (JSON-serialisable). Times are RFC 3339 strings, "" while unset.
    """

    id: str
    name: str
    image_id: str
    image_name: str
    created: str = field(default_factory=utc_now)
    runtime: str = "cove"
    status: str = "created"
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    started_at: str = ""
    finished_at: str = ""
    restart_count: int = 0
    config: Mapping[str, Any] = field(default_factory=dict)
    bundle: str = ""
    rootfs: str = ""
    log_path: str = ""

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        """Docker's State.Running: true for running and paused containers."""
        return self.status in ("running", "paused")


def _validate(record: ContainerRecord) -> None:
    if len(record.id) != 64 or not _HEX.match(record.id):
        raise InvalidArgument(f"invalid container id {record.id!r}: want 64 hex digits")
    if record.status not in STATUSES:
        raise InvalidArgument(f"invalid container status {record.status!r}")


def check_name(name: str) -> str:
    """`name` without its leading '/', if docker would accept it."""
    if not NAME_PATTERN.match(name):
        raise InvalidArgument(
            f"invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )
    return name.lstrip("/")


def _to_row(record: ContainerRecord) -> tuple[object, ...]:
    return (
        record.id,
        record.name,
        record.image_id,
        record.image_name,
        record.created,
        record.runtime,
        record.status,
        int(record.pid),
        int(record.exit_code),
        int(bool(record.oom_killed)),
        record.started_at,
        record.finished_at,
        int(record.restart_count),
        json.dumps(dict(record.config), sort_keys=True),
        record.bundle,
        record.rootfs,
        record.log_path,
    )


def _from_row(row: Sequence[Any]) -> ContainerRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["oom_killed"] = bool(values["oom_killed"])
    values["config"] = json.loads(values["config"])
    return ContainerRecord(**values)


# --- random names --------------------------------------------------------------------------

ADJECTIVES = (
    "amber", "brave", "calm", "clever", "cosy", "crisp", "curious", "daring", "eager",
    "earnest", "fancy", "fearless", "festive", "fond", "gallant", "gentle", "glad", "golden",
    "happy", "hardy", "humble", "jolly", "keen", "kind", "lively", "loyal", "lucid", "merry",
    "mellow", "modest", "nimble", "noble", "patient", "plucky", "polite", "proud", "quiet",
    "quick", "rapid", "serene", "sharp", "shiny", "silent", "steady", "sunny", "swift",
    "tender", "upbeat", "vivid", "witty", "zesty",
)  # fmt: skip

SURNAMES = (
    "agnesi", "babbage", "bardeen", "bohr", "boole", "cannon", "carson", "curie", "darwin",
    "dijkstra", "einstein", "euler", "faraday", "fermat", "fermi", "feynman", "franklin",
    "galileo", "gauss", "goodall", "hamilton", "hawking", "hertz", "hodgkin", "hopper",
    "hypatia", "johnson", "kepler", "knuth", "lamarr", "leakey", "lovelace", "maxwell",
    "meitner", "mendel", "morse", "newton", "noether", "pascal", "pasteur", "planck",
    "ritchie", "sagan", "shannon", "tesla", "thompson", "turing", "volta", "wilson", "wozniak",
    "yalow",
)  # fmt: skip


def random_name(rng: random.Random | None = None) -> str:
    """A docker-style name: adjective_surname."""
    pick = rng or random.SystemRandom()
    return f"{pick.choice(ADJECTIVES)}_{pick.choice(SURNAMES)}"


# --- the store -----------------------------------------------------------------------------


def _retry_locked(action: Callable[[], _T], timeout: float) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class ContainerStore:
    """The container records under `<engine root>` (see the module docstring)."""

    def __init__(self, engine_root: str | os.PathLike[str], timeout: float = DEFAULT_DB_TIMEOUT):
        self.root = Path(engine_root)
        self.db_path = self.root / DB_NAME
        self.timeout = timeout
        self._mutex = threading.RLock()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ContainerStoreError(
                f"cannot create engine root {self.root}: {err.strerror}"
            ) from None
        self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.db_path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise ContainerStoreError(
                f"cannot open container database {self.db_path}: {err}"
            ) from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), self.timeout)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
            (schema,) = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            conn.close()
            raise ContainerStoreError(
                f"cannot open container database {self.db_path}: {err}"
            ) from None
        if schema != SCHEMA_VERSION:
            conn.close()
            raise ContainerStoreError(
                f"container database {self.db_path} has schema {schema}, "
                f"this cove knows {SCHEMA_VERSION}"
            )
        return conn

    def close(self) -> None:
        with self._mutex:
            self._conn.close()

    def __enter__(self) -> ContainerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _txn(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on error)."""
        with self._mutex:
            conn = self._conn
            try:
                _retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), self.timeout)
            except sqlite3.Error as err:
                raise ContainerStoreError(
                    f"cannot write container database {self.db_path}: {err}"
                ) from None
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        with self._mutex:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.Error as err:
                raise ContainerStoreError(
                    f"cannot read container database {self.db_path}: {err}"
                ) from None

    # -- paths and locks ----------------------------------------------------------------
    def container_dir(self, container_id: str) -> Path:
        """`<engine root>/containers/<id>`: the container's own files (lock, bundle...)."""
        return self.root / "containers" / container_id

    @contextlib.contextmanager
    def lock(self, container_id: str, timeout: float | None = None) -> Iterator[None]:
        """Hold the container's exclusive lock (flock on `<dir>/lock`) for the block.

        Waits for as long as another holder keeps it, or at most `timeout` seconds
        (`ContainerBusy`). Not re-entrant.
        """
        if len(container_id) != 64 or not _HEX.match(container_id):
            raise InvalidArgument(f"invalid container id {container_id!r}: want 64 hex digits")
        directory = self.container_dir(container_id)
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as err:
            raise ContainerStoreError(
                f"cannot open lock of container {container_id[:12]} in {directory}: {err.strerror}"
            ) from None
        try:
            if timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise ContainerBusy(container_id, timeout) from None
                        time.sleep(0.01)
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the lock

    # -- records ------------------------------------------------------------------------
    def add(self, record: ContainerRecord) -> ContainerRecord:
        """Store a new container; returns it as stored (with its random name, if it had
        none). `NameConflict` when the name is taken."""
        _validate(record)
        if record.name:
            return self._insert(dataclasses.replace(record, name=check_name(record.name)))
        for _ in range(100):
            try:
                return self._insert(dataclasses.replace(record, name=random_name()))
            except NameConflict:
                continue
        # 2500 names are nearly all taken: add a number, as docker does.
        for _ in range(1000):
            name = f"{random_name()}{random.SystemRandom().randrange(10, 100000)}"
            with contextlib.suppress(NameConflict):
                return self._insert(dataclasses.replace(record, name=name))
        raise ContainerStoreError("cannot find a free random container name")

    def _insert(self, record: ContainerRecord) -> ContainerRecord:
        placeholders = ", ".join("?" for _ in _COLUMNS)
        try:
            with self._txn() as conn:
                holder = conn.execute(
                    "SELECT id FROM containers WHERE name = ?", (record.name,)
                ).fetchone()
                if holder is not None:
                    raise NameConflict(record.name, str(holder[0]))
                conn.execute(
                    f"INSERT INTO containers ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                    _to_row(record),
                )
        except sqlite3.IntegrityError as err:
            rows = self._query("SELECT id FROM containers WHERE name = ?", (record.name,))
            if rows:
                raise NameConflict(record.name, str(rows[0][0])) from None
            raise ContainerStoreError(f"cannot add container {record.short_id}: {err}") from None
        except sqlite3.Error as err:
            raise ContainerStoreError(
                f"cannot write container database {self.db_path}: {err}"
            ) from None
        return record

    def _by_id(self, container_id: str) -> ContainerRecord | None:
        rows = self._query(
            f"SELECT {', '.join(_COLUMNS)} FROM containers WHERE id = ?", (container_id,)
        )
        return _from_row(rows[0]) if rows else None

    def get(self, term: str) -> ContainerRecord:
        """The container `term` names: full id, name ('/name' too) or unique id prefix."""
        if not term:
            raise NoSuchContainer(term)
        columns = ", ".join(_COLUMNS)
        if len(term) == 64:
            found = self._by_id(term)
            if found is not None:
                return found
        rows = self._query(
            f"SELECT {columns} FROM containers WHERE name = ?", (term.removeprefix("/"),)
        )
        if rows:
            return _from_row(rows[0])
        if _HEX.match(term):
            rows = self._query(
                f"SELECT {columns} FROM containers WHERE substr(id, 1, ?) = ? "
                "ORDER BY created DESC, rowid DESC",
                (len(term), term),
            )
            if len(rows) == 1:
                return _from_row(rows[0])
            if len(rows) > 1:
                raise AmbiguousContainer(term, [str(row[0]) for row in rows])
        raise NoSuchContainer(term)

    def exists(self, term: str) -> bool:
        try:
            self.get(term)
        except NoSuchContainer:
            return False
        return True

    def list(
        self,
        all: bool = False,
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> builtins.list[ContainerRecord]:
        """Containers, newest first: running and paused ones only unless `all`.

        `filters` as docker's (`--filter KEY=VALUE`; values of one key are OR-ed, keys are
        AND-ed): id (prefix), name (substring; a leading '/' is ignored), status,
        exited (exit code, exited containers only), ancestor (image name or id prefix),
        label (KEY or KEY=VALUE against config["labels"]), runtime, before / since (a
        container, by any term `get` takes).
        """
        rows = self._query(
            f"SELECT {', '.join(_COLUMNS)} FROM containers ORDER BY created DESC, rowid DESC"
        )
        records = [_from_row(row) for row in rows]
        filters = dict(filters or {})
        if not all and "status" not in filters and "exited" not in filters:
            records = [r for r in records if r.running]
        for key, values in filters.items():
            if values:
                records = self._filter(records, key, builtins.list(values))
        return records

    def _filter(
        self, records: builtins.list[ContainerRecord], key: str, values: builtins.list[str]
    ) -> builtins.list[ContainerRecord]:
        if key == "before" or key == "since":
            anchors = [self.get(value) for value in values]
            if key == "before":
                return [r for r in records if all(r.created < a.created for a in anchors)]
            return [r for r in records if all(r.created > a.created for a in anchors)]
        matcher: Callable[[ContainerRecord, str], bool]
        if key == "id":
            matcher = _match_id
        elif key == "name":
            matcher = _match_name
        elif key == "status":
            for value in values:
                if value not in STATUSES:
                    raise InvalidArgument(f"invalid filter 'status={value}'")
            matcher = _match_status
        elif key == "exited":
            matcher = _match_exited
        elif key == "ancestor":
            matcher = _match_ancestor
        elif key == "label":
            matcher = _match_label
        elif key == "runtime":
            matcher = _match_runtime
        else:
            raise InvalidArgument(f"invalid filter {key!r}")
        return [r for r in records if any(matcher(r, value) for value in values)]

    def update_state(self, container_id: str, **fields: Any) -> ContainerRecord:
        """Change the state fields (see MUTABLE_FIELDS) of the container with this full id;
        returns the updated record."""
        unknown = set(fields) - MUTABLE_FIELDS
        if unknown:
            raise TypeError(f"update_state: fields not updatable: {', '.join(sorted(unknown))}")
        if "status" in fields and fields["status"] not in STATUSES:
            raise InvalidArgument(f"invalid container status {fields['status']!r}")
        if not fields:
            return self._require(container_id)
        values: list[object] = []
        for key, value in fields.items():
            if key == "config":
                values.append(json.dumps(dict(value), sort_keys=True))
            elif key == "oom_killed":
                values.append(int(bool(value)))
            else:
                values.append(value)
        assignments = ", ".join(f"{key} = ?" for key in fields)
        try:
            with self._txn() as conn:
                cursor = conn.execute(
                    f"UPDATE containers SET {assignments} WHERE id = ?", (*values, container_id)
                )
                if cursor.rowcount == 0:
                    raise NoSuchContainer(container_id)
        except sqlite3.Error as err:
            raise ContainerStoreError(
                f"cannot update container {container_id[:12]} in {self.db_path}: {err}"
            ) from None
        return self._require(container_id)

    def rename(self, container_id: str, new_name: str) -> ContainerRecord:
        """Give the container with this full id a new name (`NameConflict` if taken)."""
        name = check_name(new_name)
        try:
            with self._txn() as conn:
                holder = conn.execute(
                    "SELECT id FROM containers WHERE name = ?", (name,)
                ).fetchone()
                if holder is not None and holder[0] != container_id:
                    raise NameConflict(name, str(holder[0]))
                cursor = conn.execute(
                    "UPDATE containers SET name = ? WHERE id = ?", (name, container_id)
                )
                if cursor.rowcount == 0:
                    raise NoSuchContainer(container_id)
        except sqlite3.Error as err:
            raise ContainerStoreError(
                f"cannot rename container {container_id[:12]} in {self.db_path}: {err}"
            ) from None
        return self._require(container_id)

    def remove(self, container_id: str) -> None:
        """Delete the record of the container with this full id (its files stay: see the
        module docstring)."""
        try:
            with self._txn() as conn:
                cursor = conn.execute("DELETE FROM containers WHERE id = ?", (container_id,))
                if cursor.rowcount == 0:
                    raise NoSuchContainer(container_id)
        except sqlite3.Error as err:
            raise ContainerStoreError(
                f"cannot remove container {container_id[:12]} from {self.db_path}: {err}"
            ) from None

    def _require(self, container_id: str) -> ContainerRecord:
        found = self._by_id(container_id)
        if found is None:
            raise NoSuchContainer(container_id)
        return found


# --- filters -------------------------------------------------------------------------------


def _match_id(record: ContainerRecord, value: str) -> bool:
    return record.id.startswith(value)


def _match_name(record: ContainerRecord, value: str) -> bool:
    return value.removeprefix("/") in record.name


def _match_status(record: ContainerRecord, value: str) -> bool:
    return record.status == value


def _match_exited(record: ContainerRecord, value: str) -> bool:
    try:
        code = int(value)
    except ValueError:
        raise InvalidArgument(f"invalid filter 'exited={value}'") from None
    return record.status == "exited" and record.exit_code == code


def _match_ancestor(record: ContainerRecord, value: str) -> bool:
    image_hex = record.image_id.removeprefix("sha256:")
    wanted = value.removeprefix("sha256:")
    return value == record.image_name or (len(wanted) >= 4 and image_hex.startswith(wanted))


def _match_label(record: ContainerRecord, value: str) -> bool:
    labels = record.config.get("labels") or {}
    if not isinstance(labels, Mapping):
        return False
    key, eq, wanted = value.partition("=")
    if key not in labels:
        return False
    return not eq or str(labels[key]) == wanted


def _match_runtime(record: ContainerRecord, value: str) -> bool:
    return record.runtime == value
