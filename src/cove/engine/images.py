"""The image service: list, inspect, tag, remove and prune images in Docker's shapes."""

from __future__ import annotations

import os
from dataclasses import dataclass

from cove.errors import ImageInUse, InvalidArgument
from cove.image.bootstrap import bootstrap_debian, bootstrap_from_host, host_binds
from cove.image.layers import LayerStore
from cove.image.reference import Reference, parse_reference
from cove.image.snapshot import CopySnapshotter, OverlaySnapshotter, choose_snapshotter
from cove.image.store import ImageStore
from cove.image.store_index import ImageRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


@dataclass(frozen=True)
class ImageRow:
    """One line of `docker images`: an image under one of its names (or <none>)."""

    repository: str
    tag: str
    id: str
    digest: str
    created: str
    size: int


@dataclass(frozen=True)
class Removed:
    untagged: tuple[str, ...]
    deleted: tuple[str, ...]


class ImageService:
    def __init__(self, root: str) -> None:
        self.root = root

    def _store(self) -> ImageStore:
        return ImageStore(os.path.join(self.root, "images"))

    def _layers(self) -> LayerStore:
        return LayerStore(os.path.join(self.root, "layers"))

    def _snapshots(self) -> OverlaySnapshotter | CopySnapshotter:
        return choose_snapshotter(self.root)  # keeps its snapshots in <root>/snapshots

    def mount(self, term: str) -> str:
        """As `podman image mount`: the image's files at a path (an overlay of its layer
        folders, unpacked once and shared); returns that path."""
        with self._store() as store:
            record = store.resolve(term)
            folders = self._layers().ensure(store, record)
            binds = host_binds(dict(store.config(record).config.labels))
        snapshots = self._snapshots()
        key = _mount_key(record)
        already = snapshots.mounted(key)
        if already:
            return min(already, key=len)  # the overlay; the host binds are below it
        snapshots.prepare(key, list(reversed(folders)))
        merged = snapshots.mount(key)
        try:
            _bind_host_dirs(binds, merged)
        except BaseException:
            self.unmount(term)
            raise
        return merged

    def unmount(self, term: str) -> None:
        with self._store() as store:
            record = store.resolve(term)
            binds = host_binds(dict(store.config(record).config.labels))
        snapshots = self._snapshots()
        key = _mount_key(record)
        targets = snapshots.mounted(key)
        if targets:
            _unbind_host_dirs(binds, min(targets, key=len))
        snapshots.remove(key)

    def bootstrap_from_host(self, name: str, host_root: str = "/", copy: bool = False) -> str:
        with self._store() as store:
            return str(bootstrap_from_host(store, name, host_root, copy).id)

    def bootstrap_debian(
        self, name: str, suite: str, mirror: str | None = None, include: tuple[str, ...] = ()
    ) -> str:
        work = os.path.join(self.root, "tmp")
        os.makedirs(work, mode=0o700, exist_ok=True)
        with self._store() as store:
            return str(bootstrap_debian(store, name, suite, mirror, include, work).id)

    def mounted(self, record: ImageRecord) -> list[str]:
        return self._snapshots().mounted(_mount_key(record))

    def rows(self, all_images: bool = False, dangling: bool | None = None) -> list[ImageRow]:
        hidden: set[str] = set()
        if not all_images:  # Docker hides the intermediate images of builds (without -a)
            from cove.engine.build_cache import intermediate_ids

            hidden = intermediate_ids(self.root)
        with self._store() as store:
            rows = []
            for record in store.images():
                names = record.names
                if not names and str(record.id) in hidden:
                    continue
                if dangling is True and names:
                    continue
                if dangling is False and not names:
                    continue
                if not names:
                    rows.append(_row(record, None))
                for name in names:
                    rows.append(_row(record, name))
            return rows

    def inspect(self, term: str) -> dict[str, Any]:
        with self._store() as store:
            record = store.resolve(term)
            config = store.config(record)
            manifest = store.manifest(record)
            execution = config.config
            return {
                "Id": str(record.id),
                "RepoTags": list(record.repo_tags()),
                "RepoDigests": list(record.repo_digests()),
                "Parent": "",
                "Comment": "",
                "Created": config.created or record.created,
                "DockerVersion": "",
                "Author": config.author,
                "Config": {
                    "User": execution.user,
                    "ExposedPorts": {port: {} for port in execution.exposed_ports} or None,
                    "Env": list(execution.env),
                    "Cmd": None if execution.cmd is None else list(execution.cmd),
                    "Entrypoint": None
                    if execution.entrypoint is None
                    else list(execution.entrypoint),
                    "Volumes": {path: {} for path in execution.volumes} or None,
                    "WorkingDir": execution.working_dir,
                    "Labels": dict(execution.labels) or None,
                    "StopSignal": execution.stop_signal or None,
                },
                "Architecture": config.architecture,
                "Variant": config.variant or None,
                "Os": config.os,
                "Size": record.size,
                "RootFS": {"Type": "layers", "Layers": [str(d) for d in config.diff_ids]},
                "Metadata": {"LastTagTime": record.added},
                "Descriptor": {
                    "mediaType": manifest.media_type,
                    "digest": str(record.manifest_digest),
                    "size": record.manifest_size,
                },
            }

    def tag(self, source: str, target: str) -> Reference:
        reference = parse_reference(target)
        if reference.digest is not None:
            raise InvalidArgument(f"refusing to tag with a digest reference: {target}")
        with self._store() as store:
            record = store.resolve(source)
            tagged = store.tag(record, str(reference))
        self._event("tag", str(record.id), reference.familiar())
        return tagged

    def _event(self, action: str, image_id: str, name: str = "") -> None:
        from cove.engine import events

        events.emit_image(self.root, action, image_id, name)

    def _announce(self, image_id: str, removed: Removed) -> Removed:
        for _ in removed.untagged:
            self._event("untag", image_id)
        if removed.deleted:
            self._event("delete", image_id)
        return removed

    def remove(self, term: str, force: bool = False) -> Removed:
        """As `docker rmi` (see `_remove`), with its events."""
        with self._store() as store:
            image_id = str(store.resolve(term).id)
        return self._announce(image_id, self._remove(term, force))

    def _remove(self, term: str, force: bool = False) -> Removed:
        """As `docker rmi`: a name is untagged; the image goes when no name is left (or
        when given by id: then it must have one name, or force). An image a container uses
        stays: without force that is a conflict; with force, as Docker, its names go (the
        one given, or all of them for an id) and the image stays, nameless, while it is
        used (Docker deletes one that only stopped containers use; cove keeps it: it holds
        their layers)."""
        with self._store() as store:
            record = store.resolve(term)
            by_name = _is_name_of(term, record)
            mounted = self.mounted(record)
            if mounted and not (by_name and len(record.names) > 1):
                raise ImageInUse(
                    f"image {record.short_id} is mounted at {mounted[0]}: "
                    f"run 'cove image unmount {term}' first"
                )
            if not (by_name and len(record.names) > 1):
                users = self.containers_using(str(record.id))
                if users and force:
                    names = [term] if by_name else [str(n) for n in record.names]
                    for name in names:
                        store.untag(name)
                    return Removed(tuple(_familiar_of(n) for n in names), ())
                if users and by_name:
                    raise ImageInUse(
                        f'conflict: unable to remove repository reference "{term}" (must '
                        f"force) - container {users[0][:12]} is using its referenced image "
                        f"{record.short_id}"
                    )
                if users:
                    raise ImageInUse(
                        f"conflict: unable to delete {record.short_id}: image is being used by "
                        f"container {users[0][:12]} (remove the container first)"
                    )
            if by_name and len(record.names) > 1:
                untagged = store.untag(term)
                return Removed((_familiar_of(term),), ()) if untagged else Removed((), ())
            if not by_name and len(record.names) > 1 and not force:
                raise ImageInUse(
                    f"image {record.short_id} has several names ({', '.join(record.repo_tags())}):"
                    " remove them by name, or use --force"
                )
            removal = store.remove(record)
            self._layers().prune(store)
            return Removed(
                tuple(name.familiar() for name in removal.untagged),
                (
                    str(removal.image.id),
                    *(str(d) for d in removal.deleted if d != removal.image.id),
                ),
            )

    def containers_using(self, image_id: str) -> list[str]:
        """Ids of the containers (any status) made from the image: it must stay."""
        if not os.path.exists(os.path.join(self.root, "containers.db")):
            return []
        from cove.engine.state import ContainerStore

        with ContainerStore(self.root) as containers:
            return [r.id for r in containers.list(all=True) if r.image_id == image_id]

    def history(self, term: str) -> list[dict[str, Any]]:
        """As `docker image history`: newest first; the layers' sizes as stored."""
        with self._store() as store:
            record = store.resolve(term)
            config = store.config(record)
            sizes = [layer.size for layer in store.manifest(record).layers]
        rows = []
        layer = 0
        for entry in config.history:
            size = 0
            if not entry.empty_layer and layer < len(sizes):
                size, layer = sizes[layer], layer + 1
            rows.append({"Id": "<missing>", "Created": entry.created, "CreatedBy":
                         entry.created_by, "Size": size, "Comment": entry.comment})  # fmt: skip
        rows.reverse()
        if rows:
            rows[0]["Id"] = str(record.id)
        return rows

    def prune(
        self,
        all_unused: bool = False,
        select: Callable[[ImageStore, ImageRecord], bool] | None = None,
    ) -> tuple[list[Removed], int]:
        """Remove dangling images (no name), or with all_unused every image (no container
        no container uses); returns what went and the bytes reclaimed. `select` (the API's
        label and until filters) keeps the images it answers False for."""
        removed = []
        reclaimed = 0
        with self._store() as store:
            for record in store.images():
                if record.names and not all_unused:
                    continue
                if select is not None and not select(store, record):
                    continue
                if self.containers_using(str(record.id)):
                    continue
                before = sum(store.blob_size(d) for d in store.blobs())
                removal = store.remove(record)
                reclaimed += before - sum(store.blob_size(d) for d in store.blobs())
                removed.append(self._announce(str(removal.image.id), Removed(
                    tuple(name.familiar() for name in removal.untagged), (str(removal.image.id),)
                )))  # fmt: skip
            reclaimed += _remove_orphan_blobs(store)
            self._layers().prune(store)
        return removed, reclaimed


