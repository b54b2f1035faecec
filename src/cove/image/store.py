"""The image store: a content-addressed blob store laid out as an OCI image layout, plus a
small SQLite index of the images in it.

    <root>/oci-layout          {"imageLayoutVersion": "1.0.0"}
    <root>/index.json          one descriptor per image name (ref.name + containerd's name)
    <root>/blobs/<alg>/<hex>   blobs, read-only, named by digest
    <root>/images.db           SQLite (WAL): images, names, which blobs each image uses
    <root>/tmp/                partial writes; `*.partial` files locked by their writer

Consistency rules:

- A blob is written to `tmp/`, fsynced, verified against its digest, then renamed into
  place. Its writer holds an flock on the temp file for its whole life, so a temp file
  whose lock is free and whose writer pid is gone is debris from a kill -9:
  `cleanup_partial()` (run on open) removes exactly those.
- Every change to the image index is one `BEGIN IMMEDIATE` transaction; SQLite serialises
  writers across processes (busy timeout, WAL so readers never wait). `index.json` is
  rewritten (temp + fsync + rename) inside that transaction, and carries the database's
  generation number: if a process dies between the rename and the commit, the next open
  sees the mismatch and rewrites `index.json` from the database.
- Blobs are reference-counted by the images that use them: `remove()` deletes only the
  blobs no other image uses, inside the transaction, after `index.json` no longer names
  the image. `add_image()` checks its blobs exist inside its own transaction, so a
  concurrent removal can never leave a registered image without its content.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

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
from cove.image.digest import CHUNK, Digest, Hasher, is_digest
from cove.image.manifest import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    CONFIG_TYPES,
    OCI_INDEX,
    ImageConfig,
    ImageManifest,
    Platform,
    canonical_json,
    check_config_matches,
    parse_config,
    parse_image_manifest,
    parse_index,
    parse_time,
)
from cove.image.reference import Reference, is_image_id_prefix, parse_reference

LAYOUT_VERSION = "1.0.0"
SCHEMA_VERSION = "1"
GENERATION_ANNOTATION = "cove.index.generation"
MIN_ID_PREFIX = 4
DEFAULT_TIMEOUT = 30.0

_PARTIAL_RE = re.compile(r"(?:blob|file)-(\d+)-[0-9a-f]+\.partial")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
    manifest_digest TEXT PRIMARY KEY,
    manifest_media_type TEXT NOT NULL,
    manifest_size INTEGER NOT NULL,
    image_id TEXT NOT NULL,
    index_digest TEXT,
    created TEXT NOT NULL,
    size INTEGER NOT NULL,
    os TEXT NOT NULL,
    architecture TEXT NOT NULL,
    variant TEXT NOT NULL,
    os_version TEXT NOT NULL,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_by_id ON images (image_id);
CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY,
    manifest_digest TEXT NOT NULL REFERENCES images (manifest_digest) ON DELETE CASCADE,
    added REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS names_by_image ON names (manifest_digest);
CREATE TABLE IF NOT EXISTS image_blobs (
    manifest_digest TEXT NOT NULL REFERENCES images (manifest_digest) ON DELETE CASCADE,
    blob TEXT NOT NULL,
    PRIMARY KEY (manifest_digest, blob)
);
CREATE INDEX IF NOT EXISTS image_blobs_by_blob ON image_blobs (blob);
"""

_IMAGE_COLUMNS = (
    "manifest_digest, manifest_media_type, manifest_size, image_id, index_digest, created, "
    "size, os, architecture, variant, os_version, added"
)


@dataclass(frozen=True)
class BlobInfo:
    """What `put_blob` stored: digest and size in bytes."""

    digest: Digest
    size: int


@dataclass(frozen=True)
class ImageRecord:
    """One image in the store, keyed by its manifest digest.

    `id` is the config digest (docker's image id); `size` counts the manifest, config and
    (compressed) layer blobs; `names` are canonical references, oldest tag first.
    `index_digest` is the index/manifest list the image was pulled through, if any.
    """

    id: Digest
    manifest_digest: Digest
    manifest_media_type: str
    manifest_size: int
    index_digest: Digest | None
    names: tuple[Reference, ...]
    created: str
    size: int
    platform: Platform
    added: float

    @property
    def short_id(self) -> str:
        """The 12 hex digits docker prints."""
        return self.id.short()

    def created_time(self) -> datetime | None:
        return parse_time(self.created)

    def repo_tags(self) -> list[str]:
        """Names in docker's familiar form: `busybox:latest`."""
        return [name.familiar() for name in self.names]

    def repo_digests(self) -> list[str]:
        """`repository@digest` for every repository this image is named in (the index digest
        when it was pulled through one, as docker reports)."""
        digest = self.index_digest or self.manifest_digest
        seen: dict[str, None] = {}
        for name in self.names:
            seen.setdefault(f"{name.familiar_name()}@{digest}")
        return list(seen)


