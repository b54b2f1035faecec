"""cove.image.archive: docker-archive and OCI archive save/load, and hostile archives."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from cove.cli.engine import Context, run_module
from cove.errors import ArchiveError, ArchiveRejected, InvalidArgument
from cove.image import manifest as m
from cove.image.archive import LoadedImage, load, save, select_images
from cove.image.digest import Digest
from cove.image.reference import parse_reference
from cove.image.store import ImageStore
from cove.image.store_index import ImageRecord

# --- helpers -------------------------------------------------------------------------------


def layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def config_doc(diff_ids: list[Digest], **extra: Any) -> bytes:
    return m.canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
            **extra,
        }
    )


def add_image(
    store: ImageStore,
    layers: list[bytes],
    names: list[str],
    *,
    compress: bool = False,
    tag: str = "",
) -> ImageRecord:
    """An image with these (uncompressed) layers; stored gzip'ed as docker's when asked."""
    diff_ids = [Digest.of(layer) for layer in layers]
    config = config_doc(diff_ids, **({"comment": tag} if tag else {}))
    config_info = store.put_blob(config)
    descriptors = []
    for layer in layers:
        data = gzip.compress(layer, mtime=0) if compress else layer
        info = store.put_blob(data)
        media = m.DOCKER_LAYER_GZIP if compress else m.OCI_LAYER
        descriptors.append({"mediaType": media, "digest": str(info.digest), "size": info.size})
    manifest = {
        "schemaVersion": 2,
        "mediaType": m.DOCKER_MANIFEST if compress else m.OCI_MANIFEST,
        "config": {
            "mediaType": m.DOCKER_CONFIG if compress else m.OCI_CONFIG,
            "digest": str(config_info.digest),
            "size": config_info.size,
        },
        "layers": descriptors,
    }
    manifest_info = store.put_blob(m.canonical_json(manifest))
    return store.add_image(manifest_info.digest, names=names)


class Archive:
    """Builds a tar in memory, entry by entry, in the order given."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.PAX_FORMAT)

    def file(self, name: str, data: bytes) -> Archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))
        return self

    def json(self, name: str, value: Any) -> Archive:
        return self.file(name, json.dumps(value).encode())

    def link(self, name: str, target: str, *, hard: bool = False) -> Archive:
        info = tarfile.TarInfo(name)
        info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
        info.linkname = target
        self.tar.addfile(info)
        return self

    def special(self, name: str, kind: bytes) -> Archive:
        info = tarfile.TarInfo(name)
        info.type = kind
        self.tar.addfile(info)
        return self

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()


LAYER = layer_tar({"bin/hello": b"hello\n"})
LAYER2 = layer_tar({"etc/motd": b"second layer\n"})


def docker_archive(
    layers: list[bytes] | None = None,
    *,
    tags: list[str] | None = None,
    manifest_first: bool = False,
    layer_paths: list[str] | None = None,
    gzip_layers: bool = False,
) -> Archive:
    layers = [LAYER] if layers is None else layers
    diff_ids = [Digest.of(layer) for layer in layers]
    config = config_doc(diff_ids)
    config_name = f"{Digest.of(config).hex}.json"
    paths = layer_paths or [f"{d.hex}/layer.tar" for d in diff_ids]
    manifest = [{"Config": config_name, "RepoTags": tags or ["bb:1"], "Layers": paths}]
    archive = Archive()
    if manifest_first:
        archive.json("manifest.json", manifest)
    for path, layer in zip(paths, layers, strict=True):
        archive.file(path, gzip.compress(layer) if gzip_layers else layer)
    archive.file(config_name, config)
    if not manifest_first:
        archive.json("manifest.json", manifest)
    return archive


def blobs_of(store: ImageStore) -> list[Digest]:
    return store.blobs()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    with ImageStore(tmp_path / "images") as opened:
        yield opened


@pytest.fixture
def other(tmp_path: Path) -> Iterator[ImageStore]:
    with ImageStore(tmp_path / "other") as opened:
        yield opened


