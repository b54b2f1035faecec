"""`start_pull` + `pull(early=...)`: resolving and downloading before the store is open,
as `cove pull` does, against the in-process fake registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cove.errors import ImageStoreError, RegistryNotFound
from cove.image.registry.client import RegistryClient
from cove.image.registry.progress import ProgressEvent
from cove.image.registry.pull import pull
from cove.image.registry.pull_early import start_pull
from cove.image.store import ImageStore
from tests.unit.image.registry.fake_registry import FakeRegistry
from tests.unit.image.registry.test_pull_push import publish


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


def _events(events: list[ProgressEvent]) -> list[tuple[str, str]]:
    """The events without byte counts (their number depends on timing)."""
    return [(e.id, e.status) for e in events if e.status != "Downloading"]


def test_early_pull_gives_what_a_plain_pull_gives(tmp_path: Path, no_config: Path) -> None:
    with FakeRegistry() as reg:
        digest = publish(reg.state, "lib/app", "1", [b"layer-a" * 1000, b"layer-b", b"c"])
        ref = f"{reg.address}/lib/app:1"
        plain_events: list[ProgressEvent] = []
        with ImageStore(tmp_path / "plain") as store:
            plain = pull(store, ref, progress=plain_events.append)
        early_events: list[ProgressEvent] = []
        root = tmp_path / "early"
        with RegistryClient(reg.address) as client:
            early = start_pull(client, ref, None, root, progress=early_events.append)
            with ImageStore(root) as store:
                result = pull(store, ref, client=client, progress=early_events.append,
                              early=early)  # fmt: skip
                assert store.images() == [result.image]
                assert len(store.blobs()) == 5  # manifest, config, 3 layers
        assert str(result.digest) == digest == str(plain.digest)
        assert result.downloaded and result.image.id == plain.image.id
        assert sorted(_events(early_events)) == sorted(_events(plain_events))
        assert early_events[0].status == "Pulling from lib/app"
        assert early_events[-1].status == f"Status: Downloaded newer image for {ref}"
        assert os.listdir(root / "tmp") == []


def test_early_pull_of_what_the_store_holds(tmp_path: Path, no_config: Path) -> None:
    with FakeRegistry() as reg:
        publish(reg.state, "lib/app", "1", [b"a", b"b"])
        ref = f"{reg.address}/lib/app:1"
        root = tmp_path / "images"
        for downloaded in (True, False):
            events: list[ProgressEvent] = []
            with RegistryClient(reg.address) as client:
                early = start_pull(client, ref, None, root, progress=events.append)
                with ImageStore(root) as store:
                    result = pull(store, ref, client=client, progress=events.append,
                                  early=early)  # fmt: skip
            assert result.downloaded is downloaded
        layers = [e.status for e in events if e.id and e.id != "1"]  # (the tag's line)
        assert layers == ["Already exists", "Already exists"]
        blob_gets = [r for r in reg.state.requests if r[0] == "GET" and "/blobs/" in r[1]]
        assert len(blob_gets) == 3


def test_early_pull_failure_is_raised_by_pull(tmp_path: Path, no_config: Path) -> None:
    with FakeRegistry() as reg, RegistryClient(reg.address) as client:
        ref = f"{reg.address}/lib/none:1"
        events: list[ProgressEvent] = []
        early = start_pull(client, ref, None, tmp_path / "images", progress=events.append)
        assert events == []  # held until pull() is called
        with ImageStore(tmp_path / "images") as store:
            with pytest.raises(RegistryNotFound):
                pull(store, ref, client=client, progress=events.append, early=early)
            assert store.images() == []
        assert [e.status for e in events] == ["Pulling from lib/none"]


def test_early_pull_writes_nothing_into_a_store_it_cannot_open(
    tmp_path: Path, no_config: Path
) -> None:
    root = tmp_path / "images"
    root.mkdir()
    (root / "oci-layout").write_text('{"imageLayoutVersion": "9.9.9"}')
    with FakeRegistry() as reg, RegistryClient(reg.address) as client:
        publish(reg.state, "lib/app", "1", [b"a"])
        ref = f"{reg.address}/lib/app:1"
        events: list[ProgressEvent] = []
        early = start_pull(client, ref, None, root, progress=events.append)
        with pytest.raises(ImageStoreError, match="unsupported imageLayoutVersion"):
            ImageStore(root)
        early.cancel()
        with pytest.raises(ImageStoreError, match="unsupported imageLayoutVersion"):
            early.release()
    assert events == []
    # ImageStore made its folders before it refused; no blob, no temp file went in.
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "blobs", "blobs/sha256", "oci-layout", "tmp"
    ]  # fmt: skip


def test_early_pull_must_match_the_store(tmp_path: Path, no_config: Path) -> None:
    with FakeRegistry() as reg, RegistryClient(reg.address) as client:
        publish(reg.state, "lib/app", "1", [b"a"])
        ref = f"{reg.address}/lib/app:1"
        early = start_pull(client, ref, None, tmp_path / "one")
        with ImageStore(tmp_path / "two") as store:
            with pytest.raises(ValueError, match="another's early start"):
                pull(store, ref, client=client, early=early)
        early.release()
