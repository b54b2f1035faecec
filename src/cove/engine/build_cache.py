"""The build cache: which intermediate image a step gave, keyed by what the step saw.

`<root>/build/cache.db` (SQLite, WAL): one row per step result. The key is the sha256 of a
canonical JSON document (`step_key`): the parent image id, the instruction as expanded
(without its line numbers: moving a line does not invalidate it), and what else the step
depends on: the environment of a RUN (so build args count), the content hash of the files
a COPY/ADD copies (paths, modes, link targets, bytes; never mtimes), the image a `--from`
reads, the network, the build's timestamp. A hit is only a hit while its image is still in
the image store (`BuildService` checks, and forgets stale rows).

Rows are also what `cove images` uses to hide intermediate images (`intermediate_ids`:
untagged images that a cached step was built on, as Docker hides the parents of images).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    key TEXT PRIMARY KEY,
    parent TEXT NOT NULL,
    image TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS steps_parent ON steps (parent);
"""
CACHE_VERSION = 1


def cache_path(root: str) -> str:
    return os.path.join(root, "build", "cache.db")


def step_key(parent: str, material: dict[str, Any]) -> str:
    """The cache key of a step on `parent` (an image id, or "scratch")."""
    document = {"version": CACHE_VERSION, "parent": parent, **material}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


class BuildCache:
    """The step cache of one engine root (thread-safe: one connection, one lock)."""

    def __init__(self, root: str) -> None:
        path = cache_path(root)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                     check_same_thread=False)  # fmt: skip
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> BuildCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT image FROM steps WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, parent: str, image: str) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO steps (key, parent, image, created) VALUES (?, ?, ?, ?)",
                (key, parent, image, time.time()),
            )

    def forget(self, key: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM steps WHERE key = ?", (key,))

    def forget_before(self, until: float | None = None) -> set[str]:
        """Forget every step (made before `until`, a time.time()); the image ids they gave
        and were built on."""
        bound = float("inf") if until is None else until
        with self._lock:
            rows = self._conn.execute(
                "SELECT parent, image FROM steps WHERE created < ?", (bound,)
            ).fetchall()
            self._conn.execute("DELETE FROM steps WHERE created < ?", (bound,))
        return {str(value) for row in rows for value in row} - {"scratch"}


def intermediate_ids(root: str) -> set[str]:
    """Image ids that cached steps were built on (Docker's intermediate images): `cove
    images` hides those that have no name. Empty when no build ever ran."""
    path = cache_path(root)
    if not os.path.exists(path):
        return set()
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            rows = conn.execute("SELECT DISTINCT parent FROM steps").fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return set()
    return {str(row[0]) for row in rows}
