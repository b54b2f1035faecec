"""`cove system df` and `cove system prune`: the engine's disk use by kind, and removing
what nothing uses, as Docker reports them.

Sizes: an image is the content it has in the store (manifest, config, layer blobs; a blob
several images share counts once in totals); a container is what it wrote (the files of
its snapshot's upper dir, or of its copy); a volume is the files under its _data; the build
cache is the folders of `RUN --mount=type=cache` (`cove.engine.build_cache_mounts`: the
step cache's intermediate images count as images).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from cove.engine.build_cache_mounts import CacheMount
from cove.engine.state import ContainerRecord
from cove.engine.volume_data import tree_size

ACTIVE = ("running", "paused", "restarting")


@dataclass(frozen=True)
class ImageUsage:
    id: str
    names: tuple[str, ...]  # familiar REPO:TAG names
    created: str
    size: int
    shared_size: int  # bytes of blobs another image uses too
    containers: int


@dataclass(frozen=True)
class ContainerUsage:
    record: ContainerRecord
    size: int


@dataclass(frozen=True)
class VolumeUsage:
    name: str
    links: int
    size: int


@dataclass
class DiskUsage:
    images: list[ImageUsage] = field(default_factory=list)
    images_size: int = 0  # shared blobs once
    images_reclaimable: int = 0
    containers: list[ContainerUsage] = field(default_factory=list)
    volumes: list[VolumeUsage] = field(default_factory=list)
    build_cache: list[CacheMount] = field(default_factory=list)

    def summary(self) -> list[tuple[str, int, int, int, int]]:
        """(TYPE, TOTAL, ACTIVE, SIZE, RECLAIMABLE) lines."""
        containers_size = sum(c.size for c in self.containers)
        containers_free = sum(c.size for c in self.containers if c.record.status not in ACTIVE)
        volumes_size = sum(v.size for v in self.volumes)
        volumes_free = sum(v.size for v in self.volumes if not v.links)
        return [
            ("Images", len(self.images), sum(1 for i in self.images if i.containers),
             self.images_size, self.images_reclaimable),
            ("Containers", len(self.containers),
             sum(1 for c in self.containers if c.record.status in ACTIVE),
             containers_size, containers_free),
            ("Local Volumes", len(self.volumes), sum(1 for v in self.volumes if v.links),
             volumes_size, volumes_free),
            ("Build Cache", len(self.build_cache), sum(1 for m in self.build_cache if m.in_use),
             sum(m.size for m in self.build_cache),
             sum(m.size for m in self.build_cache if not m.in_use)),
        ]  # fmt: skip


def container_size(root: str, container_id: str) -> int:
    """What the container wrote: its upper dir (overlay) or its copy (no overlayfs)."""
    from cove.engine.container_create import snapshot_key
    from cove.image.snapshot import choose_snapshotter

    snapshot = choose_snapshotter(root).path(snapshot_key(container_id))
    for data in ("upper", "fs"):
        folder = os.path.join(snapshot, data)
        if os.path.isdir(folder):
            return tree_size(folder)
    return 0


def shared_totals(
    blobs_by_image: dict[str, dict[str, int]], active: Iterable[str]
) -> tuple[int, int, dict[str, int]]:
    """(total size with shared blobs once, reclaimable = total minus what the images in
    `active` hold, shared bytes per image) from each image's {digest: size}."""
    users: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for blobs in blobs_by_image.values():
        for digest, size in blobs.items():
            users[digest] = users.get(digest, 0) + 1
            sizes[digest] = size
    total = sum(sizes.values())
    kept: dict[str, int] = {}
    for image in active:
        kept.update(blobs_by_image.get(image, {}))
    shared = {image: sum(size for digest, size in blobs.items() if users[digest] > 1)
              for image, blobs in blobs_by_image.items()}  # fmt: skip
    return total, total - sum(kept.values()), shared


