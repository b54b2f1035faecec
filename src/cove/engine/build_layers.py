"""The builder's images and layers: the image a stage is building (`WorkingImage`), storing
it as an intermediate image, mounting an image's files for a step (`MountedImage`), and
turning an overlay upper dir into a layer.

Layers are written as `cove commit` writes them (`cove.image.layer_diff.diff_tar`: sorted
PAX entries, numeric uid/gid with empty names, no atime/ctime, whiteouts as ".wh." entries)
with every mtime clamped to the build's timestamp (0 unless one is given), stored
uncompressed (the blob digest is the diff_id). Configs and manifests are canonical JSON.
So the same inputs give the same digests, on any machine.

A RUN container's upper dir also holds what the runtime made as mount points (an empty
/etc/hosts, /etc/resolv.conf, a RUN --mount target): `prune_placeholders` removes those
(and the directories copied up only to hold them) before the diff, as Docker keeps them in
a layer of its own that never reaches the image.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import stat
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from cove.errors import BuildError, CoveError
from cove.image.canonical import canonical_json
from cove.image.layers import LayerStore, pid_alive
from cove.image.media_types import (
    DOCKER_FOREIGN_LAYER_GZIP,
    DOCKER_LAYER_GZIP,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP,
    OCI_MANIFEST,
)
from cove.image.platform import host_platform
from cove.image.snapshot import OverlaySnapshotter, choose_snapshotter
from cove.image.store import ImageStore

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_OCI_LAYER_OF = {
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    DOCKER_FOREIGN_LAYER_GZIP: OCI_LAYER_NONDISTRIBUTABLE_GZIP,
}
_O_PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")
SNAPSHOT_PREFIX = "build-"  # then the builder's pid: `sweep` removes those of dead builds


def created_text(timestamp: int | None) -> str:
    """The `created` of configs and history: the build's timestamp, else now (RFC 3339)."""
    if timestamp is not None:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"


# --- the image being built -------------------------------------------------------------------


@dataclass
class WorkingImage:
    """An image config document and its layers; `image_id` once stored ("" before, and
    for `scratch` until a step changes it)."""

    config: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)
    image_id: str = ""

    @property
    def execution(self) -> dict[str, Any]:
        """The config's `config` object (made when missing)."""
        value = self.config.get("config")
        if not isinstance(value, dict):
            value = {}
            self.config["config"] = value
        return value

    @property
    def parent_key(self) -> str:
        return self.image_id or "scratch"

    def child(self) -> WorkingImage:
        """A copy to change (the config is deep-copied; `image_id` cleared)."""
        return WorkingImage(copy.deepcopy(self.config), list(self.layers), "")

    def add_history(self, created: str, created_by: str, empty_layer: bool) -> None:
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if empty_layer:
            entry["empty_layer"] = True
        self.config["history"] = [*list(self.config.get("history") or []), entry]
        self.config["created"] = created

    def add_layer(self, descriptor: dict[str, Any], diff_id: str) -> None:
        rootfs = dict(self.config.get("rootfs") or {"type": "layers"})
        rootfs["type"] = "layers"
        rootfs["diff_ids"] = [*list(rootfs.get("diff_ids") or []), diff_id]
        self.config["rootfs"] = rootfs
        self.layers.append(descriptor)


