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
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cove.engine.state_names import ADJECTIVES as ADJECTIVES
from cove.engine.state_names import NAME_PATTERN as NAME_PATTERN
from cove.engine.state_names import SURNAMES as SURNAMES
from cove.engine.state_names import check_name as check_name
from cove.engine.state_names import random_name as random_name
from cove.engine.state_records import _COLUMNS as _COLUMNS
from cove.engine.state_records import _HEX as _HEX
from cove.engine.state_records import _SCHEMA as _SCHEMA
from cove.engine.state_records import ADDED_IN_SCHEMA_2
from cove.engine.state_records import MUTABLE_FIELDS as MUTABLE_FIELDS
from cove.engine.state_records import STATUSES as STATUSES
from cove.engine.state_records import ContainerRecord as ContainerRecord
from cove.engine.state_records import _from_row as _from_row
from cove.engine.state_records import _match_ancestor as _match_ancestor
from cove.engine.state_records import _match_exited as _match_exited
from cove.engine.state_records import _match_id as _match_id
from cove.engine.state_records import _match_label as _match_label
from cove.engine.state_records import _match_name as _match_name
from cove.engine.state_records import _match_runtime as _match_runtime
from cove.engine.state_records import _match_status as _match_status
from cove.engine.state_records import _to_row as _to_row
from cove.engine.state_records import _validate as _validate
from cove.engine.state_records import new_id as new_id
from cove.engine.state_records import utc_now as utc_now
from cove.errors import (
    AmbiguousContainer,
    ContainerBusy,
    ContainerStoreError,
    InvalidArgument,
    NameConflict,
    NoSuchContainer,
)
from cove.sqlite_retry import retry_locked

SCHEMA_VERSION = "2"
DB_NAME = "containers.db"
DEFAULT_DB_TIMEOUT = 30.0


# --- the store -----------------------------------------------------------------------------


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
            retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), self.timeout)
            # WAL with synchronous NORMAL: a commit survives a crash (kill -9) of any process;
            # only a power loss may undo the last commits. FULL would fsync every commit.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,)
            )
            (schema,) = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if schema == "1":  # schema 2 added the monitor's columns: add them in place
                have = {row[1] for row in conn.execute("PRAGMA table_info(containers)")}
                for column, definition in ADDED_IN_SCHEMA_2:
                    if column not in have:
                        conn.execute(f"ALTER TABLE containers ADD COLUMN {column} {definition}")
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
                schema = SCHEMA_VERSION
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
                retry_locked(lambda: conn.execute("BEGIN IMMEDIATE"), self.timeout)
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
            try:
                fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except FileNotFoundError:
                # The folder is gone: the container was removed meanwhile (making the folder
                # again would leave it behind), unless its record is there (made by an
                # older cove without one).
                if not self.exists(container_id):
                    raise NoSuchContainer(container_id) from None
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
        if key == "label":  # Docker's: every label given must match (other keys: any value)
            return [r for r in records if all(matcher(r, value) for value in values)]
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
            if key in ("config", "settings"):
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