ORPHAN_AGE = 600  # seconds: younger blobs may belong to a pull or load still running


def _remove_orphan_blobs(store: ImageStore) -> int:
    """Blobs no image uses (left by a pull or load killed before it registered its image);
    returns the bytes freed."""
    import time

    from cove.errors import ImageStoreError

    freed = 0
    for digest in store.blobs():
        path = store.blob_path(digest)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            continue
        if time.time() - stat.st_mtime < ORPHAN_AGE:
            continue
        try:
            if store.delete_blob(digest):
                freed += stat.st_size
        except ImageStoreError:
            continue  # an image uses it
    return freed


def _bind_host_dirs(binds: list[tuple[str, str]], merged: str) -> None:
    """The host folders an image made by `bootstrap --from-host` uses, read-only."""
    from cove.sys.constants import MS_BIND, MS_RDONLY, MS_REC, MS_REMOUNT
    from cove.sys.linux import LinuxSyscalls

    sys = LinuxSyscalls()
    for source, destination in binds:
        target = os.path.join(merged, destination.lstrip("/"))
        os.makedirs(target, exist_ok=True)
        sys.mount(source, target, "", MS_BIND | MS_REC)
        sys.mount("", target, "", MS_BIND | MS_REMOUNT | MS_RDONLY)


def _unbind_host_dirs(binds: list[tuple[str, str]], merged: str) -> None:
    from cove.errors import SyscallFailed
    from cove.sys.constants import MNT_DETACH
    from cove.sys.linux import LinuxSyscalls

    sys = LinuxSyscalls()
    for _source, destination in reversed(binds):
        try:
            sys.umount2(os.path.join(merged, destination.lstrip("/")), MNT_DETACH)
        except SyscallFailed:
            continue  # not mounted (a crash between mount and bind): nothing to undo


def _mount_key(record: ImageRecord) -> str:
    return "image-" + str(record.id).removeprefix("sha256:")[:32]


def _row(record: ImageRecord, name: Reference | None) -> ImageRow:
    digests = record.repo_digests()
    return ImageRow(
        repository="<none>" if name is None else name.familiar_name(),
        tag="<none>" if name is None or name.tag is None else name.tag,
        id=str(record.id),
        digest=digests[0].split("@", 1)[1] if digests else "<none>",
        created=record.created,
        size=record.size,
    )


def _is_name_of(term: str, record: ImageRecord) -> bool:
    try:
        reference = parse_reference(term)
    except Exception:
        return False
    return any(str(name) == str(reference) for name in record.names)


def _familiar_of(term: str) -> str:
    return parse_reference(term).familiar()