def saved(store: ImageStore, terms: list[str], fmt: str = "docker-archive") -> bytes:
    out = io.BytesIO()
    save(store, select_images(store, terms), out, fmt)
    return out.getvalue()


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            info.name: tar.extractfile(info).read()  # type: ignore[union-attr]
            for info in tar
            if info.isfile()
        }


# --- save ----------------------------------------------------------------------------------


def test_docker_archive_has_docker_layout(store: ImageStore) -> None:
    record = add_image(store, [LAYER, LAYER2], ["bb:1", "localhost:5000/x/bb:2"])
    files = members(saved(store, ["bb:1", "localhost:5000/x/bb:2"]))
    manifest = json.loads(files["manifest.json"])
    assert len(manifest) == 1
    assert manifest[0]["Config"] == f"blobs/sha256/{record.id.hex}"
    assert manifest[0]["RepoTags"] == ["bb:1", "localhost:5000/x/bb:2"]
    diff_ids = [Digest.of(LAYER), Digest.of(LAYER2)]
    assert manifest[0]["Layers"] == [f"blobs/sha256/{d.hex}" for d in diff_ids]
    assert files[manifest[0]["Layers"][1]] == LAYER2
    assert json.loads(files["repositories"]) == {
        "bb": {"1": diff_ids[1].hex},
        "localhost:5000/x/bb": {"2": diff_ids[1].hex},
    }
    # it is an OCI layout as well, naming the stored (already plain) manifest
    index = json.loads(files["index.json"])
    assert [e["digest"] for e in index["manifests"]] == [str(record.manifest_digest)] * 2
    assert index["manifests"][0]["annotations"] == {
        m.ANNOTATION_CONTAINERD_NAME: "docker.io/library/bb:1",
        m.ANNOTATION_REF_NAME: "1",
    }
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}


def test_docker_archive_decompresses_stored_layers(store: ImageStore) -> None:
    add_image(store, [LAYER], ["bb:gz"], compress=True)
    files = members(saved(store, ["bb:gz"]))
    layer_path = json.loads(files["manifest.json"])[0]["Layers"][0]
    assert layer_path == f"blobs/sha256/{Digest.of(LAYER).hex}"
    assert files[layer_path] == LAYER
    # the OCI view gets a new manifest listing the plain layer
    index = json.loads(files["index.json"])
    oci_manifest = json.loads(files["blobs/" + index["manifests"][0]["digest"].replace(":", "/")])
    assert oci_manifest["layers"] == [
        {"mediaType": m.OCI_LAYER, "digest": str(Digest.of(LAYER)), "size": len(LAYER)}
    ]


def test_corrupt_store_layer_fails_the_save(store: ImageStore) -> None:
    record = add_image(store, [LAYER], ["bb:1"])
    path = store.blob_path(store.manifest(record).layers[0].digest)
    os.chmod(path, 0o644)
    path.write_bytes(LAYER[:-1] + b"x")
    with pytest.raises(Exception, match="digest mismatch"):
        saved(store, ["bb:1"])


def test_select_images_follows_docker(store: ImageStore) -> None:
    one = add_image(store, [LAYER], ["bb:1", "bb:one"])
    two = add_image(store, [LAYER2], ["bb:2", "other:x"])
    by_repo = select_images(store, ["bb"])
    assert {r.manifest_digest: [n.familiar() for n in names] for r, names in by_repo} == {
        one.manifest_digest: ["bb:1", "bb:one"],
        two.manifest_digest: ["bb:2"],
    }
    assert select_images(store, [one.id.hex[:12]]) == [(one, [])]
    assert select_images(store, [str(two.id), "other:x"]) == [(two, [parse_reference("other:x")])]
    with pytest.raises(Exception, match="no such image"):
        select_images(store, ["missing:tag"])
    with pytest.raises(InvalidArgument):
        save(store, [], io.BytesIO())
    with pytest.raises(InvalidArgument, match="unknown archive format"):
        save(store, [(one, [])], io.BytesIO(), "zip")


