"""Loading image archives (`cove.image.archive.load`): a plan per image from a docker-archive's
``manifest.json`` or an OCI layout's ``index.json``, checked against the spooled members,
then stored all or nothing (see `cove.image.archive`).
"""

from __future__ import annotations

import contextlib
import json
import posixpath
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from cove.errors import (
    ArchiveError,
    ArchiveRejected,
    CoveError,
    DigestMismatch,
    InvalidDigest,
    InvalidManifest,
    InvalidReference,
    NoMatchingPlatform,
    SizeMismatch,
)
from cove.image.archive_entries import (
    _HEX64_RE,
    INDEX_JSON,
    LAYOUT_VERSION,
    MANIFEST_JSON,
    OCI_LAYOUT,
    _blob_name,
    _compression_of,
    _decompress,
    _decompression_errors,
    _Member,
    _read_archive,
    _Spool,
)
from cove.image.digest import CHUNK, Digest, Hasher
from cove.image.manifest import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    canonical_json,
    check_config_matches,
    parse_config,
    parse_image_manifest,
    parse_index,
    select_manifest,
)
from cove.image.reference import Reference, parse_reference
from cove.image.store import ImageStore
from cove.image.store_index import ImageRecord


@dataclass(frozen=True)
class LoadedImage:
    """An image `load` registered, with the names the archive gave it (maybe none)."""

    record: ImageRecord
    names: tuple[Reference, ...]

    def lines(self) -> list[str]:
        """What `docker load` prints for it."""
        if self.names:
            return [f"Loaded image: {name.familiar()}" for name in self.names]
        return [f"Loaded image ID: {self.record.id}"]


# --- load ----------------------------------------------------------------------------------


@dataclass
class _BlobPlan:
    """A blob to store: from an archive member, raw or decompressed."""

    digest: Digest
    member: _Member
    decompress: str = ""


@dataclass
class _ImagePlan:
    names: list[Reference]
    blobs: list[_BlobPlan]
    #: OCI: the manifest bytes; docker: built once the layers are stored (sizes known)
    manifest: bytes | None = None
    index: _BlobPlan | None = None
    config: _BlobPlan | None = None
    diff_ids: tuple[Digest, ...] = ()


def load(store: ImageStore, stream: IO[bytes] | BinaryIO) -> list[LoadedImage]:
    """Load a docker-archive or an OCI archive (maybe compressed) into `store`.

    Returns the images registered, in archive order. All or nothing: a failure removes
    what this load registered and stored (see the module documentation).
    """
    spool = _Spool(str(store.tmp_dir))
    try:
        _read_archive(stream, spool)
        if MANIFEST_JSON in spool:
            plans = _docker_plans(spool)
        elif OCI_LAYOUT in spool:
            plans = _oci_plans(spool)
        else:
            raise ArchiveError(
                "not an image archive: it has neither manifest.json (docker-archive) "
                "nor oci-layout (OCI image layout)"
            )
        return _commit(store, plans)
    finally:
        spool.close()


def _json(member: _Member) -> Any:
    try:
        return json.loads(member.read())
    except ValueError as err:
        raise ArchiveRejected(member.name, f"malformed JSON: {err}") from None


def _docker_plans(spool: _Spool) -> list[_ImagePlan]:
    document = _json(spool.members[MANIFEST_JSON])
    if not isinstance(document, list) or not document:
        raise ArchiveRejected(MANIFEST_JSON, "expected a non-empty list of images")
    plans: list[_ImagePlan] = []
    for number, entry in enumerate(document):
        where = f"image {number}: "
        if not isinstance(entry, dict):
            raise ArchiveRejected(MANIFEST_JSON, f"image {number}: expected an object")
        config_path = entry.get("Config")
        layer_paths = entry.get("Layers") or []
        tags = entry.get("RepoTags") or []
        if not isinstance(config_path, str) or not config_path:
            raise ArchiveRejected(MANIFEST_JSON, f"image {number}: Config must be a path")
        if not isinstance(layer_paths, list) or not all(isinstance(p, str) for p in layer_paths):
            raise ArchiveRejected(MANIFEST_JSON, f"image {number}: Layers must be a list of paths")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ArchiveRejected(MANIFEST_JSON, f"image {number}: RepoTags must be a list")
        config_member = spool.lookup(config_path, MANIFEST_JSON, where)
        config = _config_of(config_member)
        _check_named_digest(config_member, config.digest)
        if len(config.diff_ids) != len(layer_paths):
            raise ArchiveRejected(
                MANIFEST_JSON,
                f"image {number} lists {len(layer_paths)} layers, its config "
                f"{config_member.name!r} has {len(config.diff_ids)} diff_ids",
            )
        blobs = [_BlobPlan(config.digest, config_member)]
        for path, diff_id in zip(layer_paths, config.diff_ids, strict=True):
            member = spool.lookup(path, MANIFEST_JSON, where)
            blobs.append(_layer_plan(member, diff_id))
        names = [_repo_tag(tag, where) for tag in tags]
        plans.append(_ImagePlan(names, blobs, config=blobs[0], diff_ids=config.diff_ids))
    return plans


