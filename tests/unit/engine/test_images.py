"""The image service: history, and pruning that also collects orphan blobs."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

from cove.engine import images
from cove.engine.image_import import import_tarball
from cove.engine.images import ImageService
from cove.image.store import ImageStore


def _tar(content: bytes) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("file")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return buffer


def test_history_lists_the_layers_newest_first(tmp_path: Path) -> None:
    service = ImageService(str(tmp_path))
    with ImageStore(str(tmp_path / "images")) as store:
        record = import_tarball(store, _tar(b"x" * 3000), "h:1", message="first import")
    rows = service.history("h:1")
    assert len(rows) == 1
    assert rows[0]["Id"] == str(record.id)
    assert rows[0]["CreatedBy"].startswith("cove import")
    assert rows[0]["Comment"] == "first import"
    assert rows[0]["Size"] > 3000


def test_prune_collects_old_orphan_blobs_only(tmp_path: Path) -> None:
    service = ImageService(str(tmp_path))
    with ImageStore(str(tmp_path / "images")) as store:
        import_tarball(store, _tar(b"kept"), "keep:1")
        old = store.put_blob(b"left by a killed pull")
        young = store.put_blob(b"a pull still running")
        old_path = store.blob_path(old.digest)
        young_path = store.blob_path(young.digest)
    long_ago = time.time() - images.ORPHAN_AGE - 60
    os.utime(old_path, (long_ago, long_ago))
    removed, reclaimed = service.prune()
    assert removed == []  # keep:1 has a name: not dangling
    assert not os.path.exists(old_path)
    assert os.path.exists(young_path)
    assert reclaimed == len(b"left by a killed pull")
    assert [row.repository for row in service.rows()] == ["keep"]