def scratch_image() -> WorkingImage:
    platform = host_platform()
    config: dict[str, Any] = {
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    if platform.variant:
        config["variant"] = platform.variant
    return WorkingImage(config)


def load_image(store: ImageStore, image_id: str) -> WorkingImage:
    """The stored image `image_id` as a WorkingImage (Docker layer types as OCI's)."""
    record = store.resolve(image_id)
    config: dict[str, Any] = json.loads(store.read_blob(record.id))
    manifest: dict[str, Any] = json.loads(store.read_blob(record.manifest_digest))
    layers = []
    for layer in manifest.get("layers") or []:
        media_type = str(layer.get("mediaType", ""))
        layers.append({"mediaType": _OCI_LAYER_OF.get(media_type, media_type),
                       "digest": layer["digest"], "size": layer["size"]})  # fmt: skip
    return WorkingImage(config, layers, str(record.id))


def default_path(image: WorkingImage) -> None:
    """Docker's builder gives a stage a PATH when its base image has none."""
    env = list(image.execution.get("Env") or [])
    if not any(item.split("=", 1)[0] == "PATH" for item in env):
        image.execution["Env"] = [*env, f"PATH={DEFAULT_PATH}"]


def store_image(store: ImageStore, image: WorkingImage) -> str:
    """Store `image` (untagged) and set its id."""
    config_info = store.put_blob(canonical_json(image.config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": str(config_info.digest),
                   "size": config_info.size},
        "layers": image.layers,
    }  # fmt: skip
    manifest_info = store.put_blob(canonical_json(manifest))
    record = store.add_image(manifest_info.digest)
    image.image_id = str(record.id)
    return image.image_id


def image_id_of(image: WorkingImage) -> str:
    """The id `image` gets when stored (its config's digest), without storing it."""
    import hashlib

    return "sha256:" + hashlib.sha256(canonical_json(image.config)).hexdigest()


# --- layers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewLayer:
    descriptor: dict[str, Any]
    diff_id: str


def layer_from_upper(
    store: ImageStore, lowers: list[str], upper: str, mtime: int
) -> NewLayer | None:
    """The layer of an overlay upper dir, stored; None when the upper dir is empty."""
    try:
        if not os.listdir(upper):
            return None
    except OSError as exc:
        raise BuildError(f"cannot read the step's changes at {upper}: {exc.strerror}") from exc
    from cove.image.layer_diff import diff_tar  # (only a step that made changes needs it)

    with tempfile.TemporaryFile(dir=store.tmp_dir) as layer_file:
        summary = diff_tar(lowers, upper, layer_file, mtime_clamp=mtime)
        layer_file.seek(0)
        info = store.put_blob(layer_file, summary.diff_id)
    descriptor = {"mediaType": OCI_LAYER, "digest": str(info.digest), "size": info.size}
    return NewLayer(descriptor, summary.diff_id)


def drop_blob(store: ImageStore, digest: str) -> None:
    """Delete a layer blob that no image uses (a step that failed after storing it)."""
    try:
        store.delete_blob(digest)
    except CoveError:
        pass  # an image uses it (the same layer elsewhere): it stays


def _is_opaque(fd: int) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(fd, name) == b"y":
                return True
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return False


def _open_parent(upper_fd: int, parts: list[str]) -> int | None:
    """An O_PATH fd of the directory `parts[:-1]` below the upper dir, never following a
    link (the container controls those names); None when it is not a real directory."""
    fd = os.dup(upper_fd)
    try:
        for part in parts[:-1]:
            child = os.open(part, _O_PATH_DIR, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError:
        os.close(fd)
        return None
    return fd


def prune_placeholders(upper: str, lowers: list[str], points: set[str]) -> None:
    """Remove from `upper` the empty files and directories the runtime made as mount
    points (`points`) where the image has nothing, then the directories that were copied
    up or made only to hold them (empty, not opaque, and the same mode as the image's when
    the image has them)."""
    from cove.engine.container_diff import LayersView

    view = LayersView(lowers)
    upper_fd = os.open(upper, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    parents: set[str] = set()
    try:
        for point in sorted(points, key=lambda p: p.count("/"), reverse=True):
            parts = [p for p in point.split("/") if p]
            if not parts or view.stat(point) is not None:
                continue
            if _remove_empty(upper_fd, parts, None):
                parents.update("/" + "/".join(parts[:depth]) for depth in range(1, len(parts)))
        for parent in sorted(parents, key=lambda p: p.count("/"), reverse=True):
            below = view.stat(parent)
            parts = [p for p in parent.split("/") if p]
            if below is None:
                _remove_empty(upper_fd, parts, -1)  # made only to hold a mount point
            elif below.is_dir:
                _remove_empty(upper_fd, parts, below.mode)
    finally:
        os.close(upper_fd)


def _remove_empty(upper_fd: int, parts: list[str], dir_mode: int | None) -> bool:
    """Remove the entry `parts` of the upper dir when it is an empty directory (not
    opaque; of mode `dir_mode` when given, any mode for -1) or, without `dir_mode`, an
    empty file."""
    parent = _open_parent(upper_fd, parts)
    if parent is None:
        return False
    name = parts[-1]
    try:
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError:
            return False
        if stat.S_ISDIR(info.st_mode):
            if dir_mode not in (None, -1) and info.st_mode != dir_mode:
                return False
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=parent)  # fmt: skip
            try:
                if os.listdir(fd) or _is_opaque(fd):
                    return False
            finally:
                os.close(fd)
            os.rmdir(name, dir_fd=parent)
            return True
        if dir_mode is None and stat.S_ISREG(info.st_mode) and info.st_size == 0:
            os.unlink(name, dir_fd=parent)
            return True
        return False
    finally:
        os.close(parent)


# --- an image's files, mounted -------------------------------------------------------------


def _snapshots(root: str) -> OverlaySnapshotter:
    snapshots = choose_snapshotter(root)
    if not isinstance(snapshots, OverlaySnapshotter):
        raise BuildError("cove build needs overlay snapshots (this engine root copies layers)")
    return snapshots


class MountedImage:
    """An overlay of a stored image's layers (or of plain folders, `lower_dirs`, top
    first) with a private upper dir, mounted under `<root>/snapshots/build-*`: for COPY and
    WORKDIR to write into, for COPY --from and RUN --mount to read from. `close` unmounts
    and removes it (writes are lost unless taken as a layer first)."""

    def __init__(
        self,
        root: str,
        store: ImageStore | None = None,
        image_id: str = "",
        *,
        lower_dirs: list[str] | None = None,
    ) -> None:
        if lower_dirs is None:
            lower_dirs = []
            if image_id:
                assert store is not None
                record = store.resolve(image_id)
                folders = LayerStore(os.path.join(root, "layers")).ensure(store, record)
                lower_dirs = list(reversed(folders))
        self._snapshots = _snapshots(root)
        self.key = f"{SNAPSHOT_PREFIX}{os.getpid()}-{os.urandom(8).hex()}"
        mount = self._snapshots.prepare(self.key, lower_dirs)
        self.upper = mount.upperdir
        self.lowers = list(mount.lowerdirs)
        self.path = ""
        try:
            self.path = self._snapshots.mount(self.key)
        except BaseException:
            self._snapshots.remove(self.key)
            raise

    def unmount(self) -> None:
        if self.path:
            self._snapshots.unmount(self.path)
            self.path = ""

    def close(self) -> None:
        self.path = ""
        self._snapshots.remove(self.key)

    def __enter__(self) -> MountedImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _owner(name: str, prefix: str) -> int | None:
    """The pid in `<prefix><pid>-<hex>`, or None."""
    if not name.startswith(prefix):
        return None
    pid = name[len(prefix) :].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def sweep(root: str) -> None:
    """Remove what builds killed mid-way (kill -9) left: their snapshots (mounts
    included) and scratch folders, found by the pid in their names."""
    import shutil

    base = os.path.join(root, "snapshots")
    names = os.listdir(base) if os.path.isdir(base) else []
    stale = [
        n for n in names if (pid := _owner(n, SNAPSHOT_PREFIX)) is not None and not pid_alive(pid)
    ]
    if stale:
        snapshots = _snapshots(root)
        for name in stale:
            try:
                snapshots.remove(name)
            except CoveError:
                continue
    scratch = os.path.join(root, "build", "tmp")
    for name in os.listdir(scratch) if os.path.isdir(scratch) else []:
        pid = _owner(name, "")
        if pid is not None and not pid_alive(pid):
            shutil.rmtree(os.path.join(scratch, name), ignore_errors=True)
