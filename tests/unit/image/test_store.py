"""cove.image.store: the blob store, the image index, and their crash and concurrency rules."""

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
from typing import Any

import pytest

from cove.errors import (
    AmbiguousImage,
    DigestMismatch,
    ImageStoreError,
    InvalidManifest,
    InvalidReference,
    NoSuchBlob,
    NoSuchImage,
    SizeMismatch,
)
from cove.image import manifest as m
from cove.image.digest import Digest
from cove.image.reference import parse_reference
from cove.image.store import GENERATION_ANNOTATION, ImageStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    with ImageStore(tmp_path / "images") as opened:
        yield opened


def build_image(
    store: ImageStore,
    layers: list[bytes],
    *,
    created: str = "2024-01-01T00:00:00Z",
    architecture: str = "amd64",
    variant: str = "",
    store_layers: bool = True,
    note: str = "",
) -> Digest:
    """Store the blobs of a small OCI image and return its manifest digest (not added)."""
    descriptors = []
    for data in layers:
        digest = Digest.of(data)
        if store_layers:
            store.put_blob(data, digest)
        descriptors.append(m.Descriptor(m.OCI_LAYER, digest, len(data)))
    config = m.ImageConfig(
        architecture=architecture,
        os="linux",
        variant=variant,
        diff_ids=tuple(Digest.of(data) for data in layers),
        created=created,
        config=m.ExecutionConfig(cmd=("sh",), labels={"note": note} if note else {}),
    )
    config_bytes = config.to_json()
    config_info = store.put_blob(config_bytes)
    manifest = m.ImageManifest(
        m.OCI_MANIFEST,
        m.Descriptor(m.OCI_CONFIG, config_info.digest, config_info.size),
        tuple(descriptors),
    )
    return store.put_blob(manifest.to_json()).digest


def index_json(store: ImageStore) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((store.root / "index.json").read_bytes())
    return document


def index_names(store: ImageStore) -> dict[str, str]:
    """io.containerd.image.name -> digest, from index.json."""
    return {
        entry["annotations"][m.ANNOTATION_CONTAINERD_NAME]: entry["digest"]
        for entry in index_json(store)["manifests"]
        if "annotations" in entry
    }


def db_generation(store: ImageStore) -> str:
    with sqlite3.connect(store.db_path) as conn:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return str(value)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


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


# --- images ----------------------------------------------------------------------------------


def test_add_image_records_what_docker_shows(store: ImageStore) -> None:
    manifest_digest = build_image(store, [b"base", b"app"], created="2024-03-01T12:00:00.5Z")
    record = store.add_image(manifest_digest, names=["busybox", "localhost:5000/x:1"])
    manifest = store.manifest(record)
    config = store.config(record)
    assert record.manifest_digest == manifest_digest
    assert record.id == manifest.config.digest == config.digest
    assert record.short_id == record.id.hex[:12]
    assert record.manifest_media_type == m.OCI_MANIFEST
    assert record.manifest_size == store.blob_size(manifest_digest)
    assert record.size == record.manifest_size + manifest.config.size + len(b"base") + len(b"app")
    assert record.platform == m.Platform("linux", "amd64")
    assert record.created == "2024-03-01T12:00:00.5Z"
    assert record.created_time() is not None
    assert [str(n) for n in record.names] == [
        "docker.io/library/busybox:latest",
        "localhost:5000/x:1",
    ]
    assert record.repo_tags() == ["busybox:latest", "localhost:5000/x:1"]
    assert record.repo_digests() == [
        f"busybox@{manifest_digest}",
        f"localhost:5000/x@{manifest_digest}",
    ]
    assert record.index_digest is None
    assert config.config.cmd == ("sh",)
    # Adding again is harmless and keeps the names.
    assert store.add_image(manifest_digest).names == record.names


def test_index_json_follows_the_names(store: ImageStore) -> None:
    manifest_digest = build_image(store, [b"layer"], architecture="arm64", variant="v8")
    store.add_image(manifest_digest, names=["busybox:1.36", "registry.example.com/a/b"])
    document = index_json(store)
    entries = document["manifests"]
    assert [e["annotations"] for e in entries] == [
        {m.ANNOTATION_CONTAINERD_NAME: "docker.io/library/busybox:1.36",
         m.ANNOTATION_REF_NAME: "1.36"},
        {m.ANNOTATION_CONTAINERD_NAME: "registry.example.com/a/b:latest",
         m.ANNOTATION_REF_NAME: "latest"},
    ]  # fmt: skip
    for entry in entries:
        assert entry["digest"] == str(manifest_digest)
        assert entry["mediaType"] == m.OCI_MANIFEST
        assert entry["size"] == store.blob_size(manifest_digest)
        assert entry["platform"] == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    assert document["annotations"][GENERATION_ANNOTATION] == db_generation(store)
    # The index is a valid OCI index for our own parser, too.
    assert len(m.parse_index((store.root / "index.json").read_bytes()).manifests) == 2