def _config_of(member: _Member) -> ImageConfig:
    try:
        return parse_config(member.read())
    except (InvalidManifest, InvalidDigest) as err:
        raise ArchiveRejected(member.name, str(err)) from None


def _check_named_digest(member: _Member, digest: Digest) -> None:
    """A member named by a digest (`<hex>.json`, `blobs/sha256/<hex>`) must have it."""
    stem = posixpath.basename(member.name).removesuffix(".json")
    if _HEX64_RE.fullmatch(stem) and stem != digest.hex and digest.algorithm == "sha256":
        raise ArchiveRejected(member.name, f"its name says sha256:{stem}, its content is {digest}")


def _layer_plan(member: _Member, diff_id: Digest) -> _BlobPlan:
    if member.digest == diff_id:
        return _BlobPlan(diff_id, member)
    compression = _compression_of(member.head)
    if compression:
        return _BlobPlan(diff_id, member, decompress=compression)
    if diff_id.algorithm == "sha256":
        raise ArchiveRejected(
            member.name, f"layer content is {member.digest}, the image config says {diff_id}"
        )
    return _BlobPlan(diff_id, member)  # verified (sha512) while it is stored


def _repo_tag(text: str, where: str) -> Reference:
    try:
        ref = parse_reference(text)
    except InvalidReference as err:
        raise ArchiveRejected(MANIFEST_JSON, f"{where}RepoTags: {err}") from None
    if ref.digest is not None:
        raise ArchiveRejected(MANIFEST_JSON, f"{where}RepoTags: {text!r} is not a tag")
    return ref


def _oci_plans(spool: _Spool) -> list[_ImagePlan]:
    layout = _json(spool.members[OCI_LAYOUT])
    version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
    if version != LAYOUT_VERSION:
        raise ArchiveRejected(OCI_LAYOUT, f"unsupported imageLayoutVersion {version!r}")
    if INDEX_JSON not in spool:
        raise ArchiveRejected(INDEX_JSON, "missing: an OCI image layout needs one")
    member = spool.members[INDEX_JSON]
    try:
        index = parse_index(member.read())
    except (InvalidManifest, InvalidDigest) as err:
        raise ArchiveRejected(INDEX_JSON, str(err)) from None
    plans: dict[Digest, _ImagePlan] = {}
    for descriptor in index.manifests:
        names = _oci_names(descriptor)
        nested: _BlobPlan | None = None
        if descriptor.media_type in INDEX_TYPES:
            nested = _blob_plan(spool, descriptor, INDEX_JSON)
            try:
                inner = parse_index(nested.member.read(), descriptor.media_type)
                descriptor = select_manifest(inner)
            except (InvalidManifest, InvalidDigest, NoMatchingPlatform) as err:
                raise ArchiveRejected(nested.member.name, str(err)) from None
        if descriptor.media_type not in MANIFEST_TYPES:
            continue  # an artifact, not an image
        manifest_blob = _blob_plan(spool, descriptor, INDEX_JSON)
        raw = manifest_blob.member.read()
        try:
            manifest = parse_image_manifest(raw, descriptor.media_type)
        except (InvalidManifest, InvalidDigest) as err:
            raise ArchiveRejected(manifest_blob.member.name, str(err)) from None
        if manifest.config.media_type not in CONFIG_TYPES:
            continue
        plan = plans.get(descriptor.digest)
        if plan is not None:
            plan.names.extend(name for name in names if name not in plan.names)
            continue
        config_blob = _blob_plan(spool, manifest.config, manifest_blob.member.name)
        config = _config_of(config_blob.member)
        try:
            check_config_matches(manifest, config)
        except InvalidManifest as err:
            raise ArchiveRejected(manifest_blob.member.name, str(err)) from None
        blobs = [config_blob]
        blobs += [_blob_plan(spool, layer, manifest_blob.member.name) for layer in manifest.layers]
        blobs.append(manifest_blob)
        plans[descriptor.digest] = _ImagePlan(list(names), blobs, manifest=raw, index=nested)
    if not plans:
        raise ArchiveRejected(INDEX_JSON, "lists no image")
    return list(plans.values())


