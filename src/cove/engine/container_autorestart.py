"""Restart policies applied: what happens between a container's exit and its restart.

The clean-up of an exit (`container_start.cleanup_container`, run by the monitor's exit
command or by whichever command notices the exit first) decides under the container's lock
(`restart_policy.decide`). To restart, it records the container "restarting" (RestartCount
+ 1, the back-off in the settings) and spawns a waiter, `cove container cleanup --restart-at
T ID`, recorded in the record's monitor_pid/monitor_start: nothing holds the lock or blocks
a command while it sleeps. The waiter then takes the lock, checks that the record still
names it as the waiter of a "restarting" container (a stop, kill, rm or start in between
changed that), and starts it (`start_container`): a new monitor supervises the new run.

    step  who                 what
    1     cleanup (locked)    exit recorded; decide; status "restarting", count + 1
    2     cleanup (locked)    spawn the waiter W (own session); monitor_pid = W
    3     W (no lock)         sleep until T (CLOCK_MONOTONIC, the back-off after step 1)
    4     W (locked)          still "restarting" and monitor_pid == W? start_container
    -     stop/kill/rm -f     (locked) mark "stopped by hand"; if "restarting": kill W,
                              status "exited": the pending restart is cancelled

A waiter that died (kill -9, a reboot) leaves a "restarting" record whose monitor_pid is
not alive: the next clean-up spawns a new waiter (or, at boot, leaves it to the boot).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from cove.engine.monitor import cove_command, monitor_alive, process_start_time
from cove.engine.restart_policy import Decision, decide
from cove.engine.state import ContainerRecord, ContainerStore
from cove.errors import CoveError, NoSuchContainer

MANUALLY_STOPPED = "manually_stopped"  # settings key: Docker's HasBeenManuallyStopped
BACKOFF = "restart_backoff_ms"  # settings key: the back-off of the last restart
RESTARTING = "restarting"


def decision_for(record: ContainerRecord, exit_code: int, finished_at: str) -> Decision:
    """Docker's decision for `record`, which exited with `exit_code` at `finished_at`."""
    from cove.engine.container_logs import parse_timestamp

    started = parse_timestamp(record.started_at) if record.started_at else None
    finished = parse_timestamp(finished_at) if finished_at else None
    if finished is None:
        finished = time.time_ns()
    ran = finished - started if started is not None else 0
    settings = record.settings
    return decide(
        settings.get("restart_policy"),
        exit_code=exit_code,
        restart_count=record.restart_count,
        manually_stopped=bool(settings.get(MANUALLY_STOPPED)),
        ran_ns=max(ran, 0),
        backoff_ms=_int(settings.get(BACKOFF)),
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def schedule(
    store: ContainerStore, root: str, record: ContainerRecord, delay_ms: int
) -> ContainerRecord:
    """Spawn the waiter of a "restarting" `record` and record it (the caller holds the
    lock). If no waiter can be started the container stays exited, with the reason."""
    deadline = time.monotonic_ns() + delay_ms * 1_000_000
    try:
        pid = spawn_waiter(root, record.id, deadline)
    except OSError as exc:
        return give_up(store, record, f"cannot restart: {exc.strerror or exc}")
    return store.update_state(record.id, monitor_pid=pid, monitor_start=process_start_time(pid))


def spawn_waiter(root: str, container_id: str, deadline_ns: int) -> int:
    """Start `cove container cleanup --restart-at DEADLINE ID` in a session of its own, not
    waited for (a subprocess, not a fork: the caller may be a threaded server)."""
    argv = [*cove_command(), "--root", root, "container", "cleanup",
            "--restart-at", str(deadline_ns), container_id]  # fmt: skip
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True, cwd="/",
    )  # fmt: skip
    return process.pid


def give_up(store: ContainerStore, record: ContainerRecord, reason: str) -> ContainerRecord:
    """The restart cannot happen: the container stays exited, `reason` as its State.Error."""
    return stay_exited(store, record, {**record.settings, "error": reason})


def stay_exited(
    store: ContainerStore, record: ContainerRecord, settings: Mapping[str, Any] | None = None
) -> ContainerRecord:
    """A "restarting" container that will not restart is "exited" (its volumes released)."""
    from cove.engine.volumes import volume_service

    updated = store.update_state(
        record.id, status="exited", pid=0, monitor_pid=0, monitor_start=0,
        settings=record.settings if settings is None else settings,
    )  # fmt: skip
    volume_service(store).release(updated)
    return updated


def wait_and_restart(store: ContainerStore, root: str, container_id: str, deadline_ns: int) -> None:
    """The waiter (step 3 and 4 of the module docstring)."""
    from cove.engine.container_start import start_container

    left = deadline_ns - time.monotonic_ns()
    if left > 0:
        time.sleep(left / 1e9)
    if not store.exists(container_id):
        return
    gone = False
    with store.lock(container_id):
        try:
            record = store.get(container_id)
        except NoSuchContainer:
            gone = True  # removed while we took the lock
        else:
            if record.status != RESTARTING or record.monitor_pid != os.getpid():
                return  # stopped, removed, started by hand, or another waiter took over
            try:
                started, _ = start_container(store, root, record)
            except CoveError as exc:
                give_up(store, store.get(container_id), f"restart failed: {exc}")
            else:
                from cove.engine import events

                events.emit(root, "restart", started)
    if gone:  # the lock re-made the folder of a removed container
        shutil.rmtree(store.container_dir(container_id), ignore_errors=True)


def cancel(store: ContainerStore, record: ContainerRecord) -> ContainerRecord:
    """Cancel the pending restart of a "restarting" `record` (the caller holds the lock): its
    waiter is killed, the container stays exited and counts as stopped by hand."""
    if record.monitor_pid != os.getpid() and monitor_alive(
        record.monitor_pid, record.monitor_start
    ):
        try:
            os.kill(record.monitor_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return stay_exited(store, record, {**record.settings, MANUALLY_STOPPED: True})


def mark_stopped_by_hand(store: ContainerStore, container_id: str) -> ContainerRecord:
    """Before a stop, a kill or an rm -f: no restart policy applies to the exit that follows;
    a pending restart is cancelled. Returns the container as it is now."""
    with store.lock(container_id):
        record = store.get(container_id)
        if record.status == RESTARTING:
            return cancel(store, record)
        if record.settings.get(MANUALLY_STOPPED):
            return record
        settings = {**record.settings, MANUALLY_STOPPED: True}
        return store.update_state(record.id, settings=settings)


def started_by_hand(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings of a container started by hand (start, restart, boot): not stopped by
    hand any more, the back-off starts over."""
    fresh = dict(settings)
    fresh.pop(MANUALLY_STOPPED, None)
    fresh.pop(BACKOFF, None)
    return fresh
