"""Writing image archives (`cove.image.archive.save`): the images `docker save TERM...`
writes, as a docker-archive or an oci-archive (see `cove.image.archive`).
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from typing import IO, Any, BinaryIO, cast

from cove.errors import ArchiveError, InvalidArgument, InvalidReference
from cove.image.archive_entries import (
    DOCKER_ARCHIVE,
    FORMATS,
    INDEX_JSON,
    LAYOUT_VERSION,
    MANIFEST_JSON,
    OCI_LAYOUT,
    REPOSITORIES,
    _blob_name,
    _decompress,
    _decompression_errors,
    _TarWriter,
)
from cove.image.digest import CHUNK, Digest, Hasher, VerifyingReader, is_digest
from cove.image.manifest import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Descriptor,
    ImageManifest,
    canonical_json,
    check_config_matches,
    layer_compression,
    parse_config,
)
from cove.image.reference import Reference, parse_reference
from cove.image.store import ImageStore
from cove.image.store_index import ImageRecord

# --- choosing what to save -----------------------------------------------------------------


def select_images(
    store: ImageStore, terms: Iterable[str]
) -> list[tuple[ImageRecord, list[Reference]]]:
    """The images `docker save TERM...` writes, each with the names to record for it.

    A `name:tag` saves that image under that name; a bare repository name saves every tag
    of that repository (falling back to `name:latest`); an id or digest saves the image
    without names. An image named twice is saved once with all its names.
    """
    chosen: dict[Digest, tuple[ImageRecord, list[Reference]]] = {}

    def add(record: ImageRecord, names: Iterable[Reference]) -> None:
        _, have = chosen.setdefault(record.manifest_digest, (record, []))
        have.extend(name for name in names if name not in have)

    for term in terms:
        ref = _name_of(term)
        if ref is not None and ref.tag is None and ref.digest is None:
            found = False
            for record in store.images():
                tags = [name for name in record.names if name.name == ref.name]
                if tags:
                    add(record, tags)
                    found = True
            if found:
                continue
        record = store.resolve(term)
        if ref is not None and ref.digest is None:
            tagged = ref if ref.tag is not None else ref.with_tag("latest")
            add(record, [tagged] if tagged in record.names else [])
        else:
            add(record, [])
    return list(chosen.values())


def _name_of(term: str) -> Reference | None:
    if is_digest(term):
        return None
    try:
        return parse_reference(term, default_tag=False)
    except InvalidReference:
        return None


# --- save ----------------------------------------------------------------------------------


def save(
    store: ImageStore,
    images: Sequence[tuple[ImageRecord, Sequence[Reference]]],
    out: BinaryIO,
    format: str = DOCKER_ARCHIVE,
) -> None:
    """Write `images` (each with the names to record for it) to `out` as a tar.

    `format` is "docker-archive" or "oci-archive" (see the module documentation). The
    same image listed twice is written once with all its names.
    """
    if format not in FORMATS:
        raise InvalidArgument(f"unknown archive format {format!r} (use {' or '.join(FORMATS)})")
    if not images:
        raise InvalidArgument("nothing to save: no image given")
    groups: dict[Digest, tuple[ImageRecord, list[Reference]]] = {}
    for record, names in images:
        _, have = groups.setdefault(record.manifest_digest, (record, []))
        have.extend(name for name in names if name not in have)
    try:
        with tarfile.open(
            fileobj=cast(IO[bytes], out), mode="w|", format=tarfile.PAX_FORMAT
        ) as tar:
            writer = _TarWriter(tar)
            if format == DOCKER_ARCHIVE:
                _save_docker(store, list(groups.values()), writer)
            else:
                _save_oci(store, list(groups.values()), writer)
    except OSError as err:
        raise ArchiveError(f"cannot write the archive: {err.strerror or err}") from None


def _image_documents(store: ImageStore, record: ImageRecord) -> tuple[ImageManifest, bytes]:
    manifest = store.manifest(record)
    config = store.read_blob(record.id)
    return manifest, config


def _save_docker(
    store: ImageStore,
    groups: list[tuple[ImageRecord, list[Reference]]],
    writer: _TarWriter,
) -> None:
    # docker keys images by id: two manifests of one config are one image there
    by_id: dict[Digest, tuple[ImageRecord, list[Reference]]] = {}
    for record, names in groups:
        _, have = by_id.setdefault(record.id, (record, []))
        have.extend(name for name in names if name not in have)
    groups = list(by_id.values())
    entries: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    sizes: dict[Digest, int] = {}  # diff_id -> uncompressed size, once written
    for record, names in groups:
        manifest, config_bytes = _image_documents(store, record)
        config = parse_config(config_bytes)
        check_config_matches(manifest, config)
        writer.data(_blob_name(record.id), config_bytes)
        layers: list[dict[str, Any]] = []
        for descriptor, diff_id in zip(manifest.layers, config.diff_ids, strict=True):
            if diff_id not in sizes:
                sizes[diff_id] = _write_plain_layer(store, descriptor, diff_id, writer)
            layers.append({"mediaType": OCI_LAYER, "digest": str(diff_id), "size": sizes[diff_id]})
        plain = manifest.media_type == OCI_MANIFEST and all(
            d.media_type == OCI_LAYER and d.digest == diff
            for d, diff in zip(manifest.layers, config.diff_ids, strict=True)
        )
        if plain:
            oci_manifest = store.read_blob(record.manifest_digest)
        else:
            oci_manifest = canonical_json(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {
                        "mediaType": OCI_CONFIG,
                        "digest": str(record.id),
                        "size": len(config_bytes),
                    },
                    "layers": layers,
                }
            )
        manifest_digest = Digest.of(oci_manifest)
        writer.data(_blob_name(manifest_digest), oci_manifest)
        descriptor_json: dict[str, Any] = {
            "mediaType": OCI_MANIFEST,
            "digest": str(manifest_digest),
            "size": len(oci_manifest),
        }
        index.extend(_index_entries(descriptor_json, names))
        entries.append(
            {
                "Config": _blob_name(record.id),
                "RepoTags": [name.familiar() for name in names] or None,
                "Layers": [_blob_name(diff_id) for diff_id in config.diff_ids],
            }
        )
        if config.diff_ids:
            top = config.diff_ids[-1].hex
            for name in names:
                repositories.setdefault(name.familiar_name(), {})[name.tag or "latest"] = top
    writer.data(OCI_LAYOUT, canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
    writer.data(
        INDEX_JSON, canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index})
    )
    writer.data(MANIFEST_JSON, canonical_json(entries))
    if repositories:
        writer.data(REPOSITORIES, canonical_json(repositories))


def _index_entries(descriptor: dict[str, Any], names: Sequence[Reference]) -> list[dict[str, Any]]:
    if not names:
        return [descriptor]
    return [
        {
            **descriptor,
            "annotations": {
                ANNOTATION_CONTAINERD_NAME: str(name),
                ANNOTATION_REF_NAME: name.tag or "latest",
            },
        }
        for name in names
    ]


def _write_plain_layer(
    store: ImageStore, descriptor: Descriptor, diff_id: Digest, writer: _TarWriter
) -> int:
    """Write the layer as an uncompressed tar named by its diff_id; returns its size."""
    name = _blob_name(diff_id)
    compression = layer_compression(descriptor.media_type)
    if not compression:
        size = store.blob_size(descriptor.digest)
        with store.open_blob(descriptor.digest) as blob:
            reader = VerifyingReader(blob, diff_id, expected_size=size, subject=f"layer {diff_id}")
            writer.stream(name, size, reader)
        return size
    # A tar header needs the size first: decompress into an anonymous temp file.
    with (
        tempfile.TemporaryFile(dir=store.tmp_dir) as spool,
        store.open_blob(descriptor.digest) as blob,
    ):
        hasher = Hasher(expected=diff_id, subject=f"uncompressed layer {descriptor.digest}")
        source = _decompress(compression, blob)
        try:
            while chunk := source.read(CHUNK):
                hasher.update(chunk)
                spool.write(chunk)
        except _decompression_errors() as err:
            raise ArchiveError(f"layer {descriptor.digest} cannot be decompressed: {err}") from None
        hasher.verify()
        size = spool.tell()
        spool.seek(0)
        writer.stream(name, size, cast(IO[bytes], spool))
    return size


def _save_oci(
    store: ImageStore,
    groups: list[tuple[ImageRecord, list[Reference]]],
    writer: _TarWriter,
) -> None:
    writer.data(OCI_LAYOUT, canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
    index: list[dict[str, Any]] = []
    plans: list[tuple[ImageRecord, ImageManifest, bytes]] = []
    for record, names in groups:
        manifest, config_bytes = _image_documents(store, record)
        descriptor: dict[str, Any] = {
            "mediaType": record.manifest_media_type,
            "digest": str(record.manifest_digest),
            "size": record.manifest_size,
            "platform": record.platform.to_json(),
        }
        index.extend(_index_entries(descriptor, names))
        plans.append((record, manifest, config_bytes))
    writer.data(
        INDEX_JSON, canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index})
    )
    for record, manifest, config_bytes in plans:
        writer.data(_blob_name(record.manifest_digest), store.read_blob(record.manifest_digest))
        writer.data(_blob_name(record.id), config_bytes)
        for layer in manifest.layers:
            name = _blob_name(layer.digest)
            if name in writer.written:
                continue
            size = store.blob_size(layer.digest)
            with store.open_blob(layer.digest) as blob:
                reader = VerifyingReader(
                    blob, layer.digest, expected_size=size, subject=f"layer {layer.digest}"
                )
                writer.stream(name, size, reader)
