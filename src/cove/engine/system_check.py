"""`cove system check [--repair]`: find (and remove) what a crash left behind.

A kill -9 of any cove process, at any moment, can leave: a record that says running for a
container whose init or monitor is gone; runtime state (cgroups, state dir) of a container
the engine no longer knows, or no longer runs; an overlay mount of a stopped container; a
volume mounted for no running container; a snapshot or a folder without a record; a stale
attach socket; a veth, published-port rules or addresses of a container that is not
running, a bridge of a removed network, cove's nft table with no container. Each is a
`Finding`; repair
removes it. Containers that run under a live monitor are never touched.

Cgroups (`/sys/fs/cgroup/*/cove/<id>`) and attach sockets (`/run/cove/attach`) are shared by
every engine root on the host: only those of ids this root knows (a record, a folder, runtime
state) are looked at, so a check never touches another root's containers. Leftovers younger
than GRACE seconds are left alone (a command may still be making them); COVE_CHECK_GRACE
overrides it (tests, which have no concurrent command).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cove.engine.container_create import snapshot_key
from cove.engine.container_start import cleanup_container, needs_cleanup, remove_files
from cove.engine.monitor import SOCKET_DIR
from cove.engine.oci_runtime_api import LOG_DIR_NAME
from cove.engine.oci_runtime_traits import cgroup_mounts
from cove.engine.state import ContainerRecord, ContainerStore
from cove.errors import CoveError
from cove.image.snapshot import choose_snapshotter

GRACE = 60.0  # seconds: younger leftovers may belong to a command still running
GRACE_ENV = "COVE_CHECK_GRACE"


@dataclass
class Finding:
    kind: str
    what: str
    repair: Callable[[], None]
    repaired: bool = False
    error: str = ""

    def line(self) -> str:
        if self.error:
            return f"{self.kind}: {self.what} (repair failed: {self.error})"
        return f"{self.kind}: {self.what}" + (" (removed)" if self.repaired else "")


def check(root: str, repair: bool = False) -> list[Finding]:
    store = ContainerStore(root)
    try:
        findings = _stale_records(store, root)
        if repair:
            _apply(findings)  # before the rest: cleaning a record removes its leftovers
        records = {r.id: r for r in store.list(all=True)}
        live = {i for i, r in records.items() if r.status in ("running", "paused")}
        more = _runtime_states(root, live)
        more += _snapshots(root, records, live)
        more += _container_dirs(store, records)
        more += _volume_mounts(store)
        more += _shm_mounts(store, live)
        known = set(records) | _ids_on_disk(root, store)
        more += _cgroups(live, known)
        more += _sockets(live, known)
        more += _networks(root, store, live, known)
        more += _build_cache(root)
        if repair:
            _apply(more)
        return findings + more
    finally:
        store.close()


def _apply(findings: list[Finding]) -> None:
    for finding in findings:
        try:
            finding.repair()
            finding.repaired = True
        except (CoveError, OSError) as exc:
            finding.error = str(exc)


def _stale_records(store: ContainerStore, root: str) -> list[Finding]:
    found: list[Finding] = []
    for record in store.list(all=True):
        if needs_cleanup(store, record):
            found.append(Finding(
                "stale record", f"container {record.short_id} ({record.name}) is marked "
                f"{record.status} but its process or monitor is gone",
                partial(_cleanup, store, root, record),
            ))  # fmt: skip
        elif record.status == "created" and not record.bundle and not _young_record(record):
            found.append(Finding(
                "incomplete", f"container {record.short_id} ({record.name}) was never "
                "completely created (its create was interrupted)",
                partial(remove_files, store, root, record.id),
            ))  # fmt: skip
        elif record.status == "running" and _start_interrupted(store, root, record):
            found.append(Finding(
                "unstarted", f"container {record.short_id} ({record.name}) is marked running "
                "but its start was interrupted: its process never ran",
                partial(_stop_unstarted, store, root, record),
            ))  # fmt: skip
    return found


def _cleanup(store: ContainerStore, root: str, record: ContainerRecord) -> None:
    cleanup_container(store, root, record.id)


def _young_record(record: ContainerRecord) -> bool:
    from cove.engine.container_logs import parse_timestamp

    created = parse_timestamp(record.created)
    if created is None:
        return False
    return time.time() - created / 1e9 < _grace()


def _start_interrupted(store: ContainerStore, root: str, record: ContainerRecord) -> bool:
    """A start killed between recording "running" and the runtime's start: the runtime still
    says "created" (init waits on its exec FIFO) while no command holds the lock."""
    from cove.engine.oci_runtime import runtime_for
    from cove.errors import ContainerBusy

    try:
        with store.lock(record.id, timeout=0):
            state = runtime_for(record.runtime, root).state(record.id)
    except ContainerBusy:
        return False  # a start (or stop...) is under way
    except CoveError:
        return False  # no runtime state: the stale-record check covers that
    return state.status == "created"


def _stop_unstarted(store: ContainerStore, root: str, record: ContainerRecord) -> None:
    from cove.engine.monitor import wait_for_exit
    from cove.engine.oci_runtime import runtime_for

    runtime_for(record.runtime, root).kill(record.id, "SIGKILL", all=True)
    wait_for_exit(record.monitor_pid, record.monitor_start, 10)
    cleanup_container(store, root, record.id)


def _runtime_states(root: str, live: set[str]) -> list[Finding]:
    from cove.engine.oci_runtime import runtime_for

    found: list[Finding] = []
    runtime_dir = Path(root) / "runtime"
    if not runtime_dir.is_dir():
        return found
    for runtime_root in runtime_dir.iterdir():
        if runtime_root.name == LOG_DIR_NAME:
            found += _old_files(runtime_root, "runtime log")
            continue
        for state in runtime_root.iterdir() if runtime_root.is_dir() else []:
            if state.name in live or not state.is_dir() or _young(state):
                continue
            name = runtime_root.name

            def delete(container_id: str = state.name, runtime: str = name) -> None:
                from cove.errors import RuntimeNoSuchContainer

                try:
                    runtime_for(runtime, root).delete(container_id, force=True)
                except RuntimeNoSuchContainer:
                    shutil.rmtree(runtime_dir / runtime / container_id, ignore_errors=True)

            found.append(Finding("runtime state", f"{name} state of {state.name[:12]} "
                                 "with no running container", delete))  # fmt: skip
    return found


def _snapshots(root: str, records: dict[str, ContainerRecord], live: set[str]) -> list[Finding]:
    snapshots = choose_snapshotter(root)
    base = Path(root) / "snapshots"
    found: list[Finding] = []
    by_key = {snapshot_key(i): i for i in records}
    live_keys = {snapshot_key(i) for i in live}
    if not base.is_dir():
        return found
    for snap in base.iterdir():
        key = snap.name
        if not key.startswith("ctr-") or key in live_keys:
            continue
        if key not in by_key:
            if _young(snap):
                continue
            found.append(Finding("snapshot", f"{key} belongs to no container",
                                 partial(snapshots.remove, key)))  # fmt: skip
            continue
        for point in snapshots.mounted(key):
            found.append(Finding("mount", f"{point} of stopped container {by_key[key][:12]}",
                                 partial(snapshots.unmount, point)))  # fmt: skip
    return found


def _volume_mounts(store: ContainerStore) -> list[Finding]:
    from cove.engine.volumes import volume_service

    volumes = volume_service(store)
    return [
        Finding("mount", f"{v.mountpoint} of volume {v.name}, used by no running container",
                partial(volumes.unmount_idle, v.name))
        for v in volumes.idle_mounts()
    ]  # fmt: skip


def _shm_mounts(store: ContainerStore, live: set[str]) -> list[Finding]:
    from cove.engine.container_namespaces import leftover_shm_mounts, unmount_shm

    return [Finding("mount", f"{point}: the /dev/shm of a shareable container that is not "
                    "running", partial(unmount_shm, point))
            for point in leftover_shm_mounts(store, live)]  # fmt: skip


def _container_dirs(store: ContainerStore, records: dict[str, ContainerRecord]) -> list[Finding]:
    base = store.root / "containers"
    found: list[Finding] = []
    if not base.is_dir():
        return found
    for directory in base.iterdir():
        if directory.name in records or _young(directory):
            continue
        found.append(Finding("folder", f"{directory} belongs to no container",
                             partial(shutil.rmtree, directory)))  # fmt: skip
    return found


def _ids_on_disk(root: str, store: ContainerStore) -> set[str]:
    """Container ids with a folder or runtime state under this root (records aside)."""
    ids: set[str] = set()
    folders = [store.root / "containers"]
    runtime_dir = Path(root) / "runtime"
    if runtime_dir.is_dir():
        folders += [p for p in runtime_dir.iterdir() if p.name != LOG_DIR_NAME]
    for folder in folders:
        if folder.is_dir():
            ids.update(p.name for p in folder.iterdir() if len(p.name) == 64)
    return ids


def _cgroups(live: set[str], known: set[str]) -> list[Finding]:
    found: list[Finding] = []
    for mount_point, _fstype, _opts in cgroup_mounts():
        parent = Path(mount_point) / "cove"
        if not parent.is_dir():
            continue
        for group in parent.iterdir():
            if not group.is_dir() or group.name in live or group.name not in known:
                continue
            if _young(group):
                continue
            found.append(Finding("cgroup", f"{group} of no running container",
                                 partial(_remove_cgroup, group)))  # fmt: skip
    return found


def _remove_cgroup(group: Path) -> None:
    """Kill what is left inside (deepest first), then remove the directories."""
    nested = sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: -len(str(p)))
    for directory in [*nested, group]:
        procs = directory / "cgroup.procs"
        for _ in range(50):
            try:
                pids = [int(x) for x in procs.read_text().split()]
            except OSError:
                pids = []
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        try:
            os.rmdir(directory)
        except FileNotFoundError:
            pass  # the runtime state's repair (delete) removed it already


def _sockets(live: set[str], known: set[str]) -> list[Finding]:
    found: list[Finding] = []
    base = Path(SOCKET_DIR)
    if not base.is_dir():
        return found
    live_names = {i[:32] + ".sock" for i in live}
    known_names = {i[:32] + ".sock" for i in known}
    for sock in base.iterdir():
        if sock.name in live_names or sock.name not in known_names or _young(sock):
            continue
        found.append(Finding("socket", f"{sock} of no running container",
                             partial(sock.unlink, missing_ok=True)))  # fmt: skip
    return found


def _networks(root: str, store: ContainerStore, live: set[str], known: set[str]) -> list[Finding]:
    """veths, nft rules and leases of containers not running; bridges of removed networks;
    cove's nft table with no container (see `cove.engine.network.repair.leftovers`)."""
    from cove.engine.network.repair import leftovers

    return [Finding(item.kind, item.what, item.repair)
            for item in leftovers(root, store, live, known)]  # fmt: skip


def _build_cache(root: str) -> list[Finding]:
    import shutil

    from cove.engine import build_cache_mounts, build_secrets

    found = [Finding("build cache", f"{path} left by a killed build or prune",
                     partial(build_cache_mounts.remove_leftover, path))
             for path in build_cache_mounts.leftovers(root)]  # fmt: skip
    found += [Finding("build secrets", f"{path} left by a killed build",
                      partial(shutil.rmtree, path, True))
              for path in build_secrets.stale_secret_folders()]  # fmt: skip
    return found


def _old_files(directory: Path, kind: str) -> list[Finding]:
    return [Finding(kind, f"{p} left by a killed runtime call", partial(p.unlink))
            for p in directory.iterdir() if p.is_file() and not _young(p, 600)]  # fmt: skip


def _grace() -> float:
    try:
        return float(os.environ.get(GRACE_ENV, GRACE))
    except ValueError:
        return GRACE


def _young(path: Path, grace: float | None = None) -> bool:
    if grace is None:
        grace = _grace()
    try:
        return time.time() - path.lstat().st_mtime < grace
    except OSError:
        return True
