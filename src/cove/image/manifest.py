"""Typed image documents: OCI manifest and index, Docker schema2 manifest and manifest list,
the image config, and platform selection from an index.

Parsing keeps the bytes it was given (`raw`): a document's digest is always computed over
the bytes that were fetched or stored, never over a re-serialisation. `to_json()` writes
canonical JSON (sorted keys, no insignificant whitespace) for documents we create;
members this module does not model are kept in `extra` dicts so they survive a round trip.

The OCI manifest and Docker's schema2 manifest have the same shape, as do the OCI index and
Docker's manifest list: one class each (`ImageManifest`, `ImageIndex`), told apart by
`media_type`. Docker schema1 manifests are refused.

Platforms live in `cove.image.platform`, the image config types in
`cove.image.image_config`, the media types in `cove.image.media_types`; all are re-exported
here.
"""

from __future__ import annotations

import json
from contextlib import contextmanager

from cove.errors import InvalidArgument as InvalidArgument
from cove.errors import (
    InvalidDigest,
    InvalidManifest,
    InvalidSpec,
    NoMatchingPlatform,
)
from cove.image.canonical import canonical_json as canonical_json
from cove.image.digest import Digest
from cove.image.image_config import _CONFIG_KEYS as _CONFIG_KEYS
from cove.image.image_config import _EXEC_KEYS as _EXEC_KEYS
from cove.image.image_config import _TIME_RE as _TIME_RE
from cove.image.image_config import ExecutionConfig as ExecutionConfig
from cove.image.image_config import History as History
from cove.image.image_config import ImageConfig as ImageConfig
from cove.image.image_config import parse_time as parse_time
from cove.image.media_types import ACCEPT as ACCEPT
from cove.image.media_types import ANNOTATION_CONTAINERD_NAME as ANNOTATION_CONTAINERD_NAME
from cove.image.media_types import ANNOTATION_CREATED as ANNOTATION_CREATED
from cove.image.media_types import ANNOTATION_REF_NAME as ANNOTATION_REF_NAME
from cove.image.media_types import CONFIG_TYPES as CONFIG_TYPES
from cove.image.media_types import DOCKER_CONFIG as DOCKER_CONFIG
from cove.image.media_types import DOCKER_FOREIGN_LAYER_GZIP as DOCKER_FOREIGN_LAYER_GZIP
from cove.image.media_types import DOCKER_LAYER_GZIP as DOCKER_LAYER_GZIP
from cove.image.media_types import DOCKER_MANIFEST as DOCKER_MANIFEST
from cove.image.media_types import DOCKER_MANIFEST_LIST as DOCKER_MANIFEST_LIST
from cove.image.media_types import DOCKER_SCHEMA1 as DOCKER_SCHEMA1
from cove.image.media_types import DOCKER_SCHEMA1_SIGNED as DOCKER_SCHEMA1_SIGNED
from cove.image.media_types import INDEX_TYPES as INDEX_TYPES
from cove.image.media_types import LAYER_TYPES as LAYER_TYPES
from cove.image.media_types import MANIFEST_TYPES as MANIFEST_TYPES
from cove.image.media_types import OCI_CONFIG as OCI_CONFIG
from cove.image.media_types import OCI_EMPTY as OCI_EMPTY
from cove.image.media_types import OCI_INDEX as OCI_INDEX
from cove.image.media_types import OCI_LAYER as OCI_LAYER
from cove.image.media_types import OCI_LAYER_GZIP as OCI_LAYER_GZIP
from cove.image.media_types import OCI_LAYER_NONDISTRIBUTABLE as OCI_LAYER_NONDISTRIBUTABLE
from cove.image.media_types import (
    OCI_LAYER_NONDISTRIBUTABLE_GZIP as OCI_LAYER_NONDISTRIBUTABLE_GZIP,
)
from cove.image.media_types import (
    OCI_LAYER_NONDISTRIBUTABLE_ZSTD as OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
)
from cove.image.media_types import OCI_LAYER_ZSTD as OCI_LAYER_ZSTD
from cove.image.media_types import OCI_LAYOUT_HEADER as OCI_LAYOUT_HEADER
from cove.image.media_types import OCI_MANIFEST as OCI_MANIFEST
from cove.image.media_types import layer_compression as layer_compression
from cove.image.platform import _ARCH_ALIASES as _ARCH_ALIASES
from cove.image.platform import _KNOWN_OS as _KNOWN_OS
from cove.image.platform import Platform as Platform
from cove.image.platform import _platform_rank as _platform_rank
from cove.image.platform import host_platform as host_platform
from cove.image.platform import parse_platform as parse_platform
from cove.image.records import Record
from cove.oci.reader import Field, opt_str

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

