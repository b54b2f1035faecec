"""cove.image.store: the OCI layout, the blobs, and the rules for partial writes and crashes
(kill -9 during a write)."""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.errors import (
    DigestMismatch,
    ImageStoreError,
    NoSuchBlob,
    SizeMismatch,
)
from cove.image import manifest as m
from cove.image.digest import Digest
from cove.image.store import ImageStore
from tests.unit.image.store_helpers import build_image, dead_pid, index_json
from tests.unit.image.store_helpers import store as store

# --- layout and blobs ------------------------------------------------------------------------


def test_open_creates_an_oci_layout(tmp_path: Path) -> None:
    root = tmp_path / "engine" / "images"
    with ImageStore(root) as store:
        assert json.loads((root / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
        document = index_json(store)
        assert document["schemaVersion"] == 2
        assert document["mediaType"] == m.OCI_INDEX
        assert document["manifests"] == []
        assert (root / "blobs" / "sha256").is_dir()
        assert (root / "tmp").is_dir()
        with sqlite3.connect(root / "images.db") as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # Opening again keeps everything.
    with ImageStore(root) as store:
        assert store.images() == []


def test_unsupported_layout_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "9.9.9"}')
    with pytest.raises(ImageStoreError, match=r"oci-layout: unsupported imageLayoutVersion"):
        ImageStore(tmp_path)


def test_closed_store_says_so(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    store.close()
    with pytest.raises(ImageStoreError, match="is closed"):
        store.images()


def test_put_blob_from_bytes_stream_and_chunks(store: ImageStore) -> None:
    data = b"hello blob"
    digest = Digest.of(data)
    for source in (data, io.BytesIO(data), iter([b"hello ", b"blob"])):
        info = store.put_blob(source)
        assert info.digest == digest
        assert info.size == len(data)
    path = store.blob_path(digest)
    assert path == store.root / "blobs" / "sha256" / digest.hex
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o444
    assert store.has_blob(digest) and store.has_blob(str(digest))
    with store.open_blob(digest) as stream:
        assert stream.read() == data
    assert store.read_blob(digest) == data
    assert store.blob_size(digest) == len(data)
    assert store.blobs() == [digest]
    assert list(store.tmp_dir.iterdir()) == []


def test_put_blob_sha512(store: ImageStore) -> None:
    expected = Digest.of(b"x", "sha512")
    info = store.put_blob(b"x", expected)
    assert store.blob_path(info.digest).parent.name == "sha512"
    assert store.read_blob(expected) == b"x"


def test_put_blob_mismatch_stores_nothing(store: ImageStore) -> None:
    wrong = Digest.of(b"expected content")
    with pytest.raises(DigestMismatch) as caught:
        store.put_blob(io.BytesIO(b"other content"), wrong)
    assert caught.value.expected == wrong
    assert caught.value.actual == Digest.of(b"other content")
    assert not store.has_blob(wrong)
    assert not store.has_blob(Digest.of(b"other content"))
    assert list(store.tmp_dir.iterdir()) == []


def test_put_blob_size_limits(store: ImageStore) -> None:
    with pytest.raises(SizeMismatch, match="expected 3 bytes, got 4"):
        store.put_blob(b"four", expected_size=3)
    store.put_blob(b"four", expected_size=4)
    with pytest.raises(SizeMismatch):
        store.put_blob(b"", Digest.of(b"four"), expected_size=5)
    assert list(store.tmp_dir.iterdir()) == []


def test_put_blob_present_does_not_read_the_stream(store: ImageStore) -> None:
    class Unreadable(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("must not be read")

    digest = store.put_blob(b"already here").digest
    assert store.put_blob(Unreadable(), digest).size == len(b"already here")


def test_missing_blob_errors_name_digest_and_store(store: ImageStore) -> None:
    digest = Digest.of(b"nothing")
    with pytest.raises(NoSuchBlob, match=rf"blob {digest} does not exist in {store.root}"):
        store.open_blob(digest)
    with pytest.raises(NoSuchBlob):
        store.blob_size(digest)
    assert store.delete_blob(digest) is False


def test_read_blob_detects_corruption_on_disk(store: ImageStore) -> None:
    digest = store.put_blob(b"original").digest
    path = store.blob_path(digest)
    path.chmod(0o644)
    path.write_bytes(b"bitrot!!")
    with pytest.raises(DigestMismatch, match=f"blob {path}"):
        store.read_blob(digest)
    assert store.read_blob(digest, verify=False) == b"bitrot!!"


def test_delete_blob_refuses_blobs_that_images_use(store: ImageStore) -> None:
    manifest = build_image(store, [b"layer"])
    store.add_image(manifest)
    layer = Digest.of(b"layer")
    with pytest.raises(ImageStoreError, match=f"blob {layer} is used by image"):
        store.delete_blob(layer)
    assert store.delete_blob(layer, force=True) is True
    assert not store.has_blob(layer)
    loose = store.put_blob(b"loose").digest
    assert store.delete_blob(loose) is True


# --- partial writes and crashes --------------------------------------------------------------


def test_cleanup_removes_debris_of_dead_writers_only(store: ImageStore) -> None:
    debris = store.tmp_dir / f"blob-{dead_pid()}-0123abcd.partial"
    debris.write_bytes(b"half a layer")
    foreign = store.tmp_dir / "layer-unpack.tmp"  # not ours: left alone
    foreign.write_bytes(b"")
    mine = store.tmp_dir / f"blob-{os.getpid()}-feed.partial"  # a live pid: left alone
    mine.write_bytes(b"")
    assert store.cleanup_partial() == [debris]
    assert not debris.exists()
    assert foreign.exists() and mine.exists()


def test_cleanup_runs_on_open(tmp_path: Path) -> None:
    ImageStore(tmp_path).close()
    debris = tmp_path / "tmp" / f"file-{dead_pid()}-00.partial"
    debris.write_bytes(b"{")
    ImageStore(tmp_path).close()
    assert not debris.exists()


def test_cleanup_leaves_a_blob_being_written(store: ImageStore) -> None:
    started, release = threading.Event(), threading.Event()
    result: list[object] = []

    def chunks() -> Iterator[bytes]:
        yield b"first half, "
        started.set()
        release.wait(10)
        yield b"second half"

    def writer() -> None:
        result.append(store.put_blob(chunks()))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(10)
        (partial,) = store.tmp_dir.iterdir()
        # Even a second store object (another process would be the same) must not touch it.
        with ImageStore(store.root) as other:
            assert other.cleanup_partial() == []
        assert partial.exists()
    finally:
        release.set()
        thread.join(10)
    assert store.read_blob(Digest.of(b"first half, second half"))
    assert list(store.tmp_dir.iterdir()) == []


CRASHING_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cove.image.store import ImageStore

    root, ready = sys.argv[1:3]
    store = ImageStore(root)

    def chunks():
        yield b"x" * 65536
        Path(ready).touch()
        time.sleep(60)
        yield b"never"

    store.put_blob(chunks())
    """
)


def test_kill_9_during_put_blob_leaves_only_a_temp_file_that_open_removes(
    tmp_path: Path,
) -> None:
    root, ready = tmp_path / "images", tmp_path / "ready"
    ImageStore(root).close()
    child = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, str(root), str(ready)])
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            assert child.poll() is None, "the writer died early"
            assert time.monotonic() < deadline, "the writer never got going"
            time.sleep(0.01)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (partial,) = (root / "tmp").iterdir()
    assert partial.name.startswith(f"blob-{child.pid}-")
    assert partial.stat().st_size == 65536
    with ImageStore(root) as store:
        assert list(store.tmp_dir.iterdir()) == []
        assert store.blobs() == []
        assert store.images() == []
