"""Image layers: apply a layer tar into a directory, and produce one from an overlay upper dir.

`apply_layer` streams a layer (plain tar, gzip or zstd, detected by magic bytes) into an
empty directory, hashing while it reads: the compressed digest (when given) and the diff_id
(sha256 of the uncompressed tar). A mismatch, a hostile entry or any failure removes the
partial directory and raises a `LayerError` subclass.

The tar stream is parsed by `cove.image.tar_reader` and its members are written by
`cove.image.layer_extract`, whose docstring says how extraction stays inside the layer
directory and how whiteouts become overlayfs whiteouts.

Hashing runs in a helper thread (hashlib releases the GIL), joined before apply_layer
returns: it overlaps the writes, and no thread outlives the call.

`diff_tar` (in `cove.image.layer_diff`) is the reverse, for commit and the builder: a
deterministic PAX tar of an overlay upper dir, whiteouts and opaque dirs converted back to
".wh." entries.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import queue
import shutil
import struct
import tarfile
import threading
import zlib
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, cast

from cove.errors import LayerDigestMismatch, LayerError
from cove.errors import LayerRejected as LayerRejected
from cove.image.layer_diff import DiffSummary as DiffSummary
from cove.image.layer_diff import _Differ as _Differ
from cove.image.layer_diff import _HashingWriter as _HashingWriter
from cove.image.layer_diff import diff_tar as diff_tar
from cove.image.layer_extract import _extract_all as _extract_all
from cove.image.layer_extract import _Extractor as _Extractor
from cove.image.layer_extract import _normalise as _normalise
from cove.image.layer_extract import _umask as _umask
from cove.image.layer_format import _ALLOWED_XATTR_PREFIXES as _ALLOWED_XATTR_PREFIXES
from cove.image.layer_format import _O_DIR as _O_DIR
from cove.image.layer_format import _O_FILE as _O_FILE
from cove.image.layer_format import _O_READ as _O_READ
from cove.image.layer_format import _OVERLAY_XATTR_PREFIXES as _OVERLAY_XATTR_PREFIXES
from cove.image.layer_format import _PAX_XATTR as _PAX_XATTR
from cove.image.layer_format import _TAR_BUFSIZE as _TAR_BUFSIZE
from cove.image.layer_format import OPAQUE_XATTR as OPAQUE_XATTR
from cove.image.layer_format import WHITEOUT_META_PREFIX as WHITEOUT_META_PREFIX
from cove.image.layer_format import WHITEOUT_OPAQUE as WHITEOUT_OPAQUE
from cove.image.layer_format import WHITEOUT_PREFIX as WHITEOUT_PREFIX
from cove.image.tar_reader import _BLK as _BLK
from cove.image.tar_reader import _BLOCK as _BLOCK
from cove.image.tar_reader import _CHR as _CHR
from cove.image.tar_reader import _CHUNK as _CHUNK
from cove.image.tar_reader import _DIR as _DIR
from cove.image.tar_reader import _FIFO as _FIFO
from cove.image.tar_reader import _GNU_SPARSE as _GNU_SPARSE
from cove.image.tar_reader import _HARDLINK as _HARDLINK
from cove.image.tar_reader import _HEADER as _HEADER
from cove.image.tar_reader import _REGULAR_TYPES as _REGULAR_TYPES
from cove.image.tar_reader import _SYMLINK as _SYMLINK
from cove.image.tar_reader import _USTAR as _USTAR
from cove.image.tar_reader import _ZERO_BLOCK as _ZERO_BLOCK
from cove.image.tar_reader import _Entry as _Entry
from cove.image.tar_reader import _mtime_ns as _mtime_ns
from cove.image.tar_reader import _num as _num
from cove.image.tar_reader import _Reader as _Reader
from cove.image.tar_reader import _TarReader as _TarReader
from cove.image.tar_reader import _text as _text

_HASH_QUEUE = 16
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZIP2_MAGIC = b"BZh"


@dataclass(frozen=True)
class LayerSummary:
    """What `apply_layer` did."""

    entries: int  # tar members processed (including skipped ones)
    bytes: int  # length of the uncompressed tar stream
    compressed_bytes: int  # length of the stream as given
    compression: str  # "none", "gzip" or "zstd"
    diff_id: str  # "sha256:..." of the uncompressed tar stream
    digest: str  # digest of the stream as given, same algorithm as the expected one
    disk_usage: int  # bytes allocated (st_blocks) for the files and directories written
    notes: tuple[str, ...] = ()  # skipped entries, refused xattrs, ...


# --- streams -----------------------------------------------------------------------------


class _Hasher:
    """A hash updated by a helper thread, so hashing overlaps decompression and writes.

    The thread lives only while a layer is applied (`close` joins it): no thread is left
    behind for a caller that forks later. At most `_HASH_QUEUE` chunks wait in memory.
    """

    def __init__(self, algorithm: str) -> None:
        self._hash = hashlib.new(algorithm)
        self._queue: queue.Queue[bytes | None] = queue.Queue(_HASH_QUEUE)
        self._thread = threading.Thread(target=self._run, name="cove-layer-hash", daemon=True)
        self._thread.start()
        self._digest: str | None = None

    def _run(self) -> None:
        update = self._hash.update
        get = self._queue.get
        while (data := get()) is not None:
            update(data)

    def update(self, data: bytes) -> None:
        self._queue.put(data)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        if self._digest is None:
            self.close()
            self._digest = self._hash.hexdigest()
        return self._digest


class _HashingReader:
    """Reads from `raw`, hashing and counting every byte that passes."""

    def __init__(self, raw: _Reader, hasher: _Hasher) -> None:
        self._raw = raw
        self.hash = hasher
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._raw.read(size)
        if data:
            self.hash.update(data)
            self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


class _PushbackReader:
    """Gives back `head` first, then reads from `raw`."""

    def __init__(self, head: bytes, raw: _Reader) -> None:
        self._head = head
        self._raw = raw

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                head, self._head = self._head, b""
                return head
            head, self._head = self._head[:size], self._head[size:]
            return head
        return self._raw.read(size)


def detect_compression(head: bytes) -> str:
    """ "gzip", "zstd" or "none" from the first bytes of a layer; others are rejected."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_XZ_MAGIC):
        raise LayerError("xz-compressed layers are not supported")
    if head.startswith(_BZIP2_MAGIC) and len(head) > 3 and 0x31 <= head[3] <= 0x39:
        raise LayerError("bzip2-compressed layers are not supported")
    return "none"


