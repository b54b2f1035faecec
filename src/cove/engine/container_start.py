"""`start`: mount a created (or exited) container's snapshot, create it under a monitor,
start it; and `cleanup`: what happens after its init exits (the monitor's exit command, or
the foreground `cove run`, or any command that finds a container whose monitor is gone)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from cove.engine import container_autorestart as autorestart
from cove.engine import events, healthcheck
from cove.engine.attach import AttachClient, connect_waiting
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
from cove.engine.oci_runtime_subprocess import forget_scratch
from cove.engine.restart_policy import Decision
from cove.engine.state import ContainerRecord, ContainerStore, utc_now
from cove.engine.volumes import VolumeHold, volume_events, volume_service
from cove.errors import CoveError, InvalidState, NoSuchContainer, RuntimeFailed
from cove.image.snapshot import choose_snapshotter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.monitor_ahead import LauncherAhead
    from cove.engine.oci_runtime_api import OCIRuntime

LOST_EXIT_CODE = 255  # docker's code for "the exit status could not be known"
LOST_MONITOR = "the container's monitor died: its exit status is unknown"


def start_container(
    store: ContainerStore,
    root: str,
    record: ContainerRecord,
    *,
    attach: bool = False,
    warn: Callable[[str], None] | None = None,
    launcher: LauncherAhead | None = None,
) -> tuple[ContainerRecord, AttachClient | None]:
    """Start `record` (the caller holds its lock). With `attach`, an attach client is
    connected (and has handed off the clean-up) before init is released, so no output is
    missed; the caller pumps it. `launcher`: an F forked ahead (monitor.launch)."""
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
    health = healthcheck.monitor_schedule(record.settings.get("healthcheck"))
    health_command = [*cove_command(), "--root", root, "container", "healthcheck", record.id]
    volumes_held = VolumeHold(None)
    from cove.engine.network import attach as network

    plans: list[network.Plan | None] = []

    def meanwhile() -> None:  # while the runtime creates the container (monitor.launch)
        plans.append(network.prepare(root, store, record))  # leases, /etc/hosts
        _load_what_follows(runtime, plans[0] is not None)

    try:
        volumes_held = volume_service(store).hold_for_start(record)  # mounted until "running"
        network.join_namespace(store, record)
        if _shares_namespaces(record):
            from cove.engine import container_namespaces

            container_namespaces.before_start(store, record)
        launched = launch(runtime, MonitorOptions(
            container_id=record.id, bundle=Path(record.bundle), container_dir=container_dir,
            tty=settings.tty, stdin=settings.stdin, log_max_size=size, log_max_file=files,
            exit_command=[*cove_command(), "--root", root, "container", "cleanup", record.id],
            health_interval_ms=health, health_command=health_command if health else (),
            loopback=network.own_namespace(network.network_mode(record.config)),
        ), meanwhile=meanwhile, ahead=launcher)  # fmt: skip
    except BaseException:
        volumes_held.close()
        volume_service(store).release(record)
        _delete_quietly(runtime, record.id)
        if plans and plans[0] is not None:
            network.unplug(root, record.id, ports=False)
        snapshots.unmount(record.rootfs)
        raise
    for message in launched.warnings:
        if warn is not None:
            warn(message)
    started_at = utc_now()
    if health:
        healthcheck.reset_state(container_dir, started_at)
    record = store.update_state(
        record.id, status="running", pid=launched.container_pid, exit_code=0,
        oom_killed=False, started_at=started_at, finished_at="",
        monitor_pid=launched.monitor_pid, monitor_start=launched.monitor_start,
        settings={**_without_error(record.settings), "boot_id": boot_id()},
    )  # fmt: skip
    volumes_held.close()
    plan = plans[0]
    client = None
    try:
        if plan is not None:  # init waits on its exec FIFO: plug its namespace in
            plugged = network.plug(root, record, plan, launched.container_pid)
            record = store.update_state(record.id, settings={**record.settings, **plugged})
            if network.on_user_network(plan.networks):  # its name, for the others to find
                from cove.engine.network import dns_control

                dns_control.update(root)
        if attach:
            client = AttachClient(attach_socket_path(record.id))
            client.handoff()
        connect_waiting(record.id, attach_socket_path(record.id))  # the API's attach-then-start
        volume_events(root, record, "mount")
        events.emit(root, "start", record)  # before init runs: its "die" cannot come first
        runtime.start(record.id)
    except BaseException:
        if client is not None:
            client.close()
        _abandon(runtime, launched, record.id)
        _finish(store, root, record, LOST_EXIT_CODE, oom=False, error_text="start failed")
        raise
    return record, client


def _load_what_follows(runtime: OCIRuntime, networks: bool) -> None:
    """While the runtime creates the container in another process: the modules that the
    start, the network's plug and the exit load, loaded on this core meanwhile."""
    runtime.preload()
    if networks:
        from cove.engine.network import attach as network

        network.preload()
    import cove.engine.container_logs  # noqa: F401  (the exit's timestamps)