def _blob_plan(spool: _Spool, descriptor: Descriptor, referrer: str) -> _BlobPlan:
    member = spool.lookup(_blob_name(descriptor.digest), referrer)
    if member.size != descriptor.size:
        raise ArchiveRejected(
            member.name, f"has {member.size} bytes, {referrer} says {descriptor.size}"
        )
    if descriptor.digest.algorithm == "sha256" and member.digest != descriptor.digest:
        raise ArchiveRejected(member.name, f"content is {member.digest}, not {descriptor.digest}")
    return _BlobPlan(descriptor.digest, member)


def _oci_names(descriptor: Descriptor) -> list[Reference]:
    full = descriptor.annotations.get(ANNOTATION_CONTAINERD_NAME, "")
    ref_name = descriptor.annotations.get(ANNOTATION_REF_NAME, "")
    text = full or (ref_name if (":" in ref_name or "/" in ref_name) else "")
    if not text:
        return []
    try:
        ref = parse_reference(text)
    except InvalidReference as err:
        raise ArchiveRejected(INDEX_JSON, f"image name: {err}") from None
    if ref.digest is not None:
        return []
    return [ref]


def _commit(store: ImageStore, plans: list[_ImagePlan]) -> list[LoadedImage]:
    created: list[Digest] = []
    registered: list[ImageRecord] = []
    before = {record.manifest_digest for record in store.images()}

    def put(data: bytes | IO[bytes] | Any, digest: Digest, entry: str, check: bool = False) -> int:
        """Store `data` as `digest`; `check` hashes it even when the blob is present (for
        content whose digest the spool could not compare: decompressed, or not sha256)."""
        fresh = not store.has_blob(digest)
        try:
            if not fresh and check and not isinstance(data, bytes):
                # present already: put_blob would not read it, but the archive must be sound
                hasher = Hasher(expected=digest, subject=digest.hex)
                while chunk := data.read(CHUNK):
                    hasher.update(chunk)
                hasher.verify()
            info = store.put_blob(data, digest)
        except (DigestMismatch, SizeMismatch) as err:
            raise ArchiveRejected(entry, str(err)) from None
        except _decompression_errors() as err:
            raise ArchiveRejected(entry, f"cannot be decompressed: {err}") from None
        if fresh:
            created.append(digest)
        return info.size

    loaded: list[LoadedImage] = []
    try:
        manifests: list[tuple[_ImagePlan, Digest]] = []
        for plan in plans:
            sizes: dict[Digest, int] = {}
            for blob in plan.blobs:
                source = blob.member.open()
                if blob.decompress:
                    source = _decompress(blob.decompress, source)
                check = bool(blob.decompress) or blob.digest.algorithm != "sha256"
                sizes[blob.digest] = put(source, blob.digest, blob.member.name, check)
            if plan.index is not None:
                put(plan.index.member.open(), plan.index.digest, plan.index.member.name)
            if plan.manifest is None:
                assert plan.config is not None
                plan.manifest = _docker_manifest(plan, sizes)
            manifest_digest = Digest.of(plan.manifest)
            put(plan.manifest, manifest_digest, "manifest")
            manifests.append((plan, manifest_digest))
        for plan, manifest_digest in manifests:
            index = None if plan.index is None else plan.index.digest
            record = store.add_image(manifest_digest, names=plan.names, index=index)
            if record.manifest_digest not in before:
                registered.append(record)
            loaded.append(LoadedImage(record, tuple(plan.names)))
    except BaseException:
        for record in registered:
            with contextlib.suppress(CoveError):
                store.remove(record)
        for digest in created:
            with contextlib.suppress(CoveError):
                store.delete_blob(digest)
        raise
    return loaded


def _docker_manifest(plan: _ImagePlan, sizes: dict[Digest, int]) -> bytes:
    assert plan.config is not None
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": str(plan.config.digest),
                "size": plan.config.member.size,
            },
            "layers": [
                {"mediaType": OCI_LAYER, "digest": str(diff_id), "size": sizes[diff_id]}
                for diff_id in plan.diff_ids
            ],
        }
    )