def test_add_image_needs_all_its_blobs(store: ImageStore) -> None:
    manifest_digest = build_image(store, [b"present", b"absent"], store_layers=False)
    store.put_blob(b"present")
    with pytest.raises(NoSuchBlob, match=str(Digest.of(b"absent"))):
        store.add_image(manifest_digest)
    assert store.images() == []
    with pytest.raises(NoSuchBlob):
        store.add_image(Digest.of(b"no manifest"))


def test_add_image_checks_the_documents(store: ImageStore) -> None:
    config = m.ImageConfig("amd64", "linux", diff_ids=(Digest.of(b"a"), Digest.of(b"b")))
    config_info = store.put_blob(config.to_json())
    layer = store.put_blob(b"a")
    one_layer = m.ImageManifest(
        m.OCI_MANIFEST,
        m.Descriptor(m.OCI_CONFIG, config_info.digest, config_info.size),
        (m.Descriptor(m.OCI_LAYER, layer.digest, layer.size),),
    )
    digest = store.put_blob(one_layer.to_json()).digest
    with pytest.raises(InvalidManifest, match=r"has 1 layers but config .* lists 2 diff_ids"):
        store.add_image(digest)
    artifact = m.ImageManifest(
        m.OCI_MANIFEST, m.Descriptor("application/vnd.example+json", layer.digest, 1), ()
    )
    with pytest.raises(InvalidManifest, match="is not an image: config media type"):
        store.add_image(store.put_blob(artifact.to_json()).digest)
    with pytest.raises(InvalidManifest):
        store.add_image(layer.digest)  # not a manifest at all


def test_add_image_through_an_index(store: ImageStore) -> None:
    manifest_digest = build_image(store, [b"layer"])
    size = store.blob_size(manifest_digest)
    entry = m.Descriptor(
        m.OCI_MANIFEST, manifest_digest, size, platform=m.Platform("linux", "amd64")
    )
    other = m.Descriptor(
        m.OCI_MANIFEST, Digest.of(b"elsewhere"), 1, platform=m.Platform("linux", "s390x")
    )
    index = m.ImageIndex(m.OCI_INDEX, (entry, other))
    index_digest = store.put_blob(index.to_json()).digest
    record = store.add_image(manifest_digest, names=["app:1"], index=index_digest)
    assert record.index_digest == index_digest
    assert record.repo_digests() == [f"app@{index_digest}"]
    assert store.resolve(f"app@{index_digest}") == record
    assert store.resolve(f"anything@{manifest_digest}") == record
    stray = m.ImageIndex(m.OCI_INDEX, (other,))
    with pytest.raises(InvalidManifest, match="does not list"):
        store.add_image(manifest_digest, index=store.put_blob(stray.to_json()).digest)


def test_resolve_follows_dockers_lookup_rules(store: ImageStore) -> None:
    record = store.add_image(build_image(store, [b"l"]), names=["busybox", "quay.io/a/b:2"])
    image_id = record.id
    for term in (
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox",
        "docker.io/library/busybox:latest",
        "quay.io/a/b:2",
        str(image_id),
        image_id.hex,
        image_id.hex[:12],
        image_id.hex[:4],
        f"sha256:{image_id.hex[:12]}",
        str(record.manifest_digest),
        f"busybox@{record.manifest_digest}",
    ):
        assert store.resolve(term) == record, term
    for term in ("busybox:other", "quay.io/a/b", image_id.hex[:3], "", "  ", "BAD NAME",
                 f"busybox@{Digest.of(b'other')}", str(Digest.of(b"other"))):  # fmt: skip
        with pytest.raises(NoSuchImage, match="no such image"):
            store.resolve(term)


def test_a_name_wins_over_an_id_prefix(store: ImageStore) -> None:
    first = store.add_image(build_image(store, [b"1"]))
    prefix = first.id.hex[:6]
    if prefix.isdigit():  # a purely numeric prefix is still a valid repository name
        prefix = first.id.hex[:7]
    second = store.add_image(build_image(store, [b"2"]), names=[prefix])
    assert store.resolve(prefix) == second
    assert store.resolve(first.id.hex[:8]) == first


