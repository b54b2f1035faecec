"""cove.image.store: the image index (add, tag, untag, resolve, remove, index.json) and two
processes at once. The blobs and crash rules are in `test_store_blobs.py`."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cove.errors import (
    AmbiguousImage,
    ImageStoreError,
    InvalidManifest,
    InvalidReference,
    NoSuchBlob,
    NoSuchImage,
)
from cove.image import manifest as m
from cove.image.digest import Digest
from cove.image.reference import parse_reference
from cove.image.store import ImageStore
from cove.image.store_index import GENERATION_ANNOTATION
from tests.unit.image.store_helpers import build_image, db_generation, index_json, index_names
from tests.unit.image.store_helpers import store as store

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