def test_oci_archive_keeps_images_as_stored(store: ImageStore, other: ImageStore) -> None:
    record = add_image(store, [LAYER], ["bb:gz"], compress=True)
    data = saved(store, ["bb:gz"], "oci-archive")
    files = members(data)
    index = json.loads(files["index.json"])
    assert index["manifests"][0]["digest"] == str(record.manifest_digest)
    assert index["manifests"][0]["mediaType"] == m.DOCKER_MANIFEST
    assert "manifest.json" not in files
    loaded = load(other, io.BytesIO(data))
    assert [i.record.manifest_digest for i in loaded] == [record.manifest_digest]
    assert [n.familiar() for n in loaded[0].names] == ["bb:gz"]
    assert set(other.blobs()) == set(store.blobs())


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_docker_round_trip(store: ImageStore, other: ImageStore, compress: bool) -> None:
    record = add_image(store, [LAYER, LAYER2], ["bb:1"], compress=compress)
    unnamed = add_image(store, [LAYER2], [], tag="unnamed")
    loaded = load(other, io.BytesIO(saved(store, ["bb:1", unnamed.id.hex])))
    assert [i.record.id for i in loaded] == [record.id, unnamed.id]
    assert loaded[0].lines() == ["Loaded image: bb:1"]
    assert loaded[1].lines() == [f"Loaded image ID: {unnamed.id}"]
    back = other.resolve("bb:1")
    assert other.config(back).diff_ids == store.config(record).diff_ids
    layers = other.manifest(back).layers
    assert [(d.media_type, d.digest) for d in layers] == [
        (m.OCI_LAYER, Digest.of(LAYER)),
        (m.OCI_LAYER, Digest.of(LAYER2)),
    ]
    # a second load changes nothing
    again = load(other, io.BytesIO(saved(store, ["bb:1"])))
    assert again[0].record.manifest_digest == back.manifest_digest
    assert len(other.images()) == 2


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_compressed_archives_load(other: ImageStore, compression: str) -> None:
    data = docker_archive().bytes()
    packed = gzip.compress(data) if compression == "gzip" else zstandard.compress(data)
    loaded = load(other, io.BytesIO(packed))
    assert loaded[0].lines() == ["Loaded image: bb:1"]


def test_any_member_order(other: ImageStore) -> None:
    for first in (True, False):
        loaded = load(other, io.BytesIO(docker_archive(manifest_first=first).bytes()))
        assert other.config(loaded[0].record).diff_ids == (Digest.of(LAYER),)


def test_gzip_layers_in_a_docker_archive_are_stored_plain(other: ImageStore) -> None:
    loaded = load(other, io.BytesIO(docker_archive(gzip_layers=True).bytes()))
    layer = other.manifest(loaded[0].record).layers[0]
    assert layer.digest == Digest.of(LAYER) and layer.size == len(LAYER)
    assert other.read_blob(layer.digest) == LAYER


def test_links_inside_the_archive_are_aliases(other: ImageStore) -> None:
    # as skopeo writes it: <id>/layer.tar -> ../<diff_id>.tar
    hexed = Digest.of(LAYER).hex
    archive = Archive().file(f"{hexed}.tar", LAYER).link("v1id/layer.tar", f"../{hexed}.tar")
    archive.link("hard.tar", f"{hexed}.tar", hard=True)
    config = config_doc([Digest.of(LAYER)])
    archive.file("cfg.json", config)
    archive.json("manifest.json", [{"Config": "cfg.json", "RepoTags": None,
                                    "Layers": ["./v1id/layer.tar"]}])  # fmt: skip
    loaded = load(other, io.BytesIO(archive.bytes()))
    assert loaded[0].names == () and loaded[0].record.id == Digest.of(config)