def _decompressor(compression: str, raw: _Reader) -> _Reader:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=cast(Any, raw), mode="rb")
    if compression == "zstd":
        import zstandard

        reader: _Reader = zstandard.ZstdDecompressor().stream_reader(
            cast(Any, raw), read_size=_CHUNK, read_across_frames=True, closefd=False
        )
        return reader
    return raw


def _stream_errors(compression: str) -> tuple[type[Exception], ...]:
    errors: tuple[type[Exception], ...] = (
        tarfile.TarError,
        EOFError,
        zlib.error,
        gzip.BadGzipFile,
        ValueError,  # a malformed number in a tar header
        struct.error,
    )
    if compression == "zstd":
        import zstandard

        errors += (zstandard.ZstdError,)
    return errors


def _split_digest(value: str, layer: str) -> tuple[str, str]:
    algorithm, sep, hexdigest = value.partition(":")
    if not sep or algorithm not in ("sha256", "sha384", "sha512") or not hexdigest:
        raise LayerError(f"layer {layer}: unsupported digest {value!r}")
    return algorithm, hexdigest.lower()


def apply_layer(
    source: BinaryIO | IO[bytes],
    dest: str | os.PathLike[str],
    *,
    digest: str | None = None,
    diff_id: str | None = None,
    allow_devices: bool = False,
    name: str | None = None,
) -> LayerSummary:
    """Extracts the layer read from `source` into `dest` (absent or empty; created, with
    its parents, when absent).

    `digest` is checked against the stream as given (compressed), `diff_id` against the
    uncompressed tar; both are "algorithm:hex". `name` labels the layer in errors (default:
    the digest, the diff_id or `dest`). On any failure `dest` is removed (emptied if it
    existed before) and a `LayerError` is raised.
    """
    dest_path = os.path.abspath(os.fspath(dest))
    layer = name or digest or diff_id or dest_path
    created = False
    try:
        os.makedirs(os.path.dirname(dest_path), exist_ok=True)
        os.mkdir(dest_path, 0o755)
        created = True
    except FileExistsError:
        if not os.path.isdir(dest_path) or os.path.islink(dest_path) or os.listdir(dest_path):
            raise LayerError(f"layer {layer}: {dest_path} is not an empty directory") from None
    except OSError as exc:
        raise LayerError(f"layer {layer}: cannot create {dest_path}: {exc.strerror}") from exc
    try:
        root_fd = os.open(dest_path, _O_DIR)
    except OSError as exc:
        raise LayerError(f"layer {layer}: cannot open {dest_path}: {exc.strerror}") from exc
    try:
        return _apply(source, root_fd, dest_path, layer, digest, diff_id, allow_devices)
    except BaseException as exc:
        _discard(dest_path, created)
        if isinstance(exc, OSError):
            raise LayerError(f"layer {layer}: {exc.strerror or exc}") from exc
        raise
    finally:
        os.close(root_fd)


