"""Container records (`cove.engine.state`): `ContainerRecord`, its row in the SQLite table
`containers` (the schema and the column order), and the `ps --filter` matchers.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cove.errors import InvalidArgument

# "restarting": exited, waiting out the back-off of its restart policy (see
# cove.engine.container_autorestart)
STATUSES = ("created", "running", "paused", "restarting", "exited", "dead")


_HEX = re.compile(r"^[0-9a-f]+$")


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
    log_path TEXT NOT NULL,
    monitor_pid INTEGER NOT NULL DEFAULT 0,
    monitor_start INTEGER NOT NULL DEFAULT 0,
    settings TEXT NOT NULL DEFAULT '{}'
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
    "monitor_pid",
    "monitor_start",
    "settings",
)
# Columns added by schema 2 (the monitor), with their definitions for ALTER TABLE.
ADDED_IN_SCHEMA_2 = (
    ("monitor_pid", "INTEGER NOT NULL DEFAULT 0"),
    ("monitor_start", "INTEGER NOT NULL DEFAULT 0"),
    ("settings", "TEXT NOT NULL DEFAULT '{}'"),
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
        "monitor_pid",
        "monitor_start",
        "settings",
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
    # The monitor supervising the running container: its pid and start time (clock ticks
    # since boot, /proc/PID/stat field 22) so that a recycled pid is never mistaken for it.
    monitor_pid: int = 0
    monitor_start: int = 0
    # Engine settings that are not part of the OCI spec (auto-remove, log options, stop
    # timeout, tty/stdin...): see cove.engine.container_settings.
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        """Docker's State.Running: true for running, paused and restarting containers (what
        `ps` lists without -a)."""
        return self.status in ("running", "paused", "restarting")


def _validate(record: ContainerRecord) -> None:
    if len(record.id) != 64 or not _HEX.match(record.id):
        raise InvalidArgument(f"invalid container id {record.id!r}: want 64 hex digits")
    if record.status not in STATUSES:
        raise InvalidArgument(f"invalid container status {record.status!r}")


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
        int(record.monitor_pid),
        int(record.monitor_start),
        json.dumps(dict(record.settings), sort_keys=True),
    )


def _from_row(row: Sequence[Any]) -> ContainerRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["oom_killed"] = bool(values["oom_killed"])
    values["config"] = json.loads(values["config"])
    values["settings"] = json.loads(values["settings"])
    return ContainerRecord(**values)


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