def _without_error(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A new run has no State.Error of the last one."""
    return {key: value for key, value in settings.items() if key != "error"}


def boot_id() -> str:
    """This boot of the host (a record started in another boot has no live process)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


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
    """A running or paused record whose init has exited (exit file) or lost its monitor; a
    restarting one whose waiter is gone (see `container_autorestart`)."""
    if record.status == "restarting":
        return not monitor_alive(record.monitor_pid, record.monitor_start)
    if record.status not in ("running", "paused"):
        return False
    if exit_file_path(store.container_dir(record.id)).exists():
        return True
    return not monitor_alive(record.monitor_pid, record.monitor_start)


def cleanup_container(
    store: ContainerStore,
    root: str,
    container_id: str,
    *,
    restart: bool = True,
    monitor_gone: str = "",
) -> ContainerRecord | None:
    """Record the exit of a container whose init is gone: exit code, OOM kill, runtime state
    deleted, root filesystem unmounted (its changes stay), then its restart policy (with
    `restart`: see `container_autorestart`) or `--rm`. Idempotent; does nothing while the
    container runs. `monitor_gone` (a reason) says the monitor is known to be gone even if
    its pid lives (`system boot`: another boot's pid). None when the container is gone."""
    try:
        with store.lock(container_id):
            try:
                record = store.get(container_id)
            except NoSuchContainer:
                return None
            if record.status == "restarting":
                return _restart_orphaned(store, root, record, restart=restart,
                                         waiter_gone=bool(monitor_gone))  # fmt: skip
            if record.status not in ("running", "paused"):
                return record
            status = read_exit_file(exit_file_path(store.container_dir(record.id)))
            error_text = ""
            if status is None:
                if not monitor_gone and monitor_alive(record.monitor_pid, record.monitor_start):
                    return record  # still running
                error_text = monitor_gone or LOST_MONITOR
                exit_code = LOST_EXIT_CODE
                _kill_lost(root, record)
                Path(attach_socket_path(record.id)).unlink(missing_ok=True)  # the dead one's
            else:
                exit_code = status.exit_code
            oom = _oom_killed(record)
            finished_at = status.finished_at if status else utc_now()
            decision = autorestart.decision_for(record, exit_code, finished_at) if restart else None
            if decision is not None and not decision.restart:
                decision = None
            updated = _finish(store, root, record, exit_code, oom=oom, error_text=error_text,
                              finished_at=finished_at, restart=decision)  # fmt: skip
            if updated is not None and decision is not None:
                return autorestart.schedule(store, root, updated, decision.delay_ms)
            return updated
    except NoSuchContainer:
        return None


def _restart_orphaned(
    store: ContainerStore, root: str, record: ContainerRecord, *, restart: bool, waiter_gone: bool
) -> ContainerRecord:
    """A "restarting" record (the caller holds the lock): left alone while its waiter lives;
    otherwise a new waiter takes over at once (`restart`), or the container stays exited."""
    if not waiter_gone and monitor_alive(record.monitor_pid, record.monitor_start):
        return record
    if restart:
        return autorestart.schedule(store, root, record, 0)
    return autorestart.stay_exited(store, record)


def _finish(
    store: ContainerStore,
    root: str,
    record: ContainerRecord,
    exit_code: int,
    *,
    oom: bool,
    error_text: str = "",
    finished_at: str = "",
    restart: Decision | None = None,
) -> ContainerRecord | None:
    """Record the exit: "exited" (and --rm applied), or "restarting" with `restart` (the
    caller then schedules it)."""
    runtime = runtime_for(record.runtime, root)
    _delete_quietly(runtime, record.id)
    forget_scratch(runtime.runtime_dir, record.id)
    if _shares_namespaces(record):
        from cove.engine import container_namespaces

        container_namespaces.after_exit(store, record)
    from cove.engine.network import attach as network

    network.stop(root, store, record)  # port rules, veths, leases (Docker frees the IP)
    if network.on_user_network(record.settings.get("networks")):
        import contextlib

        from cove.engine.network import dns_control

        with contextlib.suppress(CoveError, OSError):
            dns_control.update(root)  # its name goes; the responder stops with the last one
    snapshots = choose_snapshotter(root)
    snapshots.unmount(record.rootfs)
    settings = dict(record.settings)
    settings.pop("networks", None)
    settings.pop("ports", None)
    if error_text:
        settings["error"] = error_text
    else:
        settings.pop("error", None)
    more: dict[str, object] = {}
    if restart is not None:
        settings[autorestart.BACKOFF] = restart.delay_ms
        more = {"restart_count": record.restart_count + 1}
    updated = store.update_state(
        record.id, status="exited" if restart is None else "restarting", pid=0, monitor_pid=0,
        monitor_start=0, exit_code=exit_code, oom_killed=oom,
        finished_at=finished_at or utc_now(), settings=settings, **more,
    )  # fmt: skip
    if restart is None:  # after the update: of two stopping at once, the last one unmounts
        volume_service(store).release(record)  # its tmpfs/bind volumes, if no one else runs
    events.emit_exit(root, updated, oom=oom)
    volume_events(root, record, "unmount")
    if restart is None and RunSettings.from_json(settings).auto_remove:
        remove_files(store, root, record.id)
        events.emit(root, "destroy", updated)
        volume_service(store).remove_anonymous(record)  # as docker run --rm does
        return None
    return updated


def _shares_namespaces(record: ContainerRecord) -> bool:
    """--pid/--ipc container:NAME or --ipc shareable (`cove.engine.container_namespaces`)."""
    return str(record.config.get("pid") or "").startswith("container:") or str(
        record.config.get("ipc") or ""
    ).startswith(("container:", "shareable"))


def remove_files(store: ContainerStore, root: str, container_id: str) -> None:
    """The snapshot (with the container's changes), the record, the folder, and the
    runtime calls' scratch files (a healthcheck killed late leaves its own)."""
    shm = store.container_dir(container_id) / "shm"
    if shm.exists():  # a shareable container's /dev/shm, if a crash left it mounted
        from cove.engine.container_namespaces import unmount_shm

        unmount_shm(shm)
    choose_snapshotter(root).remove(snapshot_key(container_id))
    forget(store, container_id)
    forget_scratch(Path(root) / "runtime", container_id)


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