# Content types that say nothing about which document it is.
_GENERIC_TYPES = frozenset({"", "application/json", "application/octet-stream", "text/plain"})


# --- descriptors -------------------------------------------------------------------------


class Descriptor(Record):
    """A typed pointer to content: media type, digest, size (OCI descriptor)."""

    __slots__ = (
        "annotations",
        "artifact_type",
        "digest",
        "extra",
        "media_type",
        "platform",
        "size",
        "urls",
    )
    _field_order = (
        "media_type",
        "digest",
        "size",
        "urls",
        "annotations",
        "platform",
        "artifact_type",
        "extra",
    )

    def __init__(
        self,
        media_type: str,
        digest: Digest,
        size: int,
        urls: tuple[str, ...] = (),
        annotations: dict[str, str] | None = None,
        platform: Platform | None = None,
        artifact_type: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.media_type = media_type
        self.digest = digest
        self.size = size
        self.urls = urls
        self.annotations: dict[str, str] = {} if annotations is None else annotations
        self.platform = platform
        self.artifact_type = artifact_type
        self.extra: dict[str, Any] = {} if extra is None else extra

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(mediaType=self.media_type, digest=str(self.digest), size=self.size)
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


_DESCRIPTOR_KEYS = frozenset(
    {"mediaType", "digest", "size", "urls", "annotations", "platform", "artifactType"}
)


def _digest(node: Field) -> Digest:
    try:
        return Digest.parse(node.as_str())
    except InvalidDigest as err:
        raise node.fail(err.problem) from None


def _descriptor(node: Field) -> Descriptor:
    node.obj()
    size = node.need("size").as_int()
    if size < 0:
        raise node.need("size").fail("size must not be negative")
    platform_node = node.get("platform")
    return Descriptor(
        media_type=node.need("mediaType").as_str(),
        digest=_digest(node.need("digest")),
        size=size,
        urls=_strs(node, "urls"),
        annotations=_str_map(node, "annotations"),
        platform=None if platform_node is None else _platform(platform_node),
        artifact_type=opt_str(node, "artifactType"),
        extra={k: v for k, v in node.value.items() if k not in _DESCRIPTOR_KEYS},
    )


def _platform(node: Field) -> Platform:
    node.obj()
    return Platform(
        os=node.need("os").as_str(),
        architecture=node.need("architecture").as_str(),
        variant=opt_str(node, "variant"),
        os_version=opt_str(node, "os.version"),
        os_features=_strs(node, "os.features"),
    )


def _strs(node: Field, key: str) -> tuple[str, ...]:
    child = node.get(key)
    return () if child is None else child.strs()


def _str_map(node: Field, key: str) -> dict[str, str]:
    child = node.get(key)
    return {} if child is None else child.str_map()


# --- manifests and indexes -----------------------------------------------------------------


class _Document(Record):
    """What manifests and indexes share: the optional fields, the bytes a digest covers.
    `raw` takes no part in equality and repr."""

    __slots__ = ()
    _hidden = ("raw",)
    media_type: str
    annotations: dict[str, str]
    subject: Descriptor | None
    artifact_type: str
    schema_version: int
    extra: dict[str, Any]
    raw: bytes

    def to_json(self) -> bytes:
        raise NotImplementedError

    def _serialise(self, members: dict[str, Any]) -> bytes:
        """Canonical JSON of the document: `extra`, the shared members and `members`."""
        out: dict[str, Any] = dict(self.extra)
        out.update(schemaVersion=self.schema_version, mediaType=self.media_type, **members)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return canonical_json(out)

    def content(self) -> bytes:
        """The bytes that the digest covers: `raw`, or canonical JSON when built in memory."""
        return self.raw or self.to_json()

    @property
    def digest(self) -> Digest:
        return Digest.of(self.content())

    def descriptor(self) -> Descriptor:
        data = self.content()
        return Descriptor(self.media_type, Digest.of(data), len(data))


class ImageManifest(_Document):
    """An OCI image manifest or a Docker schema2 manifest (see `media_type`)."""

    __slots__ = (
        "annotations",
        "artifact_type",
        "config",
        "extra",
        "layers",
        "media_type",
        "raw",
        "schema_version",
        "subject",
    )
    _field_order = (
        "media_type",
        "config",
        "layers",
        "annotations",
        "subject",
        "artifact_type",
        "schema_version",
        "extra",
        "raw",
    )

    def __init__(
        self,
        media_type: str,
        config: Descriptor,
        layers: tuple[Descriptor, ...],
        annotations: dict[str, str] | None = None,
        subject: Descriptor | None = None,
        artifact_type: str = "",
        schema_version: int = 2,
        extra: dict[str, Any] | None = None,
        raw: bytes = b"",
    ) -> None:
        self.media_type = media_type
        self.config = config
        self.layers = layers
        self.annotations = {} if annotations is None else annotations
        self.subject = subject
        self.artifact_type = artifact_type
        self.schema_version = schema_version
        self.extra: dict[str, Any] = {} if extra is None else extra
        #: the bytes this was parsed from (b"" for a manifest built in memory)
        self.raw = raw

    @property
    def is_docker(self) -> bool:
        return self.media_type == DOCKER_MANIFEST

    def to_json(self) -> bytes:
        return self._serialise(
            {"config": self.config.to_json(), "layers": [layer.to_json() for layer in self.layers]}
        )


class ImageIndex(_Document):
    """An OCI image index or a Docker manifest list (see `media_type`)."""

    __slots__ = (
        "annotations",
        "artifact_type",
        "extra",
        "manifests",
        "media_type",
        "raw",
        "schema_version",
        "subject",
    )
    _field_order = (
        "media_type",
        "manifests",
        "annotations",
        "subject",
        "artifact_type",
        "schema_version",
        "extra",
        "raw",
    )

    def __init__(
        self,
        media_type: str,
        manifests: tuple[Descriptor, ...],
        annotations: dict[str, str] | None = None,
        subject: Descriptor | None = None,
        artifact_type: str = "",
        schema_version: int = 2,
        extra: dict[str, Any] | None = None,
        raw: bytes = b"",
    ) -> None:
        self.media_type = media_type
        self.manifests = manifests
        self.annotations = {} if annotations is None else annotations
        self.subject = subject
        self.artifact_type = artifact_type
        self.schema_version = schema_version
        self.extra: dict[str, Any] = {} if extra is None else extra
        #: the bytes this was parsed from (b"" for an index built in memory)
        self.raw = raw

    @property
    def is_docker(self) -> bool:
        return self.media_type == DOCKER_MANIFEST_LIST

    def to_json(self) -> bytes:
        return self._serialise({"manifests": [m.to_json() for m in self.manifests]})

    def platforms(self) -> list[Platform]:
        return [m.platform for m in self.manifests if m.platform is not None]

    def select(self, platform: Platform | str | None = None) -> Descriptor:
        return select_manifest(self, platform)


def select_manifest(index: ImageIndex, platform: Platform | str | None = None) -> Descriptor:
    """The manifest of `index` for `platform` (default: this host, linux/amd64 here).

    An exact match wins over a compatible one (arm/v6 for an arm/v7 host, ...); among equals
    the first in the index wins. Entries without a platform (attestations) never match.
    Raises NoMatchingPlatform listing what the index offers.
    """
    if platform is None:
        want = host_platform()
    elif isinstance(platform, str):
        want = parse_platform(platform)
    else:
        want = platform.normalized()
    best: Descriptor | None = None
    best_rank = 0
    for entry in index.manifests:
        if entry.platform is None or entry.media_type not in MANIFEST_TYPES | INDEX_TYPES:
            continue
        rank = _platform_rank(want, entry.platform)
        if rank is not None and (best is None or rank < best_rank):
            best, best_rank = entry, rank
    if best is None:
        offered = ", ".join(str(p) for p in index.platforms()) or "none"
        raise NoMatchingPlatform(
            f"no manifest for platform {want} in index {index.digest} (it offers: {offered})"
        )
    return best


# --- parsing -------------------------------------------------------------------------------


@contextmanager
def _reading(kind: str, media_type: str) -> Iterator[None]:
    try:
        yield
    except InvalidSpec as err:
        raise InvalidManifest(f"invalid {kind} ({media_type}): {err}") from None


def _load(data: bytes, kind: str, media_type: str) -> Field:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise InvalidManifest(f"invalid {kind} ({media_type}): not JSON: {err}") from None
    if not isinstance(value, dict):
        raise InvalidManifest(f"invalid {kind} ({media_type}): expected a JSON object")
    return Field(value, "")


def _media_type(root: Field, given: str | None) -> str:
    """The document's media type: its mediaType member, else the one it was served with,
    else guessed from its shape (an OCI index has manifests, an OCI manifest a config)."""
    given = (given or "").split(";")[0].strip().lower()
    if given in _GENERIC_TYPES:
        given = ""
    version = root.value.get("schemaVersion")
    if given in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED) or version == 1:
        raise InvalidManifest(
            "docker schema1 manifests are not supported (the image is too old: re-push it)"
        )
    declared_node = root.value.get("mediaType")
    if declared_node is not None and not isinstance(declared_node, str):
        raise InvalidManifest("invalid manifest: mediaType: expected a string")
    declared = declared_node or ""
    if declared and given and declared != given:
        raise InvalidManifest(f"manifest served as {given} declares mediaType {declared}")
    if declared or given:
        return declared or given
    if "manifests" in root.value:
        return OCI_INDEX
    if "config" in root.value or "layers" in root.value:
        return OCI_MANIFEST
    raise InvalidManifest("cannot tell the document type: no mediaType, config or manifests")


