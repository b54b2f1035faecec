"""The volume service: Docker's volumes with its `local` driver.

    <root>/volumes/<name>/volume.json   what the volume is (written atomically)
    <root>/volumes/<name>/_data         its mountpoint: the folder containers see
    <root>/volumes/.lock                flock(2): exclusive for every change (create, remove,
                                        mount, unmount); shared while a container starts

A volume appears whole or not at all: it is made under a temporary name (`.new-*`) and
renamed into place; removal renames it away (`.trash-*`) before deleting it. What a crash
leaves of either is swept by the next creation.

Options (`-o`), as the local driver's: `type`, `device` and `o` (a mount(8) type, source
and options; type and device go together). A volume with them is mounted on its `_data`
when a container that uses it starts, and unmounted when the last running container that
uses it stops: `type=tmpfs,device=tmpfs,o=size=64m`, `type=none,o=bind,device=/host/path`,
or any filesystem the kernel mounts.

Which containers use a volume is read from the container records: `settings["volumes"]`,
a list of {name, destination, anonymous, source, rw, mode} written by `create`. A volume
that any container uses (running or not) cannot be removed, not even with force (as
Docker). Anonymous volumes (label com.docker.volume.anonymous, as Docker 23+) are the only
ones `prune` takes unless it is asked for all.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cove.engine import volume_data
from cove.engine.folder_lock import lock_folder
from cove.engine.volume_names import check_volume_name, valid_volume_name
from cove.errors import InvalidArgument, NoSuchVolume, VolumeError, VolumeInUse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.spec_mounts import VolumeRequest
    from cove.engine.state import ContainerStore
    from cove.engine.state_records import ContainerRecord
    from cove.sys import Syscalls

DRIVER = "local"
SCOPE = "local"
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
METADATA = "volume.json"
DATA = "_data"
FILTERS = ("dangling", "name", "label", "label!", "driver")
_RUNNING = ("running", "paused", "restarting")  # keep their volumes mounted

Records = Callable[[], Iterable["ContainerRecord"]]


@dataclass(frozen=True)
class Volume:
    name: str
    mountpoint: str
    created_at: str
    driver: str = DRIVER
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    @property
    def mounted_on_use(self) -> bool:
        """Its options say what to mount on _data when a container uses it."""
        return bool(self.options.get("type"))

    def inspect(self) -> dict[str, object]:
        """`docker volume inspect`'s shape."""
        return {
            "CreatedAt": self.created_at,
            "Driver": self.driver,
            "Labels": dict(sorted(self.labels.items())),
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": dict(sorted(self.options.items())),
            "Scope": SCOPE,
        }


def new_volume_name() -> str:
    """An anonymous volume's name: 64 hex digits, as Docker's."""
    return os.urandom(32).hex()


