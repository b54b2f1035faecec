"""Pulls resumed across runs: a pull killed (kill -9) in the middle of a big layer leaves
`tmp/pull-<hex>.partial`; the next pull re-hashes those bytes and asks for the rest with a
Range request (or starts over when the registry ignores Range)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.image.digest import Digest
from cove.image.registry.pull import pull
from cove.image.store import ImageStore
from cove.image.store_blobs import RESUMABLE_MAX_AGE
from tests.unit.image.registry.fake_registry import FakeRegistry
from tests.unit.image.registry.test_pull_push import publish

SRC = Path(__file__).resolve().parents[4] / "src"
CUT = 1_500_000
BIG = 4 << 20

# The first pull, in a child process that the test kills with SIGKILL mid-layer.
_CHILD = """
import sys
from cove.image.registry.pull import pull
from cove.image.store import ImageStore
with ImageStore(sys.argv[1]) as store:
    pull(store, sys.argv[2], workers=1)
"""


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with FakeRegistry() as reg:
        yield reg
        reg.state.release.set()


def _killed_pull(root: Path, ref: str, partial: Path, size: int) -> None:
    """Start a pull in a child and SIGKILL it once `partial` holds `size` bytes."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(root), ref], env=env)
    try:
        deadline = time.monotonic() + 30
        while not (partial.exists() and partial.stat().st_size >= size):
            assert child.poll() is None, "the first pull ended before it was killed"
            assert time.monotonic() < deadline, "the partial file never reached its size"
            time.sleep(0.01)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


@pytest.mark.parametrize("honour_range", [True, False])
def test_killed_pull_resumes_from_partial_file(
    tmp_path: Path, registry: FakeRegistry, no_config: Path, honour_range: bool
) -> None:
    state = registry.state
    big = os.urandom(BIG)
    publish(state, "k/app", "1", [big])
    layer = _digest(big)
    ref = f"{registry.address}/k/app:1"
    root = tmp_path / "images"
    partial = root / "tmp" / f"pull-{layer.removeprefix('sha256:')}.partial"
    state.stall_after[layer] = CUT
    _killed_pull(root, ref, partial, CUT)
    state.release.set()
    assert partial.stat().st_size == CUT
    assert partial.read_bytes() == big[:CUT]

    state.honour_range = honour_range
    state.requests.clear()
    with ImageStore(root) as store:  # (its cleanup keeps the resumable download)
        assert partial.exists()
        result = pull(store, ref)
        assert store.read_blob(layer) == big
        assert str(result.image.manifest_digest) == _digest(state.manifests[("k/app", "1")][0])
        assert list(store.tmp_dir.iterdir()) == []
    gets = [r for r in state.requests if r[0] == "GET" and r[1].endswith(layer)]
    assert len(gets) == 1
    assert gets[0][2]["Range"] == f"bytes={CUT}-"


def test_resumed_bytes_that_are_wrong_start_over(
    tmp_path: Path, registry: FakeRegistry, no_config: Path
) -> None:
    state = registry.state
    big = os.urandom(1 << 20)
    publish(state, "w/app", "1", [big])
    layer = _digest(big)
    with ImageStore(tmp_path / "images") as store:
        partial = store.tmp_dir / f"pull-{layer.removeprefix('sha256:')}.partial"
        partial.write_bytes(b"\0" * 1000)  # not the blob's first bytes
        pull(store, f"{registry.address}/w/app:1")
        assert store.read_blob(layer) == big
        assert list(store.tmp_dir.iterdir()) == []
    gets = [r for r in state.requests if r[0] == "GET" and r[1].endswith(layer)]
    assert [g[2].get("Range") for g in gets] == ["bytes=1000-", None]


def test_digest_mismatch_deletes_the_partial_file(
    tmp_path: Path, registry: FakeRegistry, no_config: Path
) -> None:
    from cove.errors import DigestMismatch

    state = registry.state
    big = os.urandom(1 << 20)
    publish(state, "c/app", "1", [big])
    layer = _digest(big)
    state.corrupt.add(layer)
    with ImageStore(tmp_path / "images") as store:
        with pytest.raises(DigestMismatch):
            pull(store, f"{registry.address}/c/app:1")
        assert list(store.tmp_dir.iterdir()) == []


def test_cleanup_keeps_resumable_downloads(tmp_path: Path) -> None:
    with ImageStore(tmp_path / "images") as store:
        stored = store.put_blob(b"stored blob").digest
        kept = store.tmp_dir / f"pull-{'a' * 64}.partial"
        old = store.tmp_dir / f"pull-{'b' * 64}.partial"
        done = store.tmp_dir / f"pull-{stored.hex}.partial"
        for path in (kept, old, done):
            path.write_bytes(b"some bytes")
        day_ago = time.time() - RESUMABLE_MAX_AGE - 60
        os.utime(old, (day_ago, day_ago))
        assert sorted(store.cleanup_partial()) == sorted([old, done])
        assert kept.exists()
        # one being written (its lock held) stays whatever its age
        with store.resumable_blob(Digest.parse("sha256:" + "c" * 64)) as blob:
            blob.write(b"x")
            os.utime(blob.path, (day_ago, day_ago))
            assert store.cleanup_partial() == []
            assert blob.path.exists()