def test_oci_names(other: ImageStore) -> None:
    config = config_doc([Digest.of(LAYER)])
    manifest = m.canonical_json({
        "schemaVersion": 2, "mediaType": m.OCI_MANIFEST,
        "config": {"mediaType": m.OCI_CONFIG, "digest": str(Digest.of(config)),
                   "size": len(config)},
        "layers": [{"mediaType": m.OCI_LAYER, "digest": str(Digest.of(LAYER)),
                    "size": len(LAYER)}],
    })  # fmt: skip
    descriptor = {"mediaType": m.OCI_MANIFEST, "digest": str(Digest.of(manifest)),
                  "size": len(manifest)}  # fmt: skip
    entries = [
        {**descriptor, "annotations": {m.ANNOTATION_REF_NAME: "latest"}},
        {**descriptor, "annotations": {m.ANNOTATION_REF_NAME: "bb:skopeo"}},
        {**descriptor, "annotations": {m.ANNOTATION_REF_NAME: "v1",
                                       m.ANNOTATION_CONTAINERD_NAME: "quay.io/a/b:v1"}},
    ]  # fmt: skip
    archive = Archive().json("oci-layout", {"imageLayoutVersion": "1.0.0"})
    archive.json("index.json", {"schemaVersion": 2, "manifests": entries})
    for blob in (manifest, config, LAYER):
        archive.file(f"blobs/sha256/{Digest.of(blob).hex}", blob)
    loaded = load(other, io.BytesIO(archive.bytes()))
    assert len(loaded) == 1
    assert [n.familiar() for n in loaded[0].names] == ["bb:skopeo", "quay.io/a/b:v1"]
    # a bare tag alone names nothing
    bare = Archive().json("oci-layout", {"imageLayoutVersion": "1.0.0"})
    bare.json("index.json", {"schemaVersion": 2, "manifests": entries[:1]})
    for blob in (manifest, config, LAYER):
        bare.file(f"blobs/sha256/{Digest.of(blob).hex}", blob)
    assert load(other, io.BytesIO(bare.bytes()))[0].names == ()


# --- hostile and broken archives -----------------------------------------------------------


def with_manifest(archive: Archive, layers: list[str], config: bytes | None = None) -> bytes:
    config = config or config_doc([Digest.of(LAYER)] * len(layers))
    archive.file("c.json", config)
    archive.json("manifest.json", [{"Config": "c.json", "RepoTags": ["bb:1"], "Layers": layers}])
    return archive.bytes()