def _check_schema_version(root: Field) -> int:
    version = root.need("schemaVersion").as_int()
    if version != 2:
        raise root.need("schemaVersion").fail(f"unsupported schemaVersion {version}, expected 2")
    return version


def parse_manifest(data: bytes, media_type: str | None = None) -> ImageManifest | ImageIndex:
    """Parse a manifest or an index. `media_type` is the Content-Type it was served with,
    if known; it must agree with the document's own mediaType."""
    root = _load(data, "manifest", media_type or "unknown media type")
    kind = _media_type(root, media_type)
    if kind in INDEX_TYPES:
        return _parse_index(root, kind, data)
    if kind in MANIFEST_TYPES:
        return _parse_image_manifest(root, kind, data)
    raise InvalidManifest(f"unsupported manifest media type {kind!r}")


def parse_image_manifest(data: bytes, media_type: str | None = None) -> ImageManifest:
    """Parse an image manifest; an index here is an InvalidManifest."""
    parsed = parse_manifest(data, media_type)
    if not isinstance(parsed, ImageManifest):
        raise InvalidManifest(f"expected an image manifest, got an index ({parsed.media_type})")
    return parsed


def parse_index(data: bytes, media_type: str | None = None) -> ImageIndex:
    """Parse an OCI index or a Docker manifest list."""
    parsed = parse_manifest(data, media_type)
    if not isinstance(parsed, ImageIndex):
        raise InvalidManifest(f"expected an index, got an image manifest ({parsed.media_type})")
    return parsed