def created_now() -> str:
    return datetime.fromtimestamp(int(time.time()), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def container_volumes(record: ContainerRecord) -> list[Mapping[str, Any]]:
    """The volumes a container record says it uses (entries without a name are skipped)."""
    found = record.settings.get("volumes") if isinstance(record.settings, Mapping) else None
    if not isinstance(found, list):
        return []
    return [e for e in found if isinstance(e, Mapping) and isinstance(e.get("name"), str)]


def volume_events(root: str, record: ContainerRecord, action: str) -> None:
    """dockerd's "mount" (at a container's start) or "unmount" (at its exit) event of each
    of its volumes."""
    from cove.engine import events

    for entry in container_volumes(record):
        if action == "unmount":  # (dockerd's unmount names the container and driver only)
            events.emit_object(root, "volume", action, str(entry["name"]),
                               container=record.id, driver=DRIVER)  # fmt: skip
            continue
        writable = "true" if entry.get("rw", True) else "false"
        events.emit_object(root, "volume", action, str(entry["name"]), container=record.id,
                           destination=str(entry.get("destination") or ""), driver=DRIVER,
                           propagation="", **{"read/write": writable})  # fmt: skip


def volume_service(store: ContainerStore) -> VolumeService:
    """The volume service of the engine whose container records `store` holds."""
    return VolumeService(str(store.root), records=lambda: store.list(all=True))


class VolumeService:
    """The volumes under `<root>/volumes`. `records` lists the container records (by
    default from the engine's container store): who uses which volume."""

    def __init__(
        self,
        root: str,
        records: Records | None = None,
        syscalls: Syscalls | None = None,
        mountinfo: str = "/proc/self/mountinfo",
    ) -> None:
        self.root = root
        self.dir = Path(root) / "volumes"
        self._records = records
        self._sys = syscalls
        self._mountinfo = mountinfo

    # -- paths, lock, records -----------------------------------------------------------
    def mountpoint(self, name: str) -> str:
        return str(self.dir / name / DATA)

    def _mounts_under(self, path: str | Path) -> builtins.list[str]:
        return volume_data.mounts_under(str(path), self._mountinfo)

    def _is_mounted(self, volume: Volume) -> bool:
        return volume.mountpoint in self._mounts_under(volume.mountpoint)

    def _unmount(self, volume: Volume, path: str | Path) -> None:
        volume_data.unmount_all(volume.name, str(path), self._sys, self._mountinfo)

    @contextlib.contextmanager
    def _lock(self, shared: bool = False) -> Iterator[None]:
        fd = self._lock_fd(shared)
        try:
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the lock

    def _lock_fd(self, shared: bool) -> int:
        return lock_folder(self.dir, shared, VolumeError, "volumes")

    def _all_records(self) -> builtins.list[ContainerRecord]:
        if self._records is not None:
            return builtins.list(self._records())
        from cove.engine.state import ContainerStore

        with ContainerStore(self.root) as store:
            return store.list(all=True)

    def _users(
        self, records: Iterable[ContainerRecord], name: str
    ) -> builtins.list[ContainerRecord]:
        return [r for r in records if any(e["name"] == name for e in container_volumes(r))]

    # -- reading ------------------------------------------------------------------------
    def _load(self, name: str) -> Volume | None:
        if not valid_volume_name(name):
            return None
        path = self.dir / name / METADATA
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise VolumeError(f"volume {name}: cannot read {path}: {exc}") from None
        return Volume(
            name=name, mountpoint=self.mountpoint(name), created_at=str(data.get("CreatedAt", "")),
            driver=str(data.get("Driver") or DRIVER), labels=dict(data.get("Labels") or {}),
            options=dict(data.get("Options") or {}),
        )  # fmt: skip

    def _all(self) -> builtins.list[Volume]:
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise VolumeError(f"cannot list volumes in {self.dir}: {exc.strerror}") from None
        found = [self._load(name) for name in names if not name.startswith(".")]
        return [volume for volume in found if volume is not None]

    def get(self, name: str) -> Volume:
        volume = self._load(name)
        if volume is None:
            raise NoSuchVolume(name)
        return volume

    def inspect(self, name: str) -> dict[str, object]:
        return self.get(name).inspect()

    def list(self, filters: Mapping[str, Sequence[str]] | None = None) -> builtins.list[Volume]:
        """Volumes by name. `filters` as `docker volume ls --filter`: dangling=true|false
        (used by no container), name (a part of the name), label (KEY or KEY=VALUE, all
        must match), label! (none may match), driver. Values of one key are OR-ed except
        label's."""
        filters = dict(filters or {})
        for key in filters:
            if key not in FILTERS:
                raise InvalidArgument(f"invalid filter {key!r} (volumes take {', '.join(FILTERS)})")
        used = None
        if filters.get("dangling"):
            used = {e["name"] for r in self._all_records() for e in container_volumes(r)}
        return [v for v in self._all() if _matches(v, filters, used)]

    def users(self, name: str) -> builtins.list[ContainerRecord]:
        """The containers that use volume `name`."""
        return self._users(self._all_records(), name)

    # -- changes ------------------------------------------------------------------------
    def create(
        self,
        name: str = "",
        driver: str = DRIVER,
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        *,
        anonymous: bool = False,
    ) -> Volume:
        """A new volume (a random name when `name` is ""); an existing one of that name is
        returned as it is, as Docker does. `anonymous` marks it as a container's anonymous
        volume (what `prune` takes by default)."""
        _check_driver(driver)
        if name:
            check_volume_name(name)
        checked = volume_data.check_options(options or {})
        all_labels = dict(labels or {})
        if anonymous:
            all_labels[ANONYMOUS_LABEL] = ""
        with self._lock():
            volume, _ = self._create_locked(name or new_volume_name(), all_labels, checked)
        return volume

    def _create_locked(
        self, name: str, labels: Mapping[str, str], options: Mapping[str, str]
    ) -> tuple[Volume, bool]:
        existing = self._load(name)
        if existing is not None:
            return existing, False
        self._sweep()
        folder = self.dir / name
        temporary = self.dir / f".new-{name}-{os.urandom(4).hex()}"
        volume = Volume(name=name, mountpoint=self.mountpoint(name), created_at=created_now(),
                        labels=dict(labels), options=dict(options))  # fmt: skip
        try:
            temporary.mkdir(mode=0o701)
            (temporary / DATA).mkdir()
            os.chmod(temporary / DATA, 0o755)
            _write_atomic(temporary / METADATA, json.dumps({
                "Name": name, "Driver": volume.driver, "CreatedAt": volume.created_at,
                "Labels": volume.labels, "Options": volume.options,
            }))  # fmt: skip
            os.rename(temporary, folder)
        except OSError as exc:
            shutil.rmtree(temporary, ignore_errors=True)
            raise VolumeError(
                f"cannot create volume {name} in {self.dir}: {exc.strerror}"
            ) from None
        self._event("create", volume)
        return volume, True

    def _event(self, action: str, volume: Volume) -> None:
        from cove.engine import events

        events.emit_object(self.root, "volume", action, volume.name, driver=volume.driver)

    def _sweep(self) -> None:
        """Remove what a crash left of a creation or a removal (the caller holds the lock)."""
        for entry in os.listdir(self.dir):
            if entry.startswith((".new-", ".trash-")):
                path = self.dir / entry
                if not self._mounts_under(path):
                    shutil.rmtree(path, ignore_errors=True)

    def remove(self, name: str, force: bool = False) -> str:
        """Remove volume `name`; refused while a container uses it (`VolumeInUse`, even
        with force, as Docker). `force` only ignores a volume that does not exist."""
        with self._lock():
            volume = self._load(name)
            if volume is None:
                if force:
                    return name
                raise NoSuchVolume(name)
            users = self._users(self._all_records(), name)
            if users:
                raise VolumeInUse(name, [(r.id, r.name) for r in users])
            self._destroy(volume)
        return name

    def _destroy(self, volume: Volume) -> None:
        folder = self.dir / volume.name
        self._unmount(volume, folder)
        if self._mounts_under(folder):
            raise VolumeError(f"cannot remove volume {volume.name}: {folder} is still mounted")
        trash = self.dir / f".trash-{volume.name}-{os.urandom(4).hex()}"
        try:
            os.rename(folder, trash)
        except OSError as exc:
            raise VolumeError(f"cannot remove volume {volume.name}: {exc.strerror}") from None
        shutil.rmtree(trash, ignore_errors=True)
        self._event("destroy", volume)

    def prune(
        self, all_volumes: bool = False, filters: Mapping[str, Sequence[str]] | None = None
    ) -> tuple[builtins.list[str], int]:
        """Remove the volumes no container uses: anonymous ones only, unless `all_volumes`
        (Docker 23+). `filters`: label and label! as `list`'s. (names removed, bytes)."""
        filters = dict(filters or {})
        for key in filters:
            if key not in ("label", "label!"):
                raise InvalidArgument(f"invalid filter {key!r} (prune takes label and label!)")
        removed: builtins.list[str] = []
        reclaimed = 0
        with self._lock():
            used = {e["name"] for r in self._all_records() for e in container_volumes(r)}
            for volume in self._all():
                if volume.name in used or not _matches(volume, filters, None):
                    continue
                if not all_volumes and not volume.anonymous:
                    continue
                mounted = self._mounts_under(volume.mountpoint)
                size = 0 if mounted else volume_data.tree_size(volume.mountpoint)
                self._destroy(volume)
                removed.append(volume.name)
                reclaimed += size
        return removed, reclaimed

    # -- containers ---------------------------------------------------------------------
    def plan(self, requests: Sequence[VolumeRequest]) -> builtins.list[dict[str, Any]]:
        """What a new container's record remembers of its volumes (`settings["volumes"]`):
        anonymous volumes get their names here, before anything exists."""
        entries = []
        for request in requests:
            name = request.name or new_volume_name()
            entries.append({
                "name": name, "destination": request.destination,
                "anonymous": not request.name, "source": self.mountpoint(name),
                "rw": not request.read_only, "mode": request.mode,
            })  # fmt: skip
        return entries

    def prepare(
        self,
        requests: Sequence[VolumeRequest],
        entries: Sequence[Mapping[str, Any]],
        rootfs: str,
        created: builtins.list[str],
    ) -> dict[str, str]:
        """Create the volumes of a new container (`entries` from `plan`, its record already
        stored) and copy into each empty one what the image has at its destination (unless
        nocopy). Names it creates are appended to `created` (for an undo). Returns the
        host folders for specgen: by volume name, and by destination for anonymous ones."""
        sources: dict[str, str] = {}
        with self._lock():
            for request, entry in zip(requests, entries, strict=True):
                _check_driver(request.driver)
                labels = dict(request.labels)
                if entry["anonymous"]:
                    labels[ANONYMOUS_LABEL] = ""
                options = volume_data.check_options(request.options)
                volume, new = self._create_locked(entry["name"], labels, options)
                if new:
                    created.append(volume.name)
                if not request.nocopy:
                    self._populate(volume, rootfs, request.destination)
                sources[request.key] = volume.mountpoint
        return sources

    def _populate(self, volume: Volume, rootfs: str, destination: str) -> None:
        """Docker's copy of the image's files into an empty volume. A tmpfs (or other
        filesystem) volume is mounted only while containers run: nothing is copied."""
        target: str | None = volume.mountpoint
        if volume.mounted_on_use:
            target = volume_data.bind_device(volume.options)
        if target and os.path.isdir(target) and volume_data.is_empty(target):
            volume_data.copy_image_content(rootfs, destination, target)

    def discard(self, names: Iterable[str]) -> None:
        """Undo of `prepare`: remove the volumes it created, unless a container uses them."""
        for name in names:
            try:
                self.remove(name, force=True)
            except VolumeInUse:
                continue

    def hold_for_start(self, record: ContainerRecord) -> VolumeHold:
        """Mount the volumes of `record` that need it; the returned hold (a shared lock)
        keeps them mounted until the caller has recorded the container as running, then
        it is closed."""
        needing = []
        for name in sorted({e["name"] for e in container_volumes(record)}):
            volume = self._load(name)
            if volume is None:
                raise VolumeError(f"volume {name} of container {record.id[:12]} no longer exists")
            if volume.mounted_on_use:
                needing.append(volume)
        if not needing:
            return VolumeHold(None)
        for _attempt in range(10):  # a clean-up may unmount between the two locks
            fd = self._lock_fd(shared=True)
            if all(self._is_mounted(v) for v in needing):
                return VolumeHold(fd)
            os.close(fd)
            with self._lock():
                for volume in needing:
                    if not self._is_mounted(volume):
                        volume_data.mount_volume(volume.name, volume.options, volume.mountpoint,
                                                 self._sys)  # fmt: skip
        raise VolumeError(
            f"cannot keep the volumes of container {record.id[:12]} mounted: "
            + ", ".join(v.name for v in needing if not self._is_mounted(v))
        )

    def release(self, record: ContainerRecord) -> None:
        """After `record` stopped: unmount its volumes that no other running container
        uses. Best effort (it runs in clean-ups): a volume that cannot be read or unmounted
        stays as it is, and `volume rm` unmounts it."""
        names = {e["name"] for e in container_volumes(record)}
        try:
            volumes = [v for v in map(self._load, sorted(names)) if v and v.mounted_on_use]
            if not volumes:
                return
            with self._lock():
                running = [r for r in self._all_records()
                           if r.status in _RUNNING and r.id != record.id]  # fmt: skip
                for volume in volumes:
                    if not self._users(running, volume.name):
                        self._unmount(volume, volume.mountpoint)
        except VolumeError:
            return

    def idle_mounts(self) -> builtins.list[Volume]:
        """Volumes mounted on their _data that no running container uses (what a crash
        between a mount and a start leaves; `system check` reports them)."""
        with self._lock():
            return self._idle(self._all_records())

    def _idle(self, records: Iterable[ContainerRecord]) -> builtins.list[Volume]:
        running = [r for r in records if r.status in _RUNNING]
        return [v for v in self._all() if v.mounted_on_use and self._is_mounted(v)
                and not self._users(running, v.name)]  # fmt: skip

    def unmount_idle(self, name: str) -> None:
        """`system check --repair`: unmount volume `name` if it still is idle."""
        with self._lock():
            for volume in self._idle(self._all_records()):
                if volume.name == name:
                    self._unmount(volume, volume.mountpoint)

    def remove_anonymous(self, record: ContainerRecord) -> builtins.list[str]:
        """`rm -v` and `run --rm`: remove the anonymous volumes of a removed container.
        Those another container still uses stay, as Docker's; so do those that cannot be
        removed (Docker warns and goes on)."""
        removed = []
        for entry in container_volumes(record):
            if entry.get("anonymous"):
                try:
                    removed.append(self.remove(entry["name"], force=True))
                except VolumeError:
                    continue
        return removed


class VolumeHold:
    """A shared hold on the volumes lock while a container starts (see `hold_for_start`)."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _check_driver(driver: str) -> None:
    if driver not in ("", DRIVER):
        raise InvalidArgument(f"volume driver {driver!r} is not supported: cove has only 'local'")


def _matches(volume: Volume, filters: Mapping[str, Sequence[str]], used: set[str] | None) -> bool:
    for key, values in filters.items():
        if not values:
            continue
        if key == "dangling":
            wanted = set()
            for value in values:
                if value.lower() not in ("true", "1", "false", "0"):
                    raise InvalidArgument(f"invalid filter 'dangling={value}' (true or false)")
                wanted.add(value.lower() in ("true", "1"))
            if used is not None and (volume.name not in used) not in wanted:
                return False
        elif key == "name":
            if not any(value in volume.name for value in values):
                return False
        elif key == "driver":
            if volume.driver not in values:
                return False
        elif key == "label":
            if not all(_label_matches(volume, value) for value in values):
                return False
        elif key == "label!":
            if any(_label_matches(volume, value) for value in values):
                return False
    return True


def _label_matches(volume: Volume, text: str) -> bool:
    key, eq, wanted = text.partition("=")
    return key in volume.labels and (not eq or volume.labels[key] == wanted)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