def _discard(path: str, remove_dir: bool) -> None:
    if remove_dir:
        shutil.rmtree(path, ignore_errors=True)
        return
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass


def _apply(
    source: BinaryIO | IO[bytes],
    root_fd: int,
    root_path: str,
    layer: str,
    digest: str | None,
    diff_id: str | None,
    allow_devices: bool,
) -> LayerSummary:
    algorithm = _split_digest(digest, layer)[0] if digest else "sha256"
    expected_diff = _split_digest(diff_id, layer) if diff_id else None
    if expected_diff and expected_diff[0] != "sha256":
        raise LayerError(f"layer {layer}: diff_id {diff_id!r} is not a sha256 digest")

    head = source.read(_TAR_BUFSIZE)
    compression = detect_compression(head)
    raw = _PushbackReader(head, source)
    diff_hasher = _Hasher("sha256")
    compressed_hasher = diff_hasher
    try:
        if compression == "none" and algorithm == "sha256":
            tar_stream = compressed = _HashingReader(raw, diff_hasher)  # one stream, one hash
        else:
            compressed_hasher = _Hasher(algorithm)
            compressed = _HashingReader(raw, compressed_hasher)
            tar_stream = _HashingReader(_decompressor(compression, compressed), diff_hasher)
        extractor = _Extractor(root_fd, root_path, layer, allow_devices)
        tar = _TarReader(tar_stream, layer)
        try:
            entries = _extract_all(tar, extractor, layer)
            junk = tar.drain_junk()
            compressed.drain()
        except _stream_errors(compression) as exc:
            raise LayerError(f"layer {layer}: corrupt {compression} stream: {exc}") from exc
    finally:
        compressed_hasher.close()
        diff_hasher.close()

    actual_digest = f"{algorithm}:{compressed.hash.hexdigest()}"
    if digest and actual_digest != f"{algorithm}:{_split_digest(digest, layer)[1]}":
        raise LayerDigestMismatch(layer, "digest", digest, actual_digest)
    actual_diff = f"sha256:{tar_stream.hash.hexdigest()}"
    if expected_diff and actual_diff != f"sha256:{expected_diff[1]}":
        raise LayerDigestMismatch(layer, "diff_id", diff_id or "", actual_diff)
    if junk:
        raise LayerError(f"layer {layer}: unreadable tar header or data after the archive end")
    extractor.finish()
    return LayerSummary(
        entries=entries,
        bytes=tar_stream.count,
        compressed_bytes=compressed.count,
        compression=compression,
        diff_id=actual_diff,
        digest=actual_digest,
        disk_usage=extractor.disk_usage,
        notes=tuple(extractor.notes),
    )