_MANIFEST_KEYS = frozenset(
    {"schemaVersion", "mediaType", "config", "layers", "annotations", "subject", "artifactType"}
)
_INDEX_KEYS = frozenset(
    {"schemaVersion", "mediaType", "manifests", "annotations", "subject", "artifactType"}
)


def _shared_fields(root: Field, version: int, known: frozenset[str], raw: bytes) -> dict[str, Any]:
    """The members manifests and indexes share, as keyword arguments of `_Document`s."""
    subject = root.get("subject")
    return {
        "annotations": _str_map(root, "annotations"),
        "subject": None if subject is None else _descriptor(subject),
        "artifact_type": opt_str(root, "artifactType"),
        "schema_version": version,
        "extra": {k: v for k, v in root.value.items() if k not in known},
        "raw": raw,
    }


def _parse_image_manifest(root: Field, media_type: str, raw: bytes) -> ImageManifest:
    with _reading("manifest", media_type):
        version = _check_schema_version(root)
        return ImageManifest(
            media_type=media_type,
            config=_descriptor(root.need("config")),
            layers=tuple(_descriptor(layer) for layer in root.need("layers").items()),
            **_shared_fields(root, version, _MANIFEST_KEYS, raw),
        )


def _parse_index(root: Field, media_type: str, raw: bytes) -> ImageIndex:
    with _reading("index", media_type):
        version = _check_schema_version(root)
        manifests = root.get("manifests")
        return ImageIndex(
            media_type=media_type,
            manifests=() if manifests is None else tuple(map(_descriptor, manifests.items())),
            **_shared_fields(root, version, _INDEX_KEYS, raw),
        )


