"""Image archives: `docker save` / `docker load` tarballs and OCI image layout tarballs.

Two formats are written by `save`:

- ``docker-archive``, as `docker save` (25 and later) writes it: ``manifest.json``
  (``[{"Config": "blobs/sha256/<hex>", "RepoTags": [...], "Layers": [...]}]``),
  ``repositories`` (``{"busybox": {"latest": "<hex of the top layer>"}}``), each config and
  each layer as an *uncompressed* tar named by its digest (so a layer's digest is its
  diff_id; layers the store keeps compressed are decompressed and checked against the
  diff_id on the way). The archive is also an OCI image layout (``oci-layout``,
  ``index.json``, one OCI manifest per image listing the uncompressed layers), as
  docker's is, so OCI tools read it too. `docker load` and `skopeo copy docker-archive:`
  read it.
- ``oci-archive``: a tar of an OCI image layout holding the images exactly as stored
  (manifest bytes, configs, layers as they are compressed in the store). ``index.json``
  has one entry per name, annotated with ``org.opencontainers.image.ref.name`` (the tag)
  and ``io.containerd.image.name`` (the full name), as containerd and docker write it;
  an image saved without a name gets an entry without annotations.

`load` reads either (and the same compressed with gzip, zstd, bzip2 or xz, as
`docker save | gzip`). It streams the tar once and never extracts it: each member is
spooled (in memory when small, else into an anonymous temp file in the store's ``tmp/``,
which disappears with the process even on kill -9) because a docker-archive may list its
files in any order. Then it decides the format: ``manifest.json`` makes it a
docker-archive (even when an OCI layout is there too: its RepoTags are the names docker
would use), else ``oci-layout`` an OCI archive. Every blob is verified against its
digest while it is copied into the store.

docker-archive images become OCI images: the config as it is (its digest is the image
id), the layers uncompressed (``OCI_LAYER``, digest = diff_id; a compressed layer tar in
the archive is decompressed and must match the diff_id), a canonical OCI manifest. Names
come from RepoTags.

OCI archive names: ``io.containerd.image.name`` (a full reference) when present; else
``org.opencontainers.image.ref.name`` when it is a full reference itself (it contains a
``:`` or a ``/``, as `skopeo copy ... oci-archive:FILE:busybox:latest` writes it); a
bare ref.name (``latest``) is only a tag without a repository, so that image is loaded
without a name (reported by its id, as docker reports an untagged image). A nested index
(multi-platform image) loads the manifest for this host.

Hostile archives are refused before anything is registered: absolute names, ``..``,
devices and FIFOs, a name listed twice, a symbolic link leaving the archive, a hard link
to an entry not seen before, ``manifest.json`` or ``index.json`` naming an entry that is
not there or a path outside the archive, content that does not match its digest. Links
are never followed on disk (nothing is extracted): one that stays inside the archive is
an alias for its target, as docker's own archives use them (``<id>/layer.tar ->
../blobs/sha256/<hex>``). On any failure the images this load registered are removed
and the blobs it added are deleted again (unless another image uses them by then).

A kill -9 during load leaves the store's own ``*.partial`` temp files (cleaned when the
store is next opened); a blob completely written in the short window before its image is
registered can stay behind, as with any pull (the store has no blob garbage collector).
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import json
import lzma
import posixpath
import re
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, cast

from cove.errors import (
    ArchiveError,
    ArchiveRejected,
    CoveError,
    DigestMismatch,
    ImageStoreError,
    InvalidArgument,
    InvalidDigest,
    InvalidManifest,
    InvalidReference,
    NoMatchingPlatform,
    SizeMismatch,
)
from cove.image.digest import CHUNK, Digest, Hasher, VerifyingReader, is_digest
from cove.image.manifest import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    CONFIG_TYPES,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Descriptor,
    ImageConfig,
    ImageManifest,
    canonical_json,
    check_config_matches,
    layer_compression,
    parse_config,
    parse_image_manifest,
    parse_index,
    select_manifest,
)
from cove.image.reference import Reference, parse_reference
from cove.image.store import ImageRecord, ImageStore

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
FORMATS = (DOCKER_ARCHIVE, OCI_ARCHIVE)

MANIFEST_JSON = "manifest.json"
REPOSITORIES = "repositories"
INDEX_JSON = "index.json"
OCI_LAYOUT = "oci-layout"
LAYOUT_VERSION = "1.0.0"

#: members up to this size are spooled in memory (while the total stays under _MEMORY_MAX)
_IN_MEMORY = 1 << 20
_MEMORY_MAX = 64 << 20
#: the largest JSON document (manifest.json, index.json, a config, a manifest) we read
_DOCUMENT_MAX = 16 << 20
_LINK_HOPS = 40
_HEX64_RE = re.compile(r"[0-9a-f]{64}")

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZIP2_MAGIC = b"BZh"


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


class _TarWriter:
    """Deterministic tar entries: owner root, mtime 0, 0644 files and 0755 folders."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.written: set[str] = set()

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        parent = posixpath.dirname(name)
        if parent and parent not in self.written:
            self._dir(parent)
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = 0
        info.uname = info.gname = ""
        return info

    def _dir(self, name: str) -> None:
        info = self._info(name, 0)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        self.tar.addfile(info)
        self.written.add(name)

    def data(self, name: str, data: bytes) -> None:
        if name not in self.written:
            self.tar.addfile(self._info(name, len(data)), io.BytesIO(data))
            self.written.add(name)

    def stream(self, name: str, size: int, source: IO[bytes] | VerifyingReader) -> None:
        """Write `size` bytes of `source`; reading it to its end runs its verification."""
        self.tar.addfile(self._info(name, size), cast(IO[bytes], source))
        if isinstance(source, VerifyingReader):
            if source.read(1):  # the tar took `size` bytes: there must be no more
                raise ArchiveError(f"{name}: the blob is longer than its recorded size")
        self.written.add(name)