def test_ambiguous_id_prefix(store: ImageStore) -> None:
    # Find two configs whose ids share their first 4 hex digits.
    seen: dict[str, int] = {}
    for n in range(5000):
        config = m.ImageConfig("amd64", "linux", created=f"2024-01-01T00:00:{n}Z")
        prefix = config.digest.hex[:4]
        if prefix in seen:
            break
        seen[prefix] = n
    else:
        pytest.fail("no prefix collision")
    records = []
    for created in (f"2024-01-01T00:00:{seen[prefix]}Z", f"2024-01-01T00:00:{n}Z"):
        config_info = store.put_blob(m.ImageConfig("amd64", "linux", created=created).to_json())
        manifest = m.ImageManifest(
            m.OCI_MANIFEST, m.Descriptor(m.OCI_CONFIG, config_info.digest, config_info.size), ()
        )
        records.append(store.add_image(store.put_blob(manifest.to_json()).digest))
    with pytest.raises(AmbiguousImage, match=f"image id prefix '{prefix}' is ambiguous") as caught:
        store.resolve(prefix)
    assert sorted(caught.value.candidates) == sorted(r.short_id for r in records)
    assert store.resolve(records[0].id.hex[:20]) == records[0]


def test_tag_moves_a_name_between_images(store: ImageStore) -> None:
    old = store.add_image(build_image(store, [b"v1"]), names=["app:stable"])
    new = store.add_image(build_image(store, [b"v2"]))
    ref = store.tag(new.short_id, "app:stable")
    assert ref == parse_reference("docker.io/library/app:stable")
    assert store.resolve("app:stable").manifest_digest == new.manifest_digest
    assert store.resolve(old.short_id).names == ()
    assert index_names(store) == {"docker.io/library/app:stable": str(new.manifest_digest)}
    assert str(store.tag(new, "other")) == "docker.io/library/other:latest"
    with pytest.raises(InvalidReference, match="a digest reference cannot be used as a tag"):
        store.tag(new, f"app@{new.manifest_digest}")
    with pytest.raises(NoSuchImage):
        store.tag("missing", "app:x")


def test_untag_leaves_a_dangling_image(store: ImageStore) -> None:
    record = store.add_image(build_image(store, [b"l"]), names=["a", "b"])
    assert store.untag("a").names == (parse_reference("b"),)
    dangling = store.untag("docker.io/library/b:latest")
    assert dangling.names == ()
    assert store.resolve(record.short_id) == dangling
    (entry,) = index_json(store)["manifests"]
    assert entry["digest"] == str(record.manifest_digest)
    assert "annotations" not in entry
    with pytest.raises(NoSuchImage, match="no such image: a"):
        store.untag("a")


def test_remove_keeps_blobs_shared_with_another_image(store: ImageStore) -> None:
    base, first_only, second_only = b"shared base layer", b"first app", b"second app"
    first = store.add_image(build_image(store, [base, first_only], note="1"), names=["one"])
    second = store.add_image(build_image(store, [base, second_only], note="2"), names=["two"])
    removal = store.remove("one")
    assert removal.image == first
    assert removal.untagged == (parse_reference("one"),)
    assert set(removal.deleted) == {first.manifest_digest, first.id, Digest.of(first_only)}
    assert store.has_blob(Digest.of(base))
    assert store.resolve("two") == second
    with pytest.raises(NoSuchImage):
        store.resolve("one")
    assert index_names(store) == {"docker.io/library/two:latest": str(second.manifest_digest)}
    removal = store.remove(second)
    assert Digest.of(base) in removal.deleted
    assert store.blobs() == []
    assert store.images() == []
    assert index_json(store)["manifests"] == []
    with pytest.raises(NoSuchImage):
        store.remove(second)


def test_images_with_the_same_layers_twice(store: ImageStore) -> None:
    # One image listing a blob twice (two identical empty layers) counts it once.
    record = store.add_image(build_image(store, [b"same", b"same"]))
    assert store.remove(record).deleted.count(Digest.of(b"same")) == 1


