"""The container service: the one interface the CLI and the API server use for containers.

Each running container has a monitor (`cove.engine.monitor`); records are in SQLite
(`cove.engine.state`); a multi-step change of one container holds its lock. Any command
that reads a running record whose init has exited, or whose monitor died (kill -9), runs
the clean-up first (`container_start.cleanup_container`): what a crash leaves is repaired
by the next command that looks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from cove.engine import container_autorestart as autorestart
from cove.engine import events
from cove.engine.attach import EXIT, AttachClient
from cove.engine.container_create import (
    DEFAULT_STOP_TIMEOUT,
    RunSettings,
    create_container,
)
from cove.engine.container_start import (
    cleanup_container,
    needs_cleanup,
    remove_files,
    start_container,
)
from cove.engine.create_options import CreateOptions, parse_signal
from cove.engine.monitor import attach_socket_path, wait_for_exit
from cove.engine.oci_runtime import runtime_for
from cove.engine.state import ContainerRecord, ContainerStore
from cove.errors import InvalidState, MonitorError, NoSuchContainer, RuntimeFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.monitor_ahead import LauncherAhead


class ContainerService:
    def __init__(self, root: str) -> None:
        self.root = root
        self.store = ContainerStore(root)

    # -- reading ------------------------------------------------------------------------
    def get(self, term: str) -> ContainerRecord:
        """The container `term` names, brought up to date (see the module docstring)."""
        record = self.store.get(term)
        if needs_cleanup(self.store, record):
            cleanup_container(self.store, self.root, record.id)
            record = self.store.get(record.id)
        return record

    def list(
        self, all_containers: bool = False, filters: Mapping[str, Sequence[str]] | None = None
    ) -> list[ContainerRecord]:
        stale = [r.id for r in self.store.list(all=False) if needs_cleanup(self.store, r)]
        for container_id in stale:
            cleanup_container(self.store, self.root, container_id)
        return self.store.list(all=all_containers, filters=filters)

    def inspect(self, term: str) -> dict[str, object]:
        """`docker inspect` of a container: Docker's JSON shape."""
        import json
        from pathlib import Path

        from cove.engine.container_inspect import inspect_container

        record = self.get(term)
        try:
            spec = json.loads((Path(record.bundle) / "config.json").read_text())
        except (OSError, ValueError):
            spec = None
        extra = dict(record.settings)
        if record.settings.get("healthcheck"):
            from cove.engine.healthcheck import read_state

            extra["health"] = read_state(self.store.container_dir(record.id))
        graph = _graph_data(self.root, record)
        if graph:
            extra["graph"] = graph
        return inspect_container(record, spec=spec, log_path=record.log_path, extra=extra)

    # -- lifecycle ----------------------------------------------------------------------
    def create(
        self,
        image: str,
        options: CreateOptions,
        settings: RunSettings,
        *,
        name: str = "",
        runtime: str = "cove",
        warn: Callable[[str], None] | None = None,
        console_size: tuple[int, int] | None = None,
    ) -> ContainerRecord:
        """`console_size`: (rows, columns) of the terminal of a -t container from its start
        (the API's HostConfig.ConsoleSize), before any resize."""
        record = create_container(
            self.store, self.root, image, options, settings, name=name, runtime=runtime,
            warn=warn, console_size=console_size,
        )  # fmt: skip
        events.emit(self.root, "create", record)
        return record

    def start(
        self, term: str, *, attach: bool = False, warn: Callable[[str], None] | None = None
    ) -> tuple[ContainerRecord, AttachClient | None]:
        record = self.get(term)
        with self.store.lock(record.id):
            record = self.store.get(record.id)
            if record.status in ("running", "paused"):
                if attach:
                    return record, self.attach(record.id)
                return record, None
            if record.status == "restarting":  # start now, instead of after the back-off
                record = autorestart.cancel(self.store, record)
            record = self.store.update_state(
                record.id, settings=autorestart.started_by_hand(record.settings)
            )
            return start_container(self.store, self.root, record, attach=attach, warn=warn)

    def run(
        self,
        image: str,
        options: CreateOptions,
        settings: RunSettings,
        *,
        name: str = "",
        runtime: str = "cove",
        attach: bool = True,
        warn: Callable[[str], None] | None = None,
        before_start: Callable[[ContainerRecord], None] | None = None,
        console_size: tuple[int, int] | None = None,
        launcher: LauncherAhead | None = None,
    ) -> tuple[ContainerRecord, AttachClient | None]:
        """create + start; the caller pumps the attach client and then calls `finish`.
        `before_start` sees the created container (`run --explain` prints its steps);
        `console_size` is the caller's terminal (rows, columns) for `-t`; `launcher`, one
        forked ahead for the start (cove.engine.monitor_ahead)."""
        record = create_container(
            self.store, self.root, image, options, settings, name=name, runtime=runtime,
            warn=warn, keep_mounted=True, console_size=console_size,
        )  # fmt: skip
        events.emit(self.root, "create", record)
        try:
            if before_start is not None:
                before_start(record)
            with self.store.lock(record.id):
                return start_container(self.store, self.root, record, attach=attach, warn=warn,
                                       launcher=launcher)  # fmt: skip
        except BaseException:
            try:
                self.remove(record.id, force=True, volumes=True)  # its own anonymous volumes
            except NoSuchContainer:
                pass  # --rm took it already
            raise

    def finish(self, container_id: str) -> ContainerRecord | None:
        """After the attached client saw the exit: record it (and apply --rm)."""
        return cleanup_container(self.store, self.root, container_id)

    def attach(self, term: str) -> AttachClient:
        record = self.get(term)
        if record.status not in ("running", "paused"):
            raise InvalidState(
                f"You cannot attach to a stopped container, start it first ({record.short_id})"
            )
        return AttachClient(attach_socket_path(record.id))

    def stop(
        self, term: str, timeout: int | None = None, signal: str | None = None
    ) -> ContainerRecord:
        """Send the stop signal (`signal`, else the container's), wait `timeout` seconds (the
        container's --stop-timeout, else 10; -1: no limit), then SIGKILL. Stopping a stopped
        container does nothing; stopping a restarting one cancels its restart. No restart
        policy applies to a stop."""
        chosen = parse_signal(signal, "--signal") if signal else ""  # (bad: nothing done)
        record = self.get(term)
        if record.status not in ("running", "paused", "restarting"):
            return record
        record = autorestart.mark_stopped_by_hand(self.store, record.id)
        if record.status not in ("running", "paused"):
            return record
        settings = RunSettings.from_json(record.settings)
        if timeout is None:
            timeout = settings.stop_timeout
        if timeout is None:
            timeout = DEFAULT_STOP_TIMEOUT
        if timeout < 0:
            timeout = 366 * 24 * 3600  # -1: no limit (a year is none in practice)
        stop_signal = chosen or str(record.settings.get("stop_signal") or "SIGTERM")
        self._terminate(record, stop_signal, timeout)
        events.emit(self.root, "stop", record)
        return self.store.get(record.id) if self.store.exists(record.id) else record

    def _terminate(self, record: ContainerRecord, stop_signal: str, timeout: float) -> None:
        """Signal, wait (then SIGKILL), and record the exit. The monitor is told that we
        clean up (hand-off), which spares it starting a `cove container cleanup`."""
        runtime = runtime_for(record.runtime, self.root)
        client: AttachClient | None
        try:
            client = AttachClient(attach_socket_path(record.id))
            client.handoff()
        except (MonitorError, OSError):
            client = None
        try:
            self._signal(runtime, record, stop_signal)
            if not self._wait_exit(record, client, timeout):
                self._signal(runtime, record, "SIGKILL", all_processes=True)
                self._wait_exit(record, client, 30)
        finally:
            if client is not None:
                client.close()
        cleanup_container(self.store, self.root, record.id)

    def _signal(
        self, runtime: object, record: ContainerRecord, name: str, all_processes: bool = False
    ) -> None:
        from cove.engine.oci_runtime import OCIRuntime

        assert isinstance(runtime, OCIRuntime)
        try:
            events.emit(self.root, "kill", record, signal=_signal_number(name))
            runtime.kill(record.id, name, all=all_processes)
            if record.status == "paused":
                runtime.resume(record.id)  # a frozen process cannot act on a signal
        except RuntimeFailed:
            pass  # already gone: the wait below sees it

    def _wait_exit(
        self, record: ContainerRecord, client: AttachClient | None, timeout: float
    ) -> bool:
        if client is None:
            return wait_for_exit(record.monitor_pid, record.monitor_start, timeout)
        import select
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([client], [], [], left)
            if not ready:
                return False
            frames = client.read_frames()
            if frames is None:
                return True
            if any(kind == EXIT for kind, _ in frames):
                return True

    def kill(self, term: str, signal: str = "SIGKILL") -> ContainerRecord:
        """Send `signal`. SIGKILL or the container's stop signal counts as a stop by hand (no
        restart policy applies to the exit); a kill of a restarting container cancels the
        restart (Docker's rules)."""
        record = self.get(term)
        name = parse_signal(signal, "--signal")
        stop_signal = str(record.settings.get("stop_signal") or "SIGTERM")
        if record.status == "restarting":
            return autorestart.mark_stopped_by_hand(self.store, record.id)
        if record.status in ("running", "paused") and name in ("SIGKILL", stop_signal):
            record = autorestart.mark_stopped_by_hand(self.store, record.id)
        if record.status not in ("running", "paused"):
            raise InvalidState(
                f"Cannot kill container: {term}: Container {record.id} is not running"
            )
        runtime_for(record.runtime, self.root).kill(record.id, name)
        events.emit(self.root, "kill", record, signal=_signal_number(name))
        return record

    def restart(
        self, term: str, timeout: int | None = None, signal: str | None = None
    ) -> ContainerRecord:
        record = self.stop(term, timeout, signal)
        started, _ = self.start(record.id)
        with self.store.lock(started.id):
            restarted = self.store.update_state(started.id, restart_count=record.restart_count + 1)
        events.emit(self.root, "restart", restarted)
        return restarted

    def wait(self, term: str) -> int:
        """Block until the container stops; its exit code."""
        record = self.get(term)
        while record.status in ("running", "paused"):
            wait_for_exit(record.monitor_pid, record.monitor_start, None)
            cleanup_container(self.store, self.root, record.id)
            try:
                record = self.store.get(record.id)
            except NoSuchContainer:
                return record.exit_code  # removed (--rm) as it exited
            if record.status in ("running", "paused") and record.monitor_pid == 0:
                break
        return record.exit_code

    def pause(self, term: str) -> ContainerRecord:
        record = self.get(term)
        with self.store.lock(record.id):
            record = self.store.get(record.id)
            if record.status != "running":
                raise InvalidState(f"Container {record.id} is not running")
            runtime_for(record.runtime, self.root).pause(record.id)
            events.emit(self.root, "pause", record)
            return self.store.update_state(record.id, status="paused")

    def unpause(self, term: str) -> ContainerRecord:
        record = self.get(term)
        with self.store.lock(record.id):
            record = self.store.get(record.id)
            if record.status != "paused":
                raise InvalidState(f"Container {record.id} is not paused")
            runtime_for(record.runtime, self.root).resume(record.id)
            events.emit(self.root, "unpause", record)
            return self.store.update_state(record.id, status="running")

    def rename(self, term: str, new_name: str) -> ContainerRecord:
        record = self.get(term)
        with self.store.lock(record.id):
            renamed = self.store.rename(record.id, new_name)
        from cove.engine.network import attach as network

        network.renamed(self.root, renamed)  # the DNS responder answers to the new name
        events.emit(self.root, "rename", renamed, oldName=f"/{record.name}")
        return renamed

    def update(
        self,
        term: str,
        resources: Mapping[str, object],
        changes: Mapping[str, object],
        restart_policy: Mapping[str, object] | None = None,
    ) -> ContainerRecord:
        """Apply `resources` (an OCI linux.resources object) to a running container and store
        `changes` (CreateOptions fields) so that the next start uses them too; a new
        `restart_policy` (the API's RestartPolicy object) applies from the next exit."""
        import json
        from pathlib import Path

        from cove.engine.restart_policy import check_restart_policy

        record = self.get(term)
        with self.store.lock(record.id):
            record = self.store.get(record.id)
            settings = dict(record.settings)
            if restart_policy is not None:
                settings["restart_policy"] = check_restart_policy(
                    restart_policy, auto_remove=bool(settings.get("auto_remove"))
                )
            if record.status in ("running", "paused"):
                runtime_for(record.runtime, self.root).update(record.id, resources)
            config = dict(record.config)
            config.update(changes)
            spec_path = Path(record.bundle) / "config.json"
            spec = json.loads(spec_path.read_text())
            merged = dict(spec.get("linux", {}).get("resources") or {})
            for key, value in resources.items():
                if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
                    merged[key] = {**merged[key], **value}
                else:
                    merged[key] = value
            spec.setdefault("linux", {})["resources"] = merged
            tmp = spec_path.with_name("config.json.tmp")
            tmp.write_text(json.dumps(spec))
            tmp.replace(spec_path)
            events.emit(self.root, "update", record)
            return self.store.update_state(record.id, config=config, settings=settings)

    # -- removal ------------------------------------------------------------------------
    def remove(self, term: str, force: bool = False, volumes: bool = False) -> str:
        """`rm [-f] [-v]`: `volumes` removes the container's anonymous volumes too."""
        record = self.get(term)
        if record.status in ("running", "paused", "restarting"):
            if not force:
                raise InvalidState(
                    f"cannot remove container {record.short_id}: it is {record.status}"
                    " (stop it first or use --force)"
                )
            record = autorestart.mark_stopped_by_hand(self.store, record.id)
            if record.status in ("running", "paused"):
                self._terminate(record, "SIGKILL", 30)
        with self.store.lock(record.id):
            if not self.store.exists(record.id):
                return record.id  # --rm removed it as it stopped
            current = self.store.get(record.id)
            if current.status in ("running", "paused"):
                raise InvalidState(f"cannot remove container {record.short_id}: it restarted")
            from pathlib import Path

            runtime = runtime_for(current.runtime, self.root)
            if (Path(runtime.root) / record.id).exists():
                # a start killed after the runtime's create: its init waits under a monitor
                try:
                    runtime.delete(record.id, force=True)
                except RuntimeFailed:
                    pass
            from cove.engine.network import attach as network

            network.remove(self.root, current)  # what a killed start may have left
            remove_files(self.store, self.root, record.id)
            events.emit(self.root, "destroy", current)
        from cove.engine.volumes import volume_service

        volume_service(self.store).release(current)
        if volumes:
            volume_service(self.store).remove_anonymous(current)
        return record.id

    def cleanup(self, container_id: str, restart_at: int | None = None) -> None:
        """The monitor's exit command; with `restart_at`, the waiter of a restart (see
        cove.engine.container_autorestart)."""
        try:
            record = self.store.get(container_id)
        except NoSuchContainer:
            return
        if restart_at is not None:
            autorestart.wait_and_restart(self.store, self.root, record.id, restart_at)
            return
        cleanup_container(self.store, self.root, record.id)


def _graph_data(root: str, record: ContainerRecord) -> dict[str, str]:
    from cove.engine.container_create import snapshot_key
    from cove.errors import CoveError as _Error
    from cove.image.snapshot import OverlaySnapshotter, choose_snapshotter

    snapshots = choose_snapshotter(root)
    if not isinstance(snapshots, OverlaySnapshotter):
        return {}
    try:
        mount = snapshots.describe(snapshot_key(record.id))
    except (_Error, OSError):
        return {}
    return {"MergedDir": record.rootfs, "UpperDir": mount.upperdir, "WorkDir": mount.workdir,
            "LowerDir": ":".join(mount.lowerdirs)}  # fmt: skip


def _signal_number(name: str) -> int:
    """Docker's "signal" attribute of a kill event: the number."""
    import signal as signal_module

    try:
        return int(signal_module.Signals[name])
    except KeyError:
        return int(name) if name.isdigit() else 0