def disk_usage(root: str, *, volumes: bool = True) -> DiskUsage:
    from cove.engine.build_cache_mounts import cache_mounts
    from cove.engine.containers import ContainerService
    from cove.image.store import ImageStore

    usage = DiskUsage(build_cache=cache_mounts(root))
    records = ContainerService(root).list(all_containers=True)
    users: dict[str, int] = {}
    for record in records:
        users[record.image_id] = users.get(record.image_id, 0) + 1
        usage.containers.append(ContainerUsage(record, container_size(root, record.id)))
    images_dir = os.path.join(root, "images")
    if os.path.isdir(images_dir):
        with ImageStore(images_dir) as store:
            images = store.images()
            blobs: dict[str, dict[str, int]] = {}
            for image in images:
                manifest = store.manifest(image)
                found = {str(image.manifest_digest): image.manifest_size,
                         str(manifest.config.digest): manifest.config.size}  # fmt: skip
                found.update({str(layer.digest): layer.size for layer in manifest.layers})
                blobs[str(image.id)] = found
            active = [i for i in blobs if users.get(i)]
            usage.images_size, usage.images_reclaimable, shared = shared_totals(blobs, active)
            for image in images:
                key = str(image.id)
                usage.images.append(ImageUsage(
                    id=key, names=tuple(n.familiar() for n in image.names),
                    created=image.created, size=sum(blobs[key].values()),
                    shared_size=shared[key], containers=users.get(key, 0),
                ))  # fmt: skip
    if volumes and os.path.isdir(os.path.join(root, "volumes")):
        from cove.engine.volumes import VolumeService

        service = VolumeService(root)
        for volume in service.list():
            size = tree_size(volume.mountpoint) if os.path.isdir(volume.mountpoint) else 0
            usage.volumes.append(VolumeUsage(volume.name, len(service.users(volume.name)), size))
    return usage


@dataclass
class PruneReport:
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    build_cache: list[str] = field(default_factory=list)
    reclaimed: int = 0


def prune(
    root: str,
    *,
    all_images: bool = False,
    volumes: bool = False,
    filters: Mapping[str, Sequence[str]] | None = None,
    until: float | None = None,
) -> PruneReport:
    """`docker system prune`: stopped containers, the user networks no container uses,
    (with `volumes`) the anonymous volumes no container uses, dangling images (every unused
    one with `all_images`), and the unused build cache (all of it with `all_images`).
    `filters` (label, label!) and `until` (a unix time) narrow the first three and images,
    as docker's --filter; `until` the build cache too."""
    from cove.engine.container_prune import check_prune_filters, prune_containers
    from cove.engine.image_filters import prune as prune_images

    given = {key: list(values) for key, values in (filters or {}).items() if values}
    check_prune_filters(given)
    report = PruneReport()
    report.containers, freed = prune_containers(root, given, until)
    report.reclaimed += freed
    if os.path.isdir(os.path.join(root, "networks")):
        from cove.engine.network import NetworkService
        from cove.engine.network.network_filters import prune_networks

        with NetworkService(root) as networks:
            report.networks = prune_networks(networks, given, until)
    if volumes and os.path.isdir(os.path.join(root, "volumes")):
        from cove.engine.volumes import VolumeService

        names, freed = VolumeService(root).prune()
        report.volumes = names
        report.reclaimed += freed
    if os.path.isdir(os.path.join(root, "images")):
        wanted = {**given, **({"dangling": ["false"]} if all_images else {})}
        removed, freed = prune_images(root, wanted, until)
        for item in removed:
            report.untagged.extend(item.untagged)
            report.deleted.extend(item.deleted)
        report.reclaimed += freed
    from cove.engine.build_prune import prune_build_cache

    pruned = prune_build_cache(root, all_cache=all_images, until=until)
    report.build_cache = pruned.deleted
    report.reclaimed += pruned.reclaimed
    return report


def container_sizes(root: str, record: ContainerRecord, images: dict[str, int]) -> dict[str, int]:
    """Docker's SizeRw (what the container wrote) and SizeRootFs (that and its image) of a
    container; `images` (image id -> size) is a cache the caller keeps for a listing."""
    if record.image_id not in images:
        from cove.engine.images import ImageService
        from cove.errors import NoSuchImage

        try:
            images[record.image_id] = int(
                ImageService(root).inspect(record.image_id).get("Size") or 0
            )
        except (NoSuchImage, OSError):
            images[record.image_id] = 0
    written = container_size(root, record.id)
    return {"SizeRw": written, "SizeRootFs": written + images[record.image_id]}