def parse_config(data: bytes, media_type: str = OCI_CONFIG) -> ImageConfig:
    """Parse an image config (OCI or Docker; the two share one format)."""
    root = _load(data, "image config", media_type)
    with _reading("image config", media_type):
        rootfs = root.need("rootfs")
        rootfs_type = rootfs.need("type").as_str()
        if rootfs_type != "layers":
            raise rootfs.need("type").fail(f"unsupported rootfs type {rootfs_type!r}")
        diff_ids_node = rootfs.get("diff_ids")
        diff_ids = () if diff_ids_node is None else tuple(map(_digest, diff_ids_node.items()))
        history = root.get("history")
        exec_node = root.get("config")
        return ImageConfig(
            architecture=root.need("architecture").as_str(),
            os=root.need("os").as_str(),
            diff_ids=diff_ids,
            variant=opt_str(root, "variant"),
            os_version=opt_str(root, "os.version"),
            os_features=_strs(root, "os.features"),
            created=opt_str(root, "created"),
            author=opt_str(root, "author"),
            config=ExecutionConfig() if exec_node is None else _exec_config(exec_node),
            history=() if history is None else tuple(map(_history, history.items())),
            extra={k: v for k, v in root.value.items() if k not in _CONFIG_KEYS},
            raw=data,
        )


def _opt_strs_or_none(node: Field, key: str) -> tuple[str, ...] | None:
    child = node.get(key)
    return None if child is None else child.strs()


def _key_set(node: Field, key: str) -> tuple[str, ...]:
    child = node.get(key)
    if child is None:
        return ()
    return tuple(child.obj().value)


def _exec_config(node: Field) -> ExecutionConfig:
    node.obj()
    return ExecutionConfig(
        user=opt_str(node, "User"),
        exposed_ports=_key_set(node, "ExposedPorts"),
        env=_strs(node, "Env"),
        entrypoint=_opt_strs_or_none(node, "Entrypoint"),
        cmd=_opt_strs_or_none(node, "Cmd"),
        volumes=_key_set(node, "Volumes"),
        working_dir=opt_str(node, "WorkingDir"),
        labels=_str_map(node, "Labels"),
        stop_signal=opt_str(node, "StopSignal"),
        extra={k: v for k, v in node.value.items() if k not in _EXEC_KEYS},
    )


def _history(node: Field) -> History:
    node.obj()
    empty = node.get("empty_layer")
    return History(
        created=opt_str(node, "created"),
        created_by=opt_str(node, "created_by"),
        author=opt_str(node, "author"),
        comment=opt_str(node, "comment"),
        empty_layer=False if empty is None else empty.as_bool(),
    )


def check_config_matches(manifest: ImageManifest, config: ImageConfig) -> None:
    """The manifest and its config agree: config digest, one diff_id per layer."""
    actual = config.digest
    if actual != manifest.config.digest:
        raise InvalidManifest(
            f"manifest {manifest.digest} names config {manifest.config.digest}, got {actual}"
        )
    if len(manifest.layers) != len(config.diff_ids):
        raise InvalidManifest(
            f"manifest {manifest.digest} has {len(manifest.layers)} layers but config "
            f"{actual} lists {len(config.diff_ids)} diff_ids"
        )
