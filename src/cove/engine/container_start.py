"""`start`: mount a created (or exited) container's snapshot, create it under a monitor,
start it; and `cleanup`: what happens after its init exits (the monitor's exit command, or
the foreground `cove run`, or any command that finds a container whose monitor is gone)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

from cove.engine.attach import AttachClient
from cove.engine.container_create import (
    RunSettings,
    check_log_opts,
    forget,
    snapshot_key,
)
from cove.engine.monitor import (
    Launched,
    MonitorOptions,
    attach_socket_path,
    cove_command,
    exit_file_path,
    launch,
    monitor_alive,
    read_exit_file,
)
from cove.engine.oci_runtime import runtime_for
from cove.engine.state import ContainerRecord, ContainerStore, utc_now
from cove.errors import CoveError, InvalidState, NoSuchContainer, RuntimeFailed
from cove.image.snapshot import choose_snapshotter

LOST_EXIT_CODE = 255  # docker's code for "the exit status could not be known"


def start_container(
    store: ContainerStore,
    root: str,
    record: ContainerRecord,
    *,
    attach: bool = False,
    warn: Callable[[str], None] | None = None,
) -> tuple[ContainerRecord, AttachClient | None]:
    """Start `record` (the caller holds its lock). With `attach`, an attach client is
    connected (and has handed off the clean-up) before init is released, so no output is
    missed; the caller pumps it."""
    if not record.bundle:  # a bundle "" would be the current folder
        raise InvalidState(
            f"container {record.short_id} was not completely created (its create was "
            "interrupted): remove it"
        )
    settings = RunSettings.from_json(record.settings)
    container_dir = store.container_dir(record.id)
    exit_file_path(container_dir).unlink(missing_ok=True)
    snapshots = choose_snapshotter(root)
    key = snapshot_key(record.id)
    if not snapshots.mounted(key):
        snapshots.mount(key)
    runtime = runtime_for(record.runtime, root)
    if (Path(runtime.root) / record.id).exists():  # a crash left runtime state behind
        _delete_quietly(runtime, record.id)
    size, files = check_log_opts(settings.log_opts or {})
    try:
        launched = launch(runtime, MonitorOptions(
            container_id=record.id, bundle=Path(record.bundle), container_dir=container_dir,
            tty=settings.tty, stdin=settings.stdin, log_max_size=size, log_max_file=files,
            exit_command=[*cove_command(), "--root", root, "container", "cleanup", record.id],
        ))  # fmt: skip
    except BaseException:
        _delete_quietly(runtime, record.id)
        snapshots.unmount(record.rootfs)
        raise
    for message in launched.warnings:
        if warn is not None:
            warn(message)
    record = store.update_state(
        record.id, status="running", pid=launched.container_pid, exit_code=0,
        oom_killed=False, started_at=utc_now(), finished_at="",
        monitor_pid=launched.monitor_pid, monitor_start=launched.monitor_start,
    )  # fmt: skip
    client = None
    try:
        if attach:
            client = AttachClient(attach_socket_path(record.id))
            client.handoff()
        runtime.start(record.id)
    except BaseException:
        if client is not None:
            client.close()
        _abandon(runtime, launched, record.id)
        _finish(store, root, record, LOST_EXIT_CODE, oom=False, error_text="start failed")
        raise
    return record, client


def _abandon(runtime: object, launched: Launched, container_id: str) -> None:
    from cove.engine.monitor import wait_for_exit

    _delete_quietly(runtime, container_id)
    if not wait_for_exit(launched.monitor_pid, launched.monitor_start, 5):
        try:
            os.kill(launched.monitor_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _delete_quietly(runtime: object, container_id: str) -> None:
    from cove.engine.oci_runtime import OCIRuntime

    assert isinstance(runtime, OCIRuntime)
    try:
        runtime.delete(container_id, force=True)
    except RuntimeFailed:
        pass


def needs_cleanup(store: ContainerStore, record: ContainerRecord) -> bool:
    """A running or paused record whose init has exited (exit file) or lost its monitor."""
    if record.status not in ("running", "paused"):
        return False
    if exit_file_path(store.container_dir(record.id)).exists():
        return True
    return not monitor_alive(record.monitor_pid, record.monitor_start)


def cleanup_container(
    store: ContainerStore, root: str, container_id: str
) -> ContainerRecord | None:
    """Record the exit of a container whose init is gone: exit code, OOM kill, runtime state
    deleted, root filesystem unmounted (its changes stay), `--rm` applied. Idempotent; does
    nothing while the container runs. None when the container is gone (or was removed)."""
    try:
        with store.lock(container_id):
            try:
                record = store.get(container_id)
            except NoSuchContainer:
                return None
            if record.status not in ("running", "paused"):
                return record
            status = read_exit_file(exit_file_path(store.container_dir(record.id)))
            error_text = ""
            if status is None:
                if monitor_alive(record.monitor_pid, record.monitor_start):
                    return record  # still running
                error_text = "the container's monitor died: its exit status is unknown"
                exit_code = LOST_EXIT_CODE
                _kill_lost(root, record)
            else:
                exit_code = status.exit_code
            oom = _oom_killed(record)
            return _finish(store, root, record, exit_code, oom=oom, error_text=error_text,
                           finished_at=status.finished_at if status else "")  # fmt: skip
    except NoSuchContainer:
        return None


def _finish(
    store: ContainerStore,
    root: str,
    record: ContainerRecord,
    exit_code: int,
    *,
    oom: bool,
    error_text: str = "",
    finished_at: str = "",
) -> ContainerRecord | None:
    runtime = runtime_for(record.runtime, root)
    _delete_quietly(runtime, record.id)
    snapshots = choose_snapshotter(root)
    snapshots.unmount(record.rootfs)
    settings = dict(record.settings)
    if error_text:
        settings["error"] = error_text
    else:
        settings.pop("error", None)
    updated = store.update_state(
        record.id, status="exited", pid=0, monitor_pid=0, monitor_start=0,
        exit_code=exit_code, oom_killed=oom, finished_at=finished_at or utc_now(),
        settings=settings,
    )  # fmt: skip
    if RunSettings.from_json(settings).auto_remove:
        remove_files(store, root, record.id)
        return None
    return updated


def remove_files(store: ContainerStore, root: str, container_id: str) -> None:
    """The snapshot (with the container's changes), the record and the folder."""
    choose_snapshotter(root).remove(snapshot_key(container_id))
    forget(store, container_id)


def _oom_killed(record: ContainerRecord) -> bool:
    from cove.engine.oci_runtime_cgroups import oom_kill_count

    try:
        spec = json.loads((Path(record.bundle) / "config.json").read_text())
        path = spec.get("linux", {}).get("cgroupsPath") or f"/cove/{record.id}"
    except (OSError, ValueError):
        path = f"/cove/{record.id}"
    return oom_kill_count(path) > 0


def _kill_lost(root: str, record: ContainerRecord) -> None:
    """An unsupervised init (its monitor died) cannot be logged or waited for: stop it."""
    try:
        runtime_for(record.runtime, root).kill(record.id, signal.SIGKILL, all=True)
    except CoveError:
        pass