def _blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


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


# --- decompression -------------------------------------------------------------------------


class _Peek:
    """A reader whose first bytes have been looked at (and are read again)."""

    def __init__(self, raw: IO[bytes] | BinaryIO, size: int = 8) -> None:
        self._raw = raw
        head = b""
        while len(head) < size:
            chunk = raw.read(size - len(head))
            if not chunk:
                break
            head += chunk
        self.head = head
        self._pending = head

    def read(self, size: int = -1) -> bytes:
        if self._pending:
            if size < 0:
                data, self._pending = self._pending + self._raw.read(), b""
                return data
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        return self._raw.read(size)

    def readable(self) -> bool:
        return True


def _compression_of(head: bytes) -> str:
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    if head.startswith(_BZIP2_MAGIC) and len(head) > 3 and 0x31 <= head[3] <= 0x39:
        return "bzip2"
    return ""


def _decompress(compression: str, raw: Any) -> Any:
    """A reader of the decompressed content of `raw`."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(
            raw, read_size=CHUNK, read_across_frames=True, closefd=False
        )
    if compression == "xz":
        return lzma.LZMAFile(raw)
    if compression == "bzip2":
        return bz2.BZ2File(raw)
    return raw


def _decompression_errors() -> tuple[type[Exception], ...]:
    errors: tuple[type[Exception], ...] = (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a dependency
        return errors
    return (*errors, zstandard.ZstdError)


# --- reading the tar -----------------------------------------------------------------------


@dataclass
class _Member:
    """A regular file of the archive, spooled: its size, sha256 and first bytes."""

    name: str
    size: int
    digest: Digest
    head: bytes
    data: bytes | None = None
    file: IO[bytes] | None = None

    def open(self) -> IO[bytes]:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.file is not None
        self.file.seek(0)
        return self.file

    def read(self, limit: int = _DOCUMENT_MAX) -> bytes:
        if self.size > limit:
            raise ArchiveRejected(self.name, f"too large for a JSON document ({self.size} bytes)")
        if self.data is not None:
            return self.data
        return self.open().read()


@dataclass
class _Spool:
    """What the tar holds: regular files (spooled), links (aliases) and folders."""

    tmp_dir: str
    members: dict[str, _Member] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    in_memory: int = 0

    def close(self) -> None:
        for member in self.members.values():
            if member.file is not None:
                member.file.close()

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def add(self, info: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        name = _entry_name(info.name)
        if info.isdir():
            if name in self.members or name in self.links:
                raise ArchiveRejected(info.name, "listed twice in the archive")
            self.dirs.add(name)
            return
        if not name:
            raise ArchiveRejected(info.name, "a file cannot be the archive's root")
        if name in self.members or name in self.links or name in self.dirs:
            raise ArchiveRejected(info.name, "listed twice in the archive")
        if info.issym():
            if info.linkname.startswith("/"):
                raise ArchiveRejected(
                    info.name, f"symbolic link to an absolute path {info.linkname!r}"
                )
            self.links[name] = _join_inside(posixpath.dirname(name), info.linkname, info.name)
            return
        if info.islnk():
            target = _entry_name(info.linkname)
            if target not in self.members and target not in self.links:
                raise ArchiveRejected(
                    info.name, f"hard link to {info.linkname!r}, which is not an earlier entry"
                )
            self.links[name] = target
            return
        if not info.isreg():
            raise ArchiveRejected(info.name, "not a regular file, folder or link (device or FIFO)")
        source = tar.extractfile(info)
        assert source is not None  # a regular file
        self.members[name] = self._spool(name, info.size, source)

    def _spool(self, name: str, size: int, source: IO[bytes]) -> _Member:
        hasher = hashlib.sha256()
        keep = size <= _IN_MEMORY and self.in_memory + size <= _MEMORY_MAX
        chunks: list[bytes] = []
        out: IO[bytes] | None = None
        head = b""
        try:
            if not keep:
                out = tempfile.TemporaryFile(dir=self.tmp_dir)
            while chunk := source.read(CHUNK):
                hasher.update(chunk)
                if len(head) < 8:
                    head = (head + chunk)[:8]
                if out is None:
                    chunks.append(chunk)
                else:
                    out.write(chunk)
        except OSError as err:
            if out is not None:
                out.close()
            if isinstance(err, gzip.BadGzipFile):
                raise
            raise ImageStoreError(f"cannot spool {name!r} into {self.tmp_dir}: {err}") from None
        digest = Digest("sha256", hasher.hexdigest())
        if out is None:
            data = b"".join(chunks)
            self.in_memory += len(data)
            return _Member(name, len(data), digest, head, data=data)
        return _Member(name, out.tell(), digest, head, file=out)

    def lookup(self, path: str, referrer: str, what: str = "") -> _Member:
        """The member `path` (as the document `referrer` names it) designates, following
        links; `what` says where in that document."""
        try:
            name = _entry_name(path)
        except ArchiveRejected as err:
            raise ArchiveRejected(referrer, f"{what}names {path!r}: {err.why}") from None
        for _ in range(_LINK_HOPS):
            if name in self.members:
                return self.members[name]
            if name not in self.links:
                raise ArchiveRejected(
                    referrer, f"{what}names {path!r}, which is not in the archive"
                )
            name = self.links[name]
        raise ArchiveRejected(referrer, f"{what}names {path!r}: too many levels of links")


def _entry_name(raw: str) -> str:
    """An archive-relative name: `./a//b` is `a/b`; absolute names and `..` are refused."""
    if raw.startswith("/"):
        raise ArchiveRejected(raw, "absolute path")
    if "\x00" in raw:
        raise ArchiveRejected(raw, "NUL byte in the name")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveRejected(raw, "'..' in the path")
    return "/".join(parts)


def _join_inside(folder: str, target: str, entry: str) -> str:
    parts = folder.split("/") if folder else []
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ArchiveRejected(entry, f"link target {target!r} leaves the archive")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _read_archive(stream: IO[bytes] | BinaryIO, spool: _Spool) -> None:
    peek = _Peek(stream)
    if not peek.head:
        raise ArchiveError("the archive is empty")
    compression = _compression_of(peek.head)
    source = _decompress(compression, peek)
    errors: tuple[type[Exception], ...] = (tarfile.TarError, *_decompression_errors(), ValueError)
    try:
        with tarfile.open(fileobj=source, mode="r|") as tar:
            for info in tar:
                spool.add(info, tar)
    except errors as err:
        what = f"{compression}-compressed tar" if compression else "tar"
        raise ArchiveError(f"not a valid {what} archive: {err}") from None


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