@dataclass(frozen=True)
class Removal:
    """What `remove` did: the image, the names it lost, the blobs deleted from disk."""

    image: ImageRecord
    untagged: tuple[Reference, ...]
    deleted: tuple[Digest, ...]


@dataclass
class _Txn:
    conn: sqlite3.Connection
    # Run after index.json has been rewritten and before COMMIT.
    before_commit: list[Callable[[], None]] = field(default_factory=list)


class ImageStore:
    """The image store under `root` (usually `<engine root>/images`).

    One object per process: open it after a fork, never share it across one. Safe for
    threads (one lock) and for several processes at once (SQLite locking).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        tmp_dir: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs"
        self.tmp_dir = Path(tmp_dir) if tmp_dir is not None else self.root / "tmp"
        self.db_path = self.root / "images.db"
        self.index_path = self.root / "index.json"
        self.timeout = timeout
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            for folder in (self.root, self.blobs_dir / "sha256", self.tmp_dir):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ImageStoreError(f"cannot create image store {self.root}: {_why(err)}") from None
        self._ensure_layout_file()
        self._conn = self._connect()
        self.cleanup_partial()
        self._sync_index_json()

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
        digest = _as_digest(digest)
        return self.blobs_dir / digest.algorithm / digest.hex

    def has_blob(self, digest: Digest | str) -> bool:
        return self.blob_path(digest).is_file()

    def blob_size(self, digest: Digest | str) -> int:
        path = self.blob_path(digest)
        try:
            return path.stat().st_size
        except FileNotFoundError:
            raise NoSuchBlob(digest, str(self.root)) from None

    def open_blob(self, digest: Digest | str) -> BinaryIO:
        """The blob's content, opened for reading (the caller closes it)."""
        path = self.blob_path(digest)
        try:
            return open(path, "rb")  # the caller owns and closes it
        except FileNotFoundError:
            raise NoSuchBlob(digest, str(self.root)) from None
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
                raise DigestMismatch(digest, actual, f"blob {self.blob_path(digest)}")
        return data

    def put_blob(
        self,
        data: bytes | BinaryIO | Iterable[bytes],
        expected: Digest | str | None = None,
        *,
        expected_size: int | None = None,
    ) -> BlobInfo:
        """Store `data` (bytes, a binary stream, or an iterable of chunks) as a blob.

        With `expected`, the content must hash to it (DigestMismatch otherwise, and nothing
        is stored); when that blob is already present, `data` is not read at all. The blob
        appears atomically: readers see all of it or nothing.
        """
        want = None if expected is None else _as_digest(expected)
        if want is not None and self.has_blob(want):
            size = self.blob_size(want)
            if expected_size is not None and size != expected_size:
                raise SizeMismatch(expected_size, size, str(want))
            return BlobInfo(want, size)
        hasher = Hasher(expected=want, expected_size=expected_size)
        with self._partial("blob") as (out, partial):
            try:
                for chunk in _chunks(data):
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            except OSError as err:
                raise ImageStoreError(f"cannot write blob into {self.root}: {_why(err)}") from None
            digest = hasher.verify()
            final = self.blob_path(digest)
            try:
                final.parent.mkdir(exist_ok=True)
                os.rename(partial, final)
                _fsync_dir(final.parent)
            except OSError as err:
                raise ImageStoreError(f"cannot store blob {final}: {_why(err)}") from None
        return BlobInfo(digest, hasher.size)

    def delete_blob(self, digest: Digest | str, *, force: bool = False) -> bool:
        """Delete a blob; False when it was not there. A blob that an image uses is refused
        (ImageStoreError) unless `force`: use `remove()` to delete images."""
        digest = _as_digest(digest)
        with self._write() as txn:
            if not force:
                users = [
                    row[0]
                    for row in txn.conn.execute(
                        "SELECT manifest_digest FROM image_blobs WHERE blob = ?", (str(digest),)
                    )
                ]
                if users:
                    raise ImageStoreError(
                        f"blob {digest} is used by image(s) {', '.join(users)}: remove those"
                    )
            return self._unlink_blob(digest)

    def blobs(self) -> list[Digest]:
        """Every blob on disk."""
        found: list[Digest] = []
        for folder in sorted(self.blobs_dir.iterdir()):
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                text = f"{folder.name}:{entry.name}"
                if is_digest(text):
                    found.append(Digest.parse(text))
        return found

    def cleanup_partial(self) -> list[Path]:
        """Remove temp files left by writers that died (kill -9). Returns what it removed.

        A temp file is removed only when its writer's flock is free and its pid is gone,
        so running this while other processes write is safe.
        """
        removed: list[Path] = []
        try:
            entries = list(self.tmp_dir.iterdir())
        except FileNotFoundError:
            return removed
        for path in entries:
            match = _PARTIAL_RE.fullmatch(path.name)
            if match is None:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # renamed into place or cleaned up meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer holds it
                if _pid_alive(int(match.group(1))):
                    continue  # just created and not locked yet, or the pid was reused
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
            finally:
                os.close(fd)
        return removed

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
                    raise NoSuchBlob(blob, str(self.root))
            txn.conn.execute(
                f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (manifest_digest) DO UPDATE SET "
                "index_digest = coalesce(excluded.index_digest, index_digest)",
                (
                    str(manifest_digest),
                    doc.media_type,
                    manifest_size,
                    str(config.digest),
                    None if index_digest is None else str(index_digest),
                    config.created,
                    size,
                    config.os,
                    config.architecture,
                    config.variant,
                    config.os_version,
                    now,
                ),
            )
            txn.conn.executemany(
                "INSERT OR IGNORE INTO image_blobs (manifest_digest, blob) VALUES (?, ?)",
                [(str(manifest_digest), str(blob)) for blob in blobs],
            )
            for ref in refs:
                _set_name(txn.conn, ref, manifest_digest, now)
            return self._record(txn.conn, manifest_digest)

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
            row = txn.conn.execute(
                "SELECT manifest_digest FROM names WHERE name = ?", (str(ref),)
            ).fetchone()
            if row is None:
                raise NoSuchImage(name if isinstance(name, str) else ref.familiar())
            txn.conn.execute("DELETE FROM names WHERE name = ?", (str(ref),))
            return self._record(txn.conn, Digest.parse(row[0]))

    def resolve(self, term: str) -> ImageRecord:
        """Find an image the way docker does: a name (`busybox` = `...busybox:latest`),
        `name@digest`, a full digest `sha256:...` (image id, manifest or index digest), or
        an image id prefix of at least 4 hex digits. NoSuchImage / AmbiguousImage."""
        text = term.strip()
        if not text:
            raise NoSuchImage(term)
        with self._read() as conn:
            if is_digest(text):
                row = _find_by_digest(conn, text, with_id=True)
                if row is None:
                    raise NoSuchImage(term)
                return self._record(conn, Digest.parse(row))
            try:
                ref: Reference | None = parse_reference(text)
            except InvalidReference:
                ref = None
            if ref is not None and ref.digest is not None:
                row = _find_by_digest(conn, str(ref.digest), with_id=False)
                if row is not None:
                    return self._record(conn, Digest.parse(row))
            elif ref is not None:
                found = conn.execute(
                    "SELECT manifest_digest FROM names WHERE name = ?", (str(ref),)
                ).fetchone()
                if found is not None:
                    return self._record(conn, Digest.parse(found[0]))
            prefix = text.removeprefix("sha256:")
            if len(prefix) >= MIN_ID_PREFIX and is_image_id_prefix(prefix):
                key = f"sha256:{prefix}"
                rows = conn.execute(
                    "SELECT image_id, manifest_digest FROM images "
                    "WHERE substr(image_id, 1, ?) = ? ORDER BY added DESC",
                    (len(key), key),
                ).fetchall()
                ids = list(dict.fromkeys(row[0] for row in rows))
                if len(ids) > 1:
                    raise AmbiguousImage(prefix, [Digest.parse(i).short() for i in ids])
                if rows:
                    return self._record(conn, Digest.parse(rows[0][1]))
        raise NoSuchImage(term)

    def images(self) -> list[ImageRecord]:
        """Every image, newest first (by config `created`, then by when it was added)."""
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_IMAGE_COLUMNS} FROM images").fetchall()
            records = [self._from_row(conn, row) for row in rows]
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
            current = self._record(txn.conn, record.manifest_digest)
            blobs = [
                row[0]
                for row in txn.conn.execute(
                    "SELECT blob FROM image_blobs WHERE manifest_digest = ? ORDER BY blob", (key,)
                )
            ]
            txn.conn.execute("DELETE FROM images WHERE manifest_digest = ?", (key,))
            orphans = [
                Digest.parse(blob)
                for blob in blobs
                if txn.conn.execute(
                    "SELECT 1 FROM image_blobs WHERE blob = ? LIMIT 1", (blob,)
                ).fetchone()
                is None
            ]
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

    # --- internals: records ----------------------------------------------------------------

    def _record(self, conn: sqlite3.Connection, manifest_digest: Digest) -> ImageRecord:
        row = conn.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE manifest_digest = ?",
            (str(manifest_digest),),
        ).fetchone()
        if row is None:
            raise NoSuchImage(str(manifest_digest))
        return self._from_row(conn, row)

    def _from_row(self, conn: sqlite3.Connection, row: tuple[object, ...]) -> ImageRecord:
        (digest, media_type, manifest_size, image_id, index_digest, created, size) = row[:7]
        (os_name, arch, variant, os_version, added) = row[7:]
        names = tuple(
            parse_reference(name)
            for (name,) in conn.execute(
                "SELECT name FROM names WHERE manifest_digest = ? ORDER BY added, name",
                (digest,),
            )
        )
        return ImageRecord(
            id=Digest.parse(str(image_id)),
            manifest_digest=Digest.parse(str(digest)),
            manifest_media_type=str(media_type),
            manifest_size=int(str(manifest_size)),
            index_digest=None if index_digest is None else Digest.parse(str(index_digest)),
            names=names,
            created=str(created),
            size=int(str(size)),
            platform=Platform(str(os_name), str(arch), str(variant), str(os_version)),
            added=float(str(added)),
        )

    # --- internals: database ---------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.db_path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as err:
            raise ImageStoreError(f"cannot open image database {self.db_path}: {err}") from None
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), self.timeout)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?), ('generation', '0')",
                (SCHEMA_VERSION,),
            )
            (schema,) = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            conn.execute("COMMIT")
        except sqlite3.Error as err:
            conn.close()
            raise ImageStoreError(f"cannot open image database {self.db_path}: {err}") from None
        if schema != SCHEMA_VERSION:
            conn.close()
            raise ImageStoreError(
                f"image database {self.db_path} has schema {schema}, this cove knows "
                f"{SCHEMA_VERSION}"
            )
        return conn

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ImageStoreError(f"image store {self.root} is closed")
        return self._conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot for several queries."""
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN")
            except sqlite3.Error as err:
                raise ImageStoreError(f"image database {self.db_path}: {err}") from None
            try:
                yield conn
            except sqlite3.Error as err:
                conn.execute("ROLLBACK")
                raise ImageStoreError(f"image database {self.db_path}: {err}") from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _write(self) -> Iterator[_Txn]:
        """A write transaction that also rewrites index.json before it commits."""
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as err:
                raise ImageStoreError(f"image database {self.db_path}: {err}") from None
            txn = _Txn(conn)
            try:
                yield txn
                conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")
                self._write_index_json(conn)
                for action in txn.before_commit:
                    action()
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                _rollback(conn)
                raise ImageStoreError(f"image database {self.db_path}: {err}") from None
            except BaseException:
                _rollback(conn)
                raise

    def _generation(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0])

    def _write_index_json(self, conn: sqlite3.Connection) -> None:
        manifests: list[dict[str, object]] = []
        rows = conn.execute(
            "SELECT n.name, i.manifest_digest, i.manifest_media_type, i.manifest_size, i.os, "
            "i.architecture, i.variant, i.os_version FROM images i "
            "LEFT JOIN names n ON n.manifest_digest = i.manifest_digest "
            "ORDER BY n.name IS NULL, n.name, i.manifest_digest"
        )
        for name, digest, media_type, size, os_name, arch, variant, os_version in rows:
            platform = Platform(os_name, arch, variant, os_version)
            entry: dict[str, object] = {
                "mediaType": media_type,
                "digest": digest,
                "size": size,
                "platform": platform.to_json(),
            }
            if name is not None:
                ref = parse_reference(name)
                entry["annotations"] = {
                    ANNOTATION_CONTAINERD_NAME: name,
                    ANNOTATION_REF_NAME: ref.tag or str(ref.digest),
                }
            manifests.append(entry)
        document = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
            "annotations": {GENERATION_ANNOTATION: str(self._generation(conn))},
        }
        self._atomic_write(self.index_path, canonical_json(document))

    def _sync_index_json(self) -> None:
        """Rewrite index.json when it is missing or lags the database (a crash between the
        rename and the commit of a transaction)."""
        try:
            on_disk = json.loads(self.index_path.read_bytes())["annotations"][GENERATION_ANNOTATION]
        except (OSError, ValueError, KeyError, TypeError):
            on_disk = None
        with self._read() as conn:
            current = str(self._generation(conn))
        if on_disk != current:
            with self._write():
                pass

    # --- internals: files ------------------------------------------------------------------

    def _ensure_layout_file(self) -> None:
        path = self.root / "oci-layout"
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            self._atomic_write(path, canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
            return
        except (OSError, ValueError) as err:
            raise ImageStoreError(f"cannot read {path}: {err}") from None
        version = document.get("imageLayoutVersion") if isinstance(document, dict) else None
        if version != LAYOUT_VERSION:
            raise ImageStoreError(f"{path}: unsupported imageLayoutVersion {version!r}")

    @contextlib.contextmanager
    def _partial(self, kind: str) -> Iterator[tuple[BinaryIO, Path]]:
        """A new locked temp file in tmp/, removed unless the body renamed it away."""
        path = self.tmp_dir / f"{kind}-{os.getpid()}-{secrets.token_hex(8)}.partial"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        except OSError as err:
            raise ImageStoreError(
                f"cannot create a temp file in {self.tmp_dir}: {_why(err)}"
            ) from None
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if we are killed
        out = os.fdopen(fd, "wb")
        try:
            yield out, path
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            raise
        finally:
            out.close()

    def _atomic_write(self, path: Path, data: bytes) -> None:
        with self._partial("file") as (out, partial):
            try:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
                os.chmod(partial, 0o644)
                os.rename(partial, path)
                _fsync_dir(path.parent)
            except OSError as err:
                raise ImageStoreError(f"cannot write {path}: {_why(err)}") from None

    def _unlink_blob(self, digest: Digest) -> bool:
        path = self.blob_path(digest)
        try:
            path.unlink()
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


def _set_name(
    conn: sqlite3.Connection, ref: Reference, manifest_digest: Digest, now: float
) -> None:
    conn.execute(
        "INSERT INTO names (name, manifest_digest, added) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET manifest_digest = excluded.manifest_digest, "
        "added = excluded.added WHERE names.manifest_digest != excluded.manifest_digest",
        (str(ref), str(manifest_digest), now),
    )


def _image_exists(conn: sqlite3.Connection, manifest_digest: Digest) -> bool:
    row = conn.execute(
        "SELECT 1 FROM images WHERE manifest_digest = ?", (str(manifest_digest),)
    ).fetchone()
    return row is not None


def _find_by_digest(conn: sqlite3.Connection, digest: str, *, with_id: bool) -> str | None:
    """The manifest digest of the newest image whose manifest or index (or, `with_id`, id)
    is `digest`."""
    sql = "SELECT manifest_digest FROM images WHERE manifest_digest = ?1 OR index_digest = ?1"
    if with_id:
        sql += " OR image_id = ?1"
    row = conn.execute(sql + " ORDER BY added DESC LIMIT 1", (digest,)).fetchone()
    return None if row is None else str(row[0])


def _chunks(data: bytes | BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    read = getattr(data, "read", None)
    if read is not None:
        while chunk := read(CHUNK):
            yield chunk
        return
    yield from data


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


def _retry_locked(action: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the command name, which is in parentheses and may contain spaces.
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] != "Z"


def _why(err: OSError) -> str:
    return err.strerror or errno.errorcode.get(err.errno or 0, str(err))
