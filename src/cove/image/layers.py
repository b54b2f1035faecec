"""Unpacked layers, shared: each layer (by diff_id) is unpacked once under
`<root>/layers/<hex>/` and reused by every image that has it.

A layer is unpacked into a temporary folder and renamed into place, so a crash leaves
either a whole layer or a `*.partial` folder that the next `LayerStore` removes. Layers no
image references any more are removed by `prune`.
"""

from __future__ import annotations

import fcntl
import os
import shutil

from cove.image.manifest import check_config_matches
from cove.image.store import ImageStore
from cove.image.store_index import ImageRecord

_PARTIAL = ".partial"


class LayerStore:
    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, mode=0o700, exist_ok=True)
        self._cleanup_partial()

    def path(self, diff_id: str) -> str:
        algorithm, _, hexdigest = diff_id.partition(":")
        return os.path.join(self.root, hexdigest if algorithm == "sha256" else diff_id)

    def ensure(self, store: ImageStore, record: ImageRecord) -> list[str]:
        """The image's layer folders, bottom layer first; unpacks those not there yet."""
        manifest = store.manifest(record)
        config = store.config(record)
        check_config_matches(manifest, config)
        folders = []
        for descriptor, diff_id in zip(manifest.layers, config.diff_ids, strict=True):
            folder = self.path(str(diff_id))
            if not os.path.isdir(folder):
                self._unpack(store, str(descriptor.digest), str(diff_id), folder, record)
            folders.append(folder)
        return folders

    def _unpack(
        self, store: ImageStore, digest: str, diff_id: str, folder: str, record: ImageRecord
    ) -> None:
        partial = f"{folder}.{os.getpid()}{_PARTIAL}"
        with self._lock(), store.open_blob(digest) as blob:
            if os.path.isdir(folder):  # another process unpacked it meanwhile
                return
            try:
                from cove.image.layer import apply_layer  # tarfile & co.: only to unpack

                apply_layer(blob, partial, digest=digest, diff_id=diff_id,
                            name=f"{record.short_id} layer {digest[:19]}")  # fmt: skip
                os.rename(partial, folder)
            finally:
                if os.path.exists(partial):
                    shutil.rmtree(partial, ignore_errors=True)

    def prune(self, store: ImageStore) -> list[str]:
        """Remove the layer folders that no image of `store` uses; returns them."""
        used: set[str] = set()
        for record in store.images():
            used.update(self.path(str(d)) for d in store.config(record).diff_ids)
        removed = []
        with self._lock():
            for name in os.listdir(self.root):
                folder = os.path.join(self.root, name)
                if name.startswith(".") or folder in used or not os.path.isdir(folder):
                    continue
                shutil.rmtree(folder)
                removed.append(folder)
        return removed

    def _lock(self) -> _FolderLock:
        return _FolderLock(self.root)

    def _cleanup_partial(self) -> None:
        for name in os.listdir(self.root):
            if name.endswith(_PARTIAL):
                pid = name[: -len(_PARTIAL)].rsplit(".", 1)[-1]
                if pid.isdigit() and pid_alive(int(pid)):
                    continue
                shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)


class _FolderLock:
    """An exclusive flock on the layers folder, for unpacking and pruning."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.fd = -1

    def __enter__(self) -> _FolderLock:
        self.fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
