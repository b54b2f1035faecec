"""The SQLite index of the image store (`cove.image.store`): schema, records and queries.

    images        one row per image (manifest digest, id, platform, size, ...)
    names         canonical reference -> manifest digest
    image_blobs   which blobs each image uses (reference counts for `remove`)
    meta          schema version and the generation number index.json carries

Connections run in autocommit mode (`isolation_level=None`): transactions are begun and
ended explicitly by the store.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3

from cove.errors import AmbiguousImage, ImageStoreError, InvalidReference, NoSuchImage
from cove.image.digest import Digest, is_digest
from cove.image.manifest import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    OCI_INDEX,
    ImageConfig,
    Platform,
    parse_time,
)
from cove.image.records import FrozenRecord, Record
from cove.image.reference import Reference, is_image_id_prefix, parse_reference
from cove.image.store_blobs import _partial_file, _why
from cove.sqlite_retry import retry_locked

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

SCHEMA_VERSION = "1"
#: the shortest image id prefix `ImageStore.resolve` takes
MIN_ID_PREFIX = 4
GENERATION_ANNOTATION = "cove.index.generation"

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


class ImageRecord(FrozenRecord):
    """One image in the store, keyed by its manifest digest.

    `id` is the config digest (docker's image id); `size` counts the manifest, config and
    (compressed) layer blobs; `names` are canonical references, oldest tag first.
    `index_digest` is the index/manifest list the image was pulled through, if any.
    """

    __slots__ = (
        "added",
        "created",
        "id",
        "index_digest",
        "manifest_digest",
        "manifest_media_type",
        "manifest_size",
        "names",
        "platform",
        "size",
    )
    _field_order = (
        "id",
        "manifest_digest",
        "manifest_media_type",
        "manifest_size",
        "index_digest",
        "names",
        "created",
        "size",
        "platform",
        "added",
    )
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

    def __init__(
        self,
        id: Digest,
        manifest_digest: Digest,
        manifest_media_type: str,
        manifest_size: int,
        index_digest: Digest | None,
        names: tuple[Reference, ...],
        created: str,
        size: int,
        platform: Platform,
        added: float,
    ) -> None:
        self._init(
            id,
            manifest_digest,
            manifest_media_type,
            manifest_size,
            index_digest,
            names,
            created,
            size,
            platform,
            added,
        )

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


class Removal(FrozenRecord):
    """What `remove` did: the image, the names it lost, the blobs deleted from disk."""

    __slots__ = ("deleted", "image", "untagged")
    _field_order = ("image", "untagged", "deleted")
    image: ImageRecord
    untagged: tuple[Reference, ...]
    deleted: tuple[Digest, ...]

    def __init__(
        self, image: ImageRecord, untagged: tuple[Reference, ...], deleted: tuple[Digest, ...]
    ) -> None:
        self._init(image, untagged, deleted)


class _Txn(Record):
    __slots__ = ("before_commit", "conn")
    _field_order = ("conn", "before_commit")

    def __init__(
        self, conn: sqlite3.Connection, before_commit: list[Callable[[], None]] | None = None
    ) -> None:
        self.conn = conn
        # Run after index.json has been rewritten and before COMMIT.
        self.before_commit: list[Callable[[], None]] = (
            [] if before_commit is None else before_commit
        )


# --- opening -------------------------------------------------------------------------------


def _create_db(db_path: str | os.PathLike[str], tmp_dir: str | os.PathLike[str]) -> bool:
    """Create the database at `db_path` when there is none: schema, generation 0, WAL mode.

    It is built as a temp file in `tmp_dir` without syncs, fsynced once, and linked into
    place (which fails if another process got there first: False). Creating it in place
    costs about seven syncs (the switch to WAL goes through a rollback journal, then the
    first commit), and a crash could leave a half-made database; a leftover temp file is
    removed as any other. The caller fsyncs `db_path`'s folder.
    """
    if os.path.exists(db_path):
        return False
    try:
        with _partial_file(tmp_dir, "file") as (out, partial):
            try:
                os.fchmod(out.fileno(), 0o644)
                conn = sqlite3.connect(partial, isolation_level=None)
                try:
                    conn.execute("PRAGMA journal_mode = OFF")
                    conn.execute("PRAGMA synchronous = OFF")
                    conn.execute("BEGIN")
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('schema', ?), ('generation', '0')",
                        (SCHEMA_VERSION,),
                    )
                    conn.execute("COMMIT")
                    conn.execute("PRAGMA journal_mode = WAL")
                finally:
                    conn.close()
                os.fsync(out.fileno())
                try:
                    os.link(partial, db_path)
                except FileExistsError:
                    return False  # another process made it meanwhile
                except OSError as err:
                    if err.errno != errno.EXDEV:
                        raise
                    return False  # tmp_dir elsewhere: `_open_db` creates it in place
                return True
            finally:
                os.unlink(partial)
    except sqlite3.Error as err:
        raise ImageStoreError(f"cannot create image database {db_path}: {err}") from None
    except OSError as err:
        raise ImageStoreError(f"cannot create image database {db_path}: {_why(err)}") from None


def _open_db(db_path: str | os.PathLike[str], timeout: float) -> sqlite3.Connection:
    """A connection to the database at `db_path`, schema created (or checked)."""
    try:
        conn = sqlite3.connect(
            db_path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as err:
        raise ImageStoreError(f"cannot open image database {db_path}: {err}") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL"), timeout)
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
        raise ImageStoreError(f"cannot open image database {db_path}: {err}") from None
    if schema != SCHEMA_VERSION:
        conn.close()
        raise ImageStoreError(
            f"image database {db_path} has schema {schema}, this cove knows {SCHEMA_VERSION}"
        )
    return conn


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")


# --- records -------------------------------------------------------------------------------


def _record(conn: sqlite3.Connection, manifest_digest: Digest) -> ImageRecord:
    row = conn.execute(
        f"SELECT {_IMAGE_COLUMNS} FROM images WHERE manifest_digest = ?",
        (str(manifest_digest),),
    ).fetchone()
    if row is None:
        raise NoSuchImage(str(manifest_digest))
    return _from_row(conn, row)


def _from_row(conn: sqlite3.Connection, row: tuple[object, ...]) -> ImageRecord:
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


def _all_records(conn: sqlite3.Connection) -> list[ImageRecord]:
    rows = conn.execute(f"SELECT {_IMAGE_COLUMNS} FROM images").fetchall()
    return [_from_row(conn, row) for row in rows]


# --- queries -------------------------------------------------------------------------------


def _generation(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return int(row[0])


def _bump_generation(conn: sqlite3.Connection) -> None:
    conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'generation'")


def _insert_image(
    conn: sqlite3.Connection,
    manifest_digest: Digest,
    media_type: str,
    manifest_size: int,
    config: ImageConfig,
    index_digest: Digest | None,
    size: int,
    now: float,
    blobs: list[Digest],
) -> None:
    """Adds the image (keeping its index digest if it has one) and the blobs it uses."""
    conn.execute(
        f"INSERT INTO images ({_IMAGE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (manifest_digest) DO UPDATE SET "
        "index_digest = coalesce(excluded.index_digest, index_digest)",
        (
            str(manifest_digest),
            media_type,
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
    conn.executemany(
        "INSERT OR IGNORE INTO image_blobs (manifest_digest, blob) VALUES (?, ?)",
        [(str(manifest_digest), str(blob)) for blob in blobs],
    )


def _delete_image(conn: sqlite3.Connection, manifest_digest: Digest) -> list[Digest]:
    """Deletes the image (its names and blob uses go with it); returns the blobs it used
    that no other image uses."""
    key = str(manifest_digest)
    blobs = [
        row[0]
        for row in conn.execute(
            "SELECT blob FROM image_blobs WHERE manifest_digest = ? ORDER BY blob", (key,)
        )
    ]
    conn.execute("DELETE FROM images WHERE manifest_digest = ?", (key,))
    return [
        Digest.parse(blob)
        for blob in blobs
        if conn.execute("SELECT 1 FROM image_blobs WHERE blob = ? LIMIT 1", (blob,)).fetchone()
        is None
    ]


def _blob_users(conn: sqlite3.Connection, digest: Digest) -> list[str]:
    """The manifest digests of the images that use the blob."""
    return [
        row[0]
        for row in conn.execute(
            "SELECT manifest_digest FROM image_blobs WHERE blob = ?", (str(digest),)
        )
    ]


def _named(conn: sqlite3.Connection, ref: Reference) -> str | None:
    """The manifest digest `ref` names, if any."""
    row = conn.execute("SELECT manifest_digest FROM names WHERE name = ?", (str(ref),)).fetchone()
    return None if row is None else str(row[0])


def _unset_name(conn: sqlite3.Connection, ref: Reference) -> None:
    conn.execute("DELETE FROM names WHERE name = ?", (str(ref),))


def _by_id_prefix(conn: sqlite3.Connection, key: str) -> list[tuple[str, str]]:
    """(image id, manifest digest) of the images whose id starts with `key`, newest first."""
    rows = conn.execute(
        "SELECT image_id, manifest_digest FROM images "
        "WHERE substr(image_id, 1, ?) = ? ORDER BY added DESC",
        (len(key), key),
    ).fetchall()
    return [(str(image_id), str(digest)) for image_id, digest in rows]


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


def _lookup(conn: sqlite3.Connection, term: str) -> ImageRecord:
    """The image `term` names, found the way docker does (see `ImageStore.resolve`):
    NoSuchImage / AmbiguousImage."""
    text = term.strip()
    if not text:
        raise NoSuchImage(term)
    if is_digest(text):
        row = _find_by_digest(conn, text, with_id=True)
        if row is None:
            raise NoSuchImage(term)
        return _record(conn, Digest.parse(row))
    try:
        ref: Reference | None = parse_reference(text)
    except InvalidReference:
        ref = None
    if ref is not None and ref.digest is not None:
        row = _find_by_digest(conn, str(ref.digest), with_id=False)
        if row is not None:
            return _record(conn, Digest.parse(row))
    elif ref is not None:
        found = _named(conn, ref)
        if found is not None:
            return _record(conn, Digest.parse(found))
    prefix = text.removeprefix("sha256:")
    if len(prefix) >= MIN_ID_PREFIX and is_image_id_prefix(prefix):
        key = f"sha256:{prefix}"
        rows = _by_id_prefix(conn, key)
        ids = list(dict.fromkeys(row[0] for row in rows))
        if len(ids) > 1:
            raise AmbiguousImage(prefix, [Digest.parse(i).short() for i in ids])
        if rows:
            return _record(conn, Digest.parse(rows[0][1]))
    raise NoSuchImage(term)


def _index_document(conn: sqlite3.Connection) -> dict[str, object]:
    """The index.json document: one descriptor per name (and per unnamed image)."""
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
        "annotations": {GENERATION_ANNOTATION: str(_generation(conn))},
    }
    return document
