"""Helpers of the image store's tests (`test_store*.py`): a small OCI image's blobs, what
index.json and the database say, a pid that is gone."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cove.image import manifest as m
from cove.image.digest import Digest
from cove.image.store import ImageStore


def build_image(
    store: ImageStore,
    layers: list[bytes],
    *,
    created: str = "2024-01-01T00:00:00Z",
    architecture: str = "amd64",
    variant: str = "",
    store_layers: bool = True,
    note: str = "",
) -> Digest:
    """Store the blobs of a small OCI image and return its manifest digest (not added)."""
    descriptors = []
    for data in layers:
        digest = Digest.of(data)
        if store_layers:
            store.put_blob(data, digest)
        descriptors.append(m.Descriptor(m.OCI_LAYER, digest, len(data)))
    config = m.ImageConfig(
        architecture=architecture,
        os="linux",
        variant=variant,
        diff_ids=tuple(Digest.of(data) for data in layers),
        created=created,
        config=m.ExecutionConfig(cmd=("sh",), labels={"note": note} if note else {}),
    )
    config_bytes = config.to_json()
    config_info = store.put_blob(config_bytes)
    manifest = m.ImageManifest(
        m.OCI_MANIFEST,
        m.Descriptor(m.OCI_CONFIG, config_info.digest, config_info.size),
        tuple(descriptors),
    )
    return store.put_blob(manifest.to_json()).digest


def index_json(store: ImageStore) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((store.root / "index.json").read_bytes())
    return document


def index_names(store: ImageStore) -> dict[str, str]:
    """io.containerd.image.name -> digest, from index.json."""
    return {
        entry["annotations"][m.ANNOTATION_CONTAINERD_NAME]: entry["digest"]
        for entry in index_json(store)["manifests"]
        if "annotations" in entry
    }


def db_generation(store: ImageStore) -> str:
    with sqlite3.connect(store.db_path) as conn:
        (value,) = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
    return str(value)


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    """A new image store (import it as `store as store`)."""
    with ImageStore(tmp_path / "images") as opened:
        yield opened
