"""The STATUS column of `docker ps` ("Up 5 seconds", "Exited (0) 2 hours ago", ...) and
Go's human durations it is written in.

Kept apart from `container_inspect` so that `cove ps` loads only this.
"""

from __future__ import annotations

import time

from cove.engine.container_logs import NS, parse_timestamp

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.state_records import ContainerRecord


def human_duration(duration_ns: int) -> str:
    """Go's units.HumanDuration: "Less than a second", "About a minute", "3 hours", ..."""
    seconds = int(duration_ns / NS)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = int(duration_ns / (60 * NS))
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(duration_ns / (3600 * NS) + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{int(duration_ns / (3600 * NS)) // (24 * 365)} years"


def _since(stamp: str, now_ns: int) -> str:
    """How long ago `stamp` was ("" or unreadable: just now)."""
    when = parse_timestamp(stamp) if stamp else None
    return human_duration(now_ns - (now_ns if when is None else when))


def status_text(record: ContainerRecord, now_ns: int | None = None, health: str = "") -> str:
    """The STATUS column of `docker ps`: "Created", "Up 5 seconds", "Up 3 minutes (Paused)",
    "Up 1 minute (healthy)" (`health`: State.Health.Status), "Restarting (1) 2 seconds ago",
    "Exited (0) 2 hours ago", "Dead"."""
    now = time.time_ns() if now_ns is None else now_ns
    if record.status == "running":
        if health:
            shown = "health: starting" if health == "starting" else health
            return f"Up {_since(record.started_at, now)} ({shown})"
        return f"Up {_since(record.started_at, now)}"
    if record.status == "restarting":
        return f"Restarting ({record.exit_code}) {_since(record.finished_at, now)} ago"
    if record.status == "paused":
        return f"Up {_since(record.started_at, now)} (Paused)"
    if record.status == "dead":
        return "Dead"
    if record.status == "exited":
        if not record.finished_at:
            return f"Exited ({record.exit_code})"
        return f"Exited ({record.exit_code}) {_since(record.finished_at, now)} ago"
    return "Created"