def test_failed_remove_rolls_back_and_open_repairs_index_json(
    store: ImageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = store.add_image(build_image(store, [b"l"]), names=["keep"])

    def failing_unlink(digest: Digest) -> bool:
        raise ImageStoreError(f"cannot delete blob {digest}: simulated")

    monkeypatch.setattr(store, "_unlink_blob", failing_unlink)
    with pytest.raises(ImageStoreError, match="simulated"):
        store.remove("keep")
    monkeypatch.undo()
    # The database rolled back; index.json was already rewritten (as after a crash between
    # rename and commit) and is now one generation ahead.
    assert store.resolve("keep") == record
    assert index_names(store) == {}
    assert index_json(store)["annotations"][GENERATION_ANNOTATION] != db_generation(store)
    with ImageStore(store.root) as reopened:
        assert index_names(reopened) == {
            "docker.io/library/keep:latest": str(record.manifest_digest)
        }
        assert index_json(reopened)["annotations"][GENERATION_ANNOTATION] == db_generation(store)


def test_missing_index_json_is_rebuilt_on_open(store: ImageStore) -> None:
    record = store.add_image(build_image(store, [b"l"]), names=["x"])
    (store.root / "index.json").unlink()
    with ImageStore(store.root) as reopened:
        assert index_names(reopened) == {"docker.io/library/x:latest": str(record.manifest_digest)}


def test_images_newest_first(store: ImageStore) -> None:
    old = store.add_image(build_image(store, [b"o"], created="2020-01-01T00:00:00Z"))
    new = store.add_image(build_image(store, [b"n"], created="2024-01-01T00:00:00Z"))
    unknown = store.add_image(build_image(store, [b"u"], created=""))
    assert [r.manifest_digest for r in store.images()] == [
        new.manifest_digest,
        old.manifest_digest,
        unknown.manifest_digest,
    ]


# --- two processes at once -------------------------------------------------------------------

CONCURRENT_TAGGER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from cove.image import manifest as m
    from cove.image.digest import Digest
    from cove.image.store import ImageStore

    root, prefix, go = sys.argv[1:4]
    while not Path(go).exists():
        time.sleep(0.001)
    store = ImageStore(root)  # both processes create the store at the same moment
    shared = store.put_blob(b"a base layer both images share")
    own = store.put_blob(prefix.encode() * 1000)
    config = m.ImageConfig("amd64", "linux", diff_ids=(shared.digest, own.digest))
    config_info = store.put_blob(config.to_json())
    manifest = m.ImageManifest(
        m.OCI_MANIFEST,
        m.Descriptor(m.OCI_CONFIG, config_info.digest, config_info.size),
        tuple(m.Descriptor(m.OCI_LAYER, b.digest, b.size) for b in (shared, own)),
    )
    record = store.add_image(store.put_blob(manifest.to_json()).digest)
    for i in range(40):
        store.tag(record, f"{prefix}:{i}")
        store.tag(record, "contested:latest")
        time.sleep(0.005)  # let the other writer in, so the two really alternate
    print(record.manifest_digest)
    """
)


def test_two_processes_tagging_at_once(tmp_path: Path) -> None:
    root, go = tmp_path / "images", tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_TAGGER, str(root), prefix, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("alpha", "beta")
    ]
    time.sleep(0.2)
    go.touch()
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    digests = {
        prefix: out.strip() for prefix, (out, _) in zip(("alpha", "beta"), outputs, strict=True)
    }
    with ImageStore(root) as store:
        names = index_names(store)
        assert len(names) == 81
        for prefix, digest in digests.items():
            for i in range(40):
                assert names[f"docker.io/library/{prefix}:{i}"] == digest
                assert str(store.resolve(f"{prefix}:{i}").manifest_digest) == digest
        assert names["docker.io/library/contested:latest"] in digests.values()
        assert index_json(store)["annotations"][GENERATION_ANNOTATION] == db_generation(store)
        assert len(store.images()) == 2
        assert list(store.tmp_dir.iterdir()) == []
        with sqlite3.connect(store.db_path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # The shared layer survives the removal of one of the two images.
        store.remove("alpha:0")
        assert store.has_blob(Digest.of(b"a base layer both images share"))


def test_a_new_database_is_built_aside_and_linked_into_place(tmp_path: Path) -> None:
    from cove.image.store_index import _create_db

    root = tmp_path / "images"
    with ImageStore(root) as store:
        assert list(store.tmp_dir.iterdir()) == []
        assert db_generation(store) == index_json(store)["annotations"][GENERATION_ANNOTATION]
    assert not _create_db(root / "images.db", root / "tmp")  # there already: left alone
    assert list((root / "tmp").iterdir()) == []
    with sqlite3.connect(root / "images.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("1",)