HOSTILE: dict[str, tuple[bytes, str]] = {
    "dotdot": (with_manifest(Archive().file("../evil.tar", LAYER), ["evil.tar"]), "../evil.tar"),
    "absolute": (with_manifest(Archive().file("/abs.tar", LAYER), ["abs.tar"]), "/abs.tar"),
    "dotdot deep": (
        with_manifest(Archive().file("a/../../x.tar", LAYER), ["x.tar"]),
        "a/../../x.tar",
    ),
    "symlink out": (
        with_manifest(Archive().link("l.tar", "../../etc/passwd"), ["l.tar"]),
        "l.tar",
    ),
    "symlink absolute": (with_manifest(Archive().link("l.tar", "/etc/passwd"), ["l.tar"]), "l.tar"),
    "hardlink unseen": (
        with_manifest(Archive().link("h.tar", "later.tar", hard=True), ["h.tar"]),
        "h.tar",
    ),
    "device": (with_manifest(Archive().special("dev", tarfile.CHRTYPE), []), "dev"),
    "fifo": (with_manifest(Archive().special("fifo", tarfile.FIFOTYPE), []), "fifo"),
    "duplicate": (
        with_manifest(Archive().file("l.tar", LAYER).file("./l.tar", LAYER), ["l.tar"]),
        "./l.tar",
    ),
    "manifest escapes": (
        with_manifest(Archive().file("l.tar", LAYER), ["../../etc/passwd"]),
        "manifest.json",
    ),
    "manifest absolute": (with_manifest(Archive(), ["/etc/passwd"]), "manifest.json"),
    "missing layer": (with_manifest(Archive(), ["nothere.tar"]), "manifest.json"),
    "link loop": (
        with_manifest(Archive().link("a.tar", "b.tar").link("b.tar", "a.tar"), ["a.tar"]),
        "manifest.json",
    ),
    "wrong layer": (with_manifest(Archive().file("l.tar", LAYER2), ["l.tar"]), "l.tar"),
    "wrong gzip layer": (
        with_manifest(Archive().file("l.tar", gzip.compress(LAYER2)), ["l.tar"]),
        "l.tar",
    ),
    "config name lies": (
        Archive()
        .file("l.tar", LAYER)
        .file(f"{'ab' * 32}.json", config_doc([Digest.of(LAYER)]))
        .json("manifest.json", [{"Config": f"{'ab' * 32}.json", "Layers": ["l.tar"]}])
        .bytes(),
        f"{'ab' * 32}.json",
    ),
    "layer count": (
        with_manifest(
            Archive().file("l.tar", LAYER), ["l.tar", "l.tar"], config_doc([Digest.of(LAYER)])
        ),
        "manifest.json",
    ),
    "bad json": (Archive().file("manifest.json", b"[{").bytes(), "manifest.json"),
    "bad tag": (
        Archive()
        .file("l.tar", LAYER)
        .file("c.json", config_doc([Digest.of(LAYER)]))
        .json(
            "manifest.json", [{"Config": "c.json", "RepoTags": ["bad name!"], "Layers": ["l.tar"]}]
        )
        .bytes(),
        "manifest.json",
    ),
    "oci blob mismatch": (
        Archive()
        .json("oci-layout", {"imageLayoutVersion": "1.0.0"})
        .json(
            "index.json",
            {
                "schemaVersion": 2,
                "manifests": [
                    {"mediaType": m.OCI_MANIFEST, "digest": str(Digest.of(b"x")), "size": 1}
                ],
            },
        )
        .file(f"blobs/sha256/{Digest.of(b'x').hex}", b"y")
        .bytes(),
        f"blobs/sha256/{Digest.of(b'x').hex}",
    ),
    "oci missing blob": (
        Archive()
        .json("oci-layout", {"imageLayoutVersion": "1.0.0"})
        .json(
            "index.json",
            {
                "schemaVersion": 2,
                "manifests": [
                    {"mediaType": m.OCI_MANIFEST, "digest": str(Digest.of(b"x")), "size": 1}
                ],
            },
        )
        .bytes(),
        "index.json",
    ),
    "oci layout version": (
        Archive().json("oci-layout", {"imageLayoutVersion": "9"}).bytes(),
        "oci-layout",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_archives_are_refused(store: ImageStore, case: str) -> None:
    data, entry = HOSTILE[case]
    with pytest.raises(ArchiveRejected) as caught:
        load(store, io.BytesIO(data))
    assert caught.value.entry == entry
    assert repr(entry) in str(caught.value)
    assert store.images() == [] and store.blobs() == []
    assert list(store.tmp_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the archive is empty"),
        (b"not a tar at all" * 100, "not a valid tar archive"),
        (gzip.compress(b"x" * 1000)[:-8], "not a valid gzip-compressed tar archive"),
        (Archive().file("hello.txt", b"hi").bytes(), "neither manifest.json"),
    ],
)
def test_broken_archives(store: ImageStore, data: bytes, message: str) -> None:
    with pytest.raises(ArchiveError, match=message):
        load(store, io.BytesIO(data))
    assert store.blobs() == []


def test_a_failure_late_in_the_load_removes_what_it_added(store: ImageStore) -> None:
    kept = add_image(store, [LAYER], ["kept:1"])
    before = set(store.blobs())
    # image 1 is fine (and shares LAYER); image 2's gzip layer does not match its diff_id,
    # which is found only while it is copied into the store
    good = config_doc([Digest.of(LAYER), Digest.of(LAYER2)])
    bad = config_doc([Digest.of(LAYER2)], comment="bad")
    archive = Archive().file("a.tar", LAYER).file("b.tar", LAYER2)
    archive.file("c.tar", gzip.compress(LAYER))
    archive.file("good.json", good).file("bad.json", bad)
    archive.json("manifest.json", [
        {"Config": "good.json", "RepoTags": ["kept:1"], "Layers": ["a.tar", "b.tar"]},
        {"Config": "bad.json", "RepoTags": ["bad:1"], "Layers": ["c.tar"]},
    ])  # fmt: skip
    with pytest.raises(ArchiveRejected, match=r"'c\.tar'"):
        load(store, io.BytesIO(archive.bytes()))
    assert set(store.blobs()) == before
    assert [r.manifest_digest for r in store.images()] == [kept.manifest_digest]
    assert store.resolve("kept:1").manifest_digest == kept.manifest_digest


def test_large_members_spool_to_anonymous_temp_files(store: ImageStore) -> None:
    big = layer_tar({"big": os.urandom(3 << 20)})
    loaded = load(store, io.BytesIO(docker_archive([big, LAYER]).bytes()))
    assert store.config(loaded[0].record).diff_ids == (Digest.of(big), Digest.of(LAYER))
    assert list(store.tmp_dir.iterdir()) == []


def test_kill_during_load_leaves_nothing_after_reopen(tmp_path: Path) -> None:
    root = tmp_path / "images"
    ImageStore(root).close()
    data = docker_archive([layer_tar({"big": os.urandom(4 << 20)})]).bytes()
    script = textwrap.dedent(f"""
        import sys
        from cove.image.archive import load
        from cove.image.store import ImageStore
        with ImageStore({str(root)!r}) as store:
            load(store, sys.stdin.buffer)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    assert child.stdin is not None
    child.stdin.write(data[: len(data) // 2])
    child.stdin.flush()
    time.sleep(1.0)  # it is now blocked reading the rest
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdin.close()
    with ImageStore(root) as store:
        assert store.images() == [] and store.blobs() == []
        assert list(store.tmp_dir.iterdir()) == []


# --- the CLI verbs -------------------------------------------------------------------------


def test_cli_save_and_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ImageStore(tmp_path / "a" / "images") as store:
        record = add_image(store, [LAYER], ["bb:1"])
    source, target = Context(str(tmp_path / "a"), False), Context(str(tmp_path / "b"), False)
    out = tmp_path / "bb.tar"
    assert run_module("image_save", "cove save", "", ["-o", str(out), "bb:1"], source) == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".cove-save")] == []
    assert run_module("image_load", "cove load", "", ["-i", str(out), "-q"], target) == 0
    assert capsys.readouterr().out == "Loaded image: bb:1\n"
    with ImageStore(tmp_path / "b" / "images") as loaded:
        assert loaded.resolve("bb:1").id == record.id
    oci = tmp_path / "bb.oci.tar"
    args = ["--output", str(oci), "--format", "oci-archive", record.id.hex[:8]]
    assert run_module("image_save", "cove save", "", args, source) == 0
    assert run_module("image_load", "cove load", "", ["--input", str(oci)], target) == 0
    assert capsys.readouterr().out == f"Loaded image ID: {record.id}\n"


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    context = Context(str(tmp_path / "a"), False)
    missing = tmp_path / "missing.tar"
    assert run_module("image_load", "cove load", "", ["-i", str(missing)], context) == 1
    assert str(missing) in capsys.readouterr().err
    out = tmp_path / "x.tar"
    assert run_module("image_save", "cove save", "", ["-o", str(out), "nope:1"], context) == 1
    assert "no such image: nope:1" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.glob(".cove-save*")) == []
    assert run_module("image_save", "cove save", "", ["--format", "zip", "x"], context) == 125
    bad = tmp_path / "bad.tar"
    bad.write_bytes(HOSTILE["dotdot"][0])
    assert run_module("image_load", "cove load", "", ["-i", str(bad)], context) == 1
    assert "'../evil.tar'" in capsys.readouterr().err


def test_cli_refuses_terminals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    context = Context(str(tmp_path / "a"), False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert run_module("image_save", "cove save", "", ["x"], context) == 1
    assert "cowardly refusing to save to a terminal" in capsys.readouterr().err
    assert run_module("image_load", "cove load", "", [], context) == 1
    assert "requested load from stdin, but stdin is empty" in capsys.readouterr().err


def test_loaded_image_lines() -> None:
    record = type("R", (), {"id": Digest.of(b"x")})()
    image = LoadedImage(record, (parse_reference("bb:1"), parse_reference("q.io/x:2")))
    assert image.lines() == ["Loaded image: bb:1", "Loaded image: q.io/x:2"]
