"""`cove system boot`: what the host's start-up runs (tools/systemd/cove-boot.service), the
part of Docker's daemon start that restores containers.

1. Stale records first: after a reboot every "running", "paused" or "restarting" record is
   stale (its monitor or restart waiter went down with the host). A record started in
   another boot (`boot_id` in its settings) is stale whatever its pid; one of this boot is
   stale when its monitor is not alive (a `kill -9` of the monitors simulates a reboot).
   Each is cleaned up without applying its restart policy: the exit is recorded (255 when
   unknown), runtime state and mounts are removed.
2. `system check --repair` removes what else the crash left (cgroups, runtime state...).
3. Containers are started by their restart policy (`restart_policy.starts_at_boot`):
   `always` ones, `unless-stopped` ones that were not stopped by hand, `on-failure` ones
   whose last exit was a failure within the limit. Such a start counts as a start by hand
   (Docker: the back-off starts over, "stopped by hand" is forgotten).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cove.engine.container_autorestart import MANUALLY_STOPPED, started_by_hand
from cove.engine.container_start import boot_id, cleanup_container, start_container
from cove.engine.monitor import monitor_alive
from cove.engine.restart_policy import starts_at_boot
from cove.engine.state import ContainerRecord, ContainerStore
from cove.errors import CoveError, NoSuchContainer

REBOOTED = "the host restarted while the container ran: its exit status is unknown"


@dataclass
class BootReport:
    lines: list[str] = field(default_factory=list)
    failed: bool = False


def boot(root: str, *, repair_leftovers: bool = True) -> BootReport:
    report = BootReport()
    store = ContainerStore(root)
    try:
        _repair_records(store, root, report)
        if repair_leftovers:
            from cove.engine.system_check import check

            for finding in check(root, repair=True):
                report.lines.append(finding.line())
                report.failed = report.failed or bool(finding.error)
        _start_by_policy(store, root, report)
    finally:
        store.close()
    return report


def _stale(record: ContainerRecord, this_boot: str) -> str | None:
    """Why `record` is stale ("" for an ordinary dead monitor), None when it is not."""
    if record.status not in ("running", "paused", "restarting"):
        return None
    started_in = str(record.settings.get("boot_id") or "")
    if started_in and this_boot and started_in != this_boot:
        return REBOOTED
    if not monitor_alive(record.monitor_pid, record.monitor_start):
        return ""
    return None


def _repair_records(store: ContainerStore, root: str, report: BootReport) -> None:
    this_boot = boot_id()
    for record in store.list(all=True):
        reason = _stale(record, this_boot)
        if reason is None:
            continue
        try:
            cleanup_container(store, root, record.id, restart=False, monitor_gone=reason)
        except CoveError as exc:
            report.lines.append(f"cannot repair container {record.short_id} ({record.name}): {exc}")
            report.failed = True
            continue
        report.lines.append(
            f"repaired container {record.short_id} ({record.name}): it was {record.status} "
            "but its monitor is gone"
        )


def _start_by_policy(store: ContainerStore, root: str, report: BootReport) -> None:
    for record in reversed(store.list(all=True)):  # oldest first, as they were made
        if record.status != "exited" or not _wanted(record):
            continue
        try:
            with store.lock(record.id):
                current = store.get(record.id)
                if current.status != "exited" or not _wanted(current):
                    continue  # someone started or changed it meanwhile
                current = store.update_state(current.id, settings=started_by_hand(current.settings))
                start_container(store, root, current)
        except NoSuchContainer:
            continue
        except CoveError as exc:
            report.lines.append(f"cannot start container {record.short_id} ({record.name}): {exc}")
            report.failed = True
            continue
        policy = str((record.settings.get("restart_policy") or {}).get("Name") or "no")
        report.lines.append(f"started container {record.short_id} ({record.name}): {policy}")


def _wanted(record: ContainerRecord) -> bool:
    return starts_at_boot(
        record.settings.get("restart_policy"),
        exit_code=record.exit_code,
        restart_count=record.restart_count,
        manually_stopped=bool(record.settings.get(MANUALLY_STOPPED)),
        ever_started=bool(record.started_at),
    )
