"""The image store: a content-addressed blob store laid out as an OCI image layout, plus a
small SQLite index of the images in it.

    <root>/oci-layout          {"imageLayoutVersion": "1.0.0"}
    <root>/index.json          one descriptor per image name (ref.name + containerd's name)
    <root>/blobs/<alg>/<hex>   blobs, read-only, named by digest
    <root>/images.db           SQLite (WAL): images, names, which blobs each image uses
    <root>/tmp/                partial writes; `*.partial` files locked by their writer;
                               `pull-<hex>.partial`: a download to resume (`resumable_blob`)

Consistency rules:

- A blob is written to `tmp/`, fsynced, verified against its digest, then renamed into
  place. Its writer holds an flock on the temp file for its whole life, so a temp file
  whose lock is free and whose writer pid is gone is debris from a kill -9:
  `cleanup_partial()` (run on open) removes exactly those. Resumable downloads
  (`pull-<hex>.partial`) stay for the next pull unless a day old or already stored.
- Every change to the image index is one `BEGIN IMMEDIATE` transaction; SQLite serialises
  writers across processes (busy timeout, WAL so readers never wait). `index.json` is
  rewritten (temp + fsync + rename) inside that transaction, and carries the database's
  generation number: if a process dies between the rename and the commit, the next open
  sees the mismatch and rewrites `index.json` from the database.
- Blobs are reference-counted by the images that use them: `remove()` deletes only the
  blobs no other image uses, inside the transaction, after `index.json` no longer names
  the image. `add_image()` checks its blobs exist inside its own transaction, so a
  concurrent removal can never leave a registered image without its content.

The SQLite side (schema, records, queries, Docker's lookup rules behind `resolve`) is
`cove.image.store_index`; the files (temp files, durable writes, the blob folders, paths as
strings) are `cove.image.store_blobs`. Here: `ImageStore`, its transactions and the
consistency rules above.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time

from cove.errors import (
    DigestMismatch,
    ImageStoreError,
    InvalidManifest,
    InvalidReference,
    NoSuchBlob,
    NoSuchImage,
    SizeMismatch,
)
from cove.image.digest import Digest, Hasher
from cove.image.manifest import (
    CONFIG_TYPES,
    ImageConfig,
    ImageManifest,
    canonical_json,
    check_config_matches,
    parse_config,
    parse_image_manifest,
    parse_index,
)
from cove.image.records import FrozenRecord
from cove.image.reference import Reference, parse_reference
from cove.image.store_blobs import (
    LAYOUT_VERSION,
    ResumableBlob,
    _atomic_write,
    _check_layout,
    _chunks,
    _cleanup_partial,
    _fsync_dir,
    _join,
    _list_blobs,
    _mkdir,
    _normpath,
    _partial_file,
    _path,
    _read,
    _sync_blob_folders,
    _why,
)
from cove.image.store_index import (
    GENERATION_ANNOTATION,
    ImageRecord,
    Removal,
    _all_records,
    _blob_users,
    _bump_generation,
    _create_db,
    _delete_image,
    _generation,
    _image_exists,
    _index_document,
    _insert_image,
    _lookup,
    _named,
    _open_db,
    _record,
    _rollback,
    _set_name,
    _Txn,
    _unset_name,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path
    from typing import BinaryIO

DEFAULT_TIMEOUT = 30.0


class BlobInfo(FrozenRecord):
    """What `put_blob` stored: digest and size in bytes."""

    __slots__ = ("digest", "size")
    digest: Digest
    size: int

    def __init__(self, digest: Digest, size: int) -> None:
        self._init(digest, size)


class ImageStore:
    """The image store under `root` (usually `<engine root>/images`).

    One object per process: open it after a fork, never share it across one. Safe for
    threads (one lock) and for several processes at once (SQLite locking).

    `root`, `blobs_dir`, `tmp_dir`, `db_path`, `index_path` and `blob_path()` are Paths;
    inside, the store works on strings spelt as pathlib spells them (`cove pull` does
    without loading pathlib, which brings urllib.parse and ipaddress along).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        tmp_dir: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._root = _normpath(root)
        self._blobs = _join(self._root, "blobs")
        self._tmp = _normpath(tmp_dir) if tmp_dir is not None else _join(self._root, "tmp")
        self._db_file = _join(self._root, "images.db")
        self._index_file = _join(self._root, "index.json")
        self.timeout = timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        # A file was renamed or linked into root and root is not fsynced yet: one fsync at
        # the end of opening covers them all.
        self._root_unsynced = False
        try:
            for folder in (self._root, _join(self._blobs, "sha256"), self._tmp):
                os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise ImageStoreError(f"cannot create image store {self._root}: {_why(err)}") from None
        self._ensure_layout_file()
        self._conn = self._connect()
        self.cleanup_partial()
        self._sync_index_json()

    @property
    def root(self) -> Path:
        return _path(self._root)

    @property
    def blobs_dir(self) -> Path:
        return _path(self._blobs)

    @property
    def tmp_dir(self) -> Path:
        return _path(self._tmp)

    @property
    def db_path(self) -> Path:
        return _path(self._db_file)

    @property
    def index_path(self) -> Path:
        return _path(self._index_file)

    # --- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> ImageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- blobs -----------------------------------------------------------------------------

    def blob_path(self, digest: Digest | str) -> Path:
        return _path(self._blob_file(digest))

    def _blob_file(self, digest: Digest | str) -> str:
        digest = _as_digest(digest)
        return os.path.join(self._blobs, digest.algorithm, digest.hex)

    def has_blob(self, digest: Digest | str) -> bool:
        return os.path.isfile(self._blob_file(digest))

    def blob_size(self, digest: Digest | str) -> int:
        path = self._blob_file(digest)
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            raise NoSuchBlob(digest, self._root) from None

    def open_blob(self, digest: Digest | str) -> BinaryIO:
        """The blob's content, opened for reading (the caller closes it)."""
        path = self._blob_file(digest)
        try:
            return open(path, "rb")  # the caller owns and closes it
        except FileNotFoundError:
            raise NoSuchBlob(digest, self._root) from None
        except OSError as err:
            raise ImageStoreError(f"cannot open blob {path}: {_why(err)}") from None

    def read_blob(self, digest: Digest | str, *, verify: bool = True) -> bytes:
        """The whole blob (for manifests and configs); checked against its digest."""
        digest = _as_digest(digest)
        with self.open_blob(digest) as stream:
            data = stream.read()
        if verify:
            actual = Digest.of(data, digest.algorithm)
            if actual != digest:
                raise DigestMismatch(digest, actual, f"blob {self._blob_file(digest)}")
        return data

    def put_blob(
        self,
        data: bytes | BinaryIO | Iterable[bytes],
        expected: Digest | str | None = None,
        *,
        expected_size: int | None = None,
        sync_dir: bool = True,
    ) -> BlobInfo:
        """Store `data` (bytes, a binary stream, or an iterable of chunks) as a blob.

        With `expected`, the content must hash to it (DigestMismatch otherwise, and nothing
        is stored); when that blob is already present, `data` is not read at all. The blob
        appears atomically: readers see all of it or nothing. The blob's bytes are always
        fsynced; `sync_dir=False` leaves the fsync of its folder (which makes the rename
        durable) to a later `sync_blobs()`, so that many blobs share one.
        """
        want = None if expected is None else _as_digest(expected)
        if want is not None and self.has_blob(want):
            size = self.blob_size(want)
            if expected_size is not None and size != expected_size:
                raise SizeMismatch(expected_size, size, str(want))
            return BlobInfo(want, size)
        hasher = Hasher(expected=want, expected_size=expected_size)
        with _partial_file(self._tmp, "blob") as (out, partial):
            try:
                for chunk in _chunks(data):
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            except OSError as err:
                raise ImageStoreError(f"cannot write blob into {self._root}: {_why(err)}") from None
            digest = hasher.verify()
            final = self._blob_file(digest)
            folder = os.path.dirname(final)
            try:
                _mkdir(folder)
                os.rename(partial, final)
                if sync_dir:
                    _fsync_dir(folder)
            except OSError as err:
                raise ImageStoreError(f"cannot store blob {final}: {_why(err)}") from None
        return BlobInfo(digest, hasher.size)

    def resumable_blob(
        self, expected: Digest | str, *, expected_size: int | None = None
    ) -> ResumableBlob:
        """The temp file of a download of `expected` that a later run can resume (see
        `ResumableBlob`): `offset` bytes are already there. Store it with `commit_blob`;
        close it in any case."""
        return ResumableBlob.open(self._tmp, _as_digest(expected), expected_size)

    def commit_blob(self, blob: ResumableBlob, *, sync_dir: bool = True) -> BlobInfo:
        """Verify a finished download and move it into the store (DigestMismatch or
        SizeMismatch delete it); `sync_dir` as in `put_blob`."""
        expected = blob.hasher.expected
        assert expected is not None
        digest = blob.commit(self._blob_file(expected), sync_dir=sync_dir)
        return BlobInfo(digest, blob.hasher.size)

    def sync_blobs(self) -> None:
        """Make the renames of blobs stored with `sync_dir=False` durable."""
        _sync_blob_folders(self._blobs)

    def delete_blob(self, digest: Digest | str, *, force: bool = False) -> bool:
        """Delete a blob; False when it was not there. A blob that an image uses is refused
        (ImageStoreError) unless `force`: use `remove()` to delete images."""
        digest = _as_digest(digest)
        with self._write() as txn:
            if not force:
                users = _blob_users(txn.conn, digest)
                if users:
                    raise ImageStoreError(
                        f"blob {digest} is used by image(s) {', '.join(users)}: remove those"
                    )
            return self._unlink_blob(digest)

    def blobs(self) -> list[Digest]:
        """Every blob on disk."""
        return _list_blobs(self._blobs)

    def cleanup_partial(self) -> list[Path]:
        """Remove temp files left by writers that died (kill -9). Returns what it removed.

        A temp file is removed only when its writer's flock is free and its pid is gone,
        so running this while other processes write is safe. Resumable downloads
        (`pull-<hex>.partial`, no writer) stay unless a day old or their blob is stored.
        """
        return [_path(path) for path in _cleanup_partial(self._tmp, self._blobs)]

    # --- images ----------------------------------------------------------------------------

    def add_image(
        self,
        manifest: Digest | str,
        *,
        names: Iterable[Reference | str] = (),
        index: Digest | str | None = None,
    ) -> ImageRecord:
        """Register the image whose manifest blob (and config and layer blobs) are stored.

        `index` is the index/manifest list it was selected from (stored too), kept as the
        repository digest. `names` are tagged onto it (moved from other images, as docker
        does). Adding an image twice is harmless. Raises NoSuchBlob for missing content,
        InvalidManifest when the documents are not an image or disagree.
        """
        manifest_digest = _as_digest(manifest)
        refs = [_tag_ref(name) for name in names]
        doc = parse_image_manifest(self.read_blob(manifest_digest))
        if doc.config.media_type not in CONFIG_TYPES:
            raise InvalidManifest(
                f"manifest {manifest_digest} is not an image: config media type "
                f"{doc.config.media_type!r}"
            )
        config = parse_config(self.read_blob(doc.config.digest), doc.config.media_type)
        check_config_matches(doc, config)
        index_digest = None if index is None else _as_digest(index)
        blobs = [manifest_digest, doc.config.digest, *(layer.digest for layer in doc.layers)]
        if index_digest is not None:
            index_doc = parse_index(self.read_blob(index_digest))
            if all(entry.digest != manifest_digest for entry in index_doc.manifests):
                raise InvalidManifest(f"index {index_digest} does not list {manifest_digest}")
            blobs.append(index_digest)
        blobs = list(dict.fromkeys(blobs))
        manifest_size = len(doc.raw)
        size = manifest_size + doc.config.size + sum(layer.size for layer in doc.layers)
        now = time.time()
        with self._write() as txn:
            for blob in blobs:
                if not self.has_blob(blob):
                    raise NoSuchBlob(blob, self._root)
            _insert_image(
                txn.conn,
                manifest_digest,
                doc.media_type,
                manifest_size,
                config,
                index_digest,
                size,
                now,
                blobs,
            )
            for ref in refs:
                _set_name(txn.conn, ref, manifest_digest, now)
            return _record(txn.conn, manifest_digest)

    def tag(self, image: ImageRecord | str, name: Reference | str) -> Reference:
        """Point `name` (a tag, `latest` if none) at `image`, moving it from another image
        if needed. Returns the canonical reference. A digest reference is refused."""
        ref = _tag_ref(name)
        record = self.resolve(image) if isinstance(image, str) else image
        with self._write() as txn:
            if not _image_exists(txn.conn, record.manifest_digest):
                raise NoSuchImage(str(record.manifest_digest))
            _set_name(txn.conn, ref, record.manifest_digest, time.time())
        return ref

    def untag(self, name: Reference | str) -> ImageRecord:
        """Remove the name; returns the image it named (now without it). The image stays,
        even with no name left: the caller decides whether to `remove()` it (docker rmi)."""
        ref = _tag_ref(name)
        with self._write() as txn:
            named = _named(txn.conn, ref)
            if named is None:
                raise NoSuchImage(name if isinstance(name, str) else ref.familiar())
            _unset_name(txn.conn, ref)
            return _record(txn.conn, Digest.parse(named))

    def resolve(self, term: str) -> ImageRecord:
        """Find an image the way docker does: a name (`busybox` = `...busybox:latest`),
        `name@digest`, a full digest `sha256:...` (image id, manifest or index digest), or
        an image id prefix of at least 4 hex digits. NoSuchImage / AmbiguousImage."""
        if not term.strip():
            raise NoSuchImage(term)
        with self._read() as conn:
            return _lookup(conn, term)

    def images(self) -> list[ImageRecord]:
        """Every image, newest first (by config `created`, then by when it was added)."""
        from datetime import datetime

        with self._read() as conn:
            records = _all_records(conn)
        epoch = datetime.fromtimestamp(0).astimezone()
        records.sort(key=lambda r: (r.created_time() or epoch, r.added), reverse=True)
        return records

    def remove(self, image: ImageRecord | str) -> Removal:
        """Remove the image and all its names, and delete the blobs that no other image uses.
        Deciding whether that is allowed (other names, containers using it) is the caller's
        job: this is the store primitive under `docker rmi`."""
        record = self.resolve(image) if isinstance(image, str) else image
        key = str(record.manifest_digest)
        with self._write() as txn:
            if not _image_exists(txn.conn, record.manifest_digest):
                raise NoSuchImage(key)
            current = _record(txn.conn, record.manifest_digest)
            orphans = _delete_image(txn.conn, record.manifest_digest)
            deleted: list[Digest] = []

            def unlink_orphans() -> None:
                deleted.extend(blob for blob in orphans if self._unlink_blob(blob))

            txn.before_commit.append(unlink_orphans)
        return Removal(current, current.names, tuple(deleted))

    def manifest(self, image: ImageRecord) -> ImageManifest:
        """The image's manifest, read from its blob."""
        return parse_image_manifest(
            self.read_blob(image.manifest_digest), image.manifest_media_type
        )

    def config(self, image: ImageRecord) -> ImageConfig:
        """The image's config (its digest is the image id)."""
        return parse_config(self.read_blob(image.id))

    # --- internals: database ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if _create_db(self._db_file, self._tmp):
            self._root_unsynced = True
        return _open_db(self._db_file, self.timeout)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ImageStoreError(f"image store {self._root} is closed")
        return self._conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot for several queries."""
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN")
            except sqlite3.Error as err:
                raise ImageStoreError(f"image database {self._db_file}: {err}") from None
            try:
                yield conn
            except sqlite3.Error as err:
                conn.execute("ROLLBACK")
                raise ImageStoreError(f"image database {self._db_file}: {err}") from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT under the store's lock; rolled back on any error (an
        sqlite3 error becomes ImageStoreError)."""
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise ImageStoreError(f"image database {self._db_file}: {err}") from None
            try:
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                _rollback(conn)
                raise ImageStoreError(f"image database {self._db_file}: {err}") from None
            except BaseException:
                _rollback(conn)
                raise

    @contextlib.contextmanager
    def _write(self) -> Iterator[_Txn]:
        """A write transaction that also rewrites index.json before it commits."""
        with self._immediate() as conn:
            txn = _Txn(conn)
            yield txn
            _bump_generation(conn)
            self._write_index_json(conn)
            for action in txn.before_commit:
                action()

    def _write_index_json(self, conn: sqlite3.Connection) -> None:
        _atomic_write(self._tmp, self._index_file, canonical_json(_index_document(conn)))

    def _sync_index_json(self) -> None:
        """Rewrite index.json when it is missing or lags the database (a crash between the
        rename and the commit of a transaction), then make what opening created durable.

        The rewrite describes the database as it is, under its write lock, with the same
        generation: nothing changes in the database, so there is nothing to commit (a
        crash halfway leaves index.json old or new, both matching the database).
        """
        try:
            on_disk = json.loads(_read(self._index_file))["annotations"][GENERATION_ANNOTATION]
        except (OSError, ValueError, KeyError, TypeError):
            on_disk = None
        with self._read() as conn:
            current = str(_generation(conn))
        if on_disk != current:
            with self._immediate() as conn:
                self._write_index_json(conn)  # (fsyncs root)
            self._root_unsynced = False
        if self._root_unsynced:
            try:
                _fsync_dir(self._root)
            except OSError as err:
                raise ImageStoreError(f"cannot sync {self._root}: {_why(err)}") from None
            self._root_unsynced = False

    # --- internals: files ------------------------------------------------------------------

    def _ensure_layout_file(self) -> None:
        path = _join(self._root, "oci-layout")
        if not _check_layout(path):
            data = canonical_json({"imageLayoutVersion": LAYOUT_VERSION})
            _atomic_write(self._tmp, path, data, sync_dir=False)  # root is fsynced by the open
            self._root_unsynced = True

    def _unlink_blob(self, digest: Digest) -> bool:
        path = self._blob_file(digest)
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise ImageStoreError(f"cannot delete blob {path}: {_why(err)}") from None
        return True


# --- helpers -------------------------------------------------------------------------------


def _as_digest(value: Digest | str) -> Digest:
    return value if isinstance(value, Digest) else Digest.parse(value)


def _tag_ref(name: Reference | str) -> Reference:
    ref = name if isinstance(name, Reference) else parse_reference(name)
    if ref.digest is not None:
        raise InvalidReference(str(ref), "a digest reference cannot be used as a tag")
    return ref if ref.tag is not None else ref.with_tag("latest")
