"""Shared unpacked layers: once per diff_id, pruned when no image uses them."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from cove.engine.image_import import import_tarball
from cove.image.layers import LayerStore
from cove.image.store import ImageStore


def rootfs_tar(files: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(str(tmp_path / "images"))


def test_layer_unpacked_once_and_shared(store: ImageStore, tmp_path: Path) -> None:
    layers = LayerStore(str(tmp_path / "layers"))
    one = import_tarball(store, rootfs_tar({"hello": b"world"}), "one:1")
    two = import_tarball(store, rootfs_tar({"hello": b"world"}), "two:1")  # same layer
    (folder,) = layers.ensure(store, one)
    assert Path(folder, "hello").read_bytes() == b"world"
    marker = Path(folder, "marker")
    marker.write_text("still the same folder")
    assert layers.ensure(store, two) == [folder]
    assert marker.exists()


def test_prune_keeps_what_images_use(store: ImageStore, tmp_path: Path) -> None:
    layers = LayerStore(str(tmp_path / "layers"))
    keep = import_tarball(store, rootfs_tar({"a": b"1"}), "keep:1")
    drop = import_tarball(store, rootfs_tar({"b": b"2"}), "drop:1")
    (kept,) = layers.ensure(store, keep)
    (dropped,) = layers.ensure(store, drop)
    store.remove(drop)
    assert layers.prune(store) == [dropped]
    assert os.path.isdir(kept) and not os.path.exists(dropped)


def test_a_crashed_unpack_is_cleaned(tmp_path: Path) -> None:
    root = tmp_path / "layers"
    stale = root / "abc.999999999.partial"  # no such pid
    stale.mkdir(parents=True)
    (stale / "half-written").write_text("x")
    LayerStore(str(root))
    assert not stale.exists()
