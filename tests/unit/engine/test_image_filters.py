"""Docker's image filters over a real image store in a temporary folder: reference globs
(path.Match), dangling, label, before/since, until, and prune's selection."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path

import pytest

from cove.engine.image_filters import path_match, prune, summaries
from cove.engine.image_import import import_tarball
from cove.errors import InvalidArgument
from cove.image.store import ImageStore


def _tar(data: bytes) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("file")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _import(root: Path, data: bytes, name: str | None, *changes: str) -> str:
    with ImageStore(root / "images") as store:
        return str(import_tarball(store, _tar(data), name, changes).id)


class Clock:
    """Stands in for the `time` module of image_import: created times one minute apart."""

    def __init__(self) -> None:
        self.now = 1_600_000_000

    def gmtime(self) -> time.struct_time:
        self.now += 60
        return time.gmtime(self.now)

    strftime = staticmethod(time.strftime)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import cove.engine.image_import

    monkeypatch.setattr(cove.engine.image_import, "time", Clock())
    _import(tmp_path, b"one", "team/app:1", "LABEL tier=web")
    _import(tmp_path, b"two", "127.0.0.1:5000/team/app:2", "LABEL tier=db")
    _import(tmp_path, b"three", None)
    return tmp_path


def test_path_match_is_gos() -> None:
    assert path_match("team/*", "team/app")
    assert not path_match("*", "team/app")  # * stops at /
    assert path_match("team/ap?", "team/app")
    assert path_match("team/[a-c]pp", "team/app")
    assert not path_match("team/[^a]pp", "team/app")
    assert path_match("a.b", "a.b") and not path_match("a.b", "axb")


def test_listing_filters(root: Path) -> None:
    everything = summaries(str(root))
    assert len(everything) == 3
    assert [s.repo_tags for s in everything] == [[], ["127.0.0.1:5000/team/app:2"],
                                                  ["team/app:1"]]  # fmt: skip
    assert everything[2].labels == {"tier": "web"}
    assert [s.repo_tags for s in summaries(str(root), {"reference": ["team/app"]})] == [
        ["team/app:1"]]  # fmt: skip
    assert [s.repo_tags for s in summaries(str(root), {"reference": ["*/*/app:*"]})] == [
        ["127.0.0.1:5000/team/app:2"]]  # fmt: skip
    assert [s.repo_tags for s in summaries(str(root), {"dangling": ["true"]})] == [[]]
    assert len(summaries(str(root), {"dangling": ["false"]})) == 2
    assert [s.labels for s in summaries(str(root), {"label": ["tier=db"]})] == [{"tier": "db"}]
    assert len(summaries(str(root), {"label!": ["tier"]})) == 1
    assert [s.repo_tags for s in summaries(str(root), {"before": ["127.0.0.1:5000/team/app:2"]})
            ] == [["team/app:1"]]  # fmt: skip
    assert [s.repo_tags for s in summaries(str(root), {"since": ["team/app:1"]})] == [
        [], ["127.0.0.1:5000/team/app:2"]]  # fmt: skip
    oldest = everything[2].created
    assert summaries(str(root), until=oldest) == []
    with pytest.raises(InvalidArgument):
        summaries(str(root), {"colour": ["red"]})
    with pytest.raises(InvalidArgument):
        summaries(str(root), {"dangling": ["maybe"]})


def test_prune_selection(root: Path) -> None:
    removed, reclaimed = prune(str(root))
    assert [r.untagged for r in removed] == [()] and reclaimed > 0
    assert len(summaries(str(root))) == 2
    removed, _ = prune(str(root), {"dangling": ["false"], "label": ["tier=db"]})
    assert [r.untagged for r in removed] == [("127.0.0.1:5000/team/app:2",)]
    removed, _ = prune(str(root), {"dangling": ["false"]}, until=0)
    assert removed == []
    removed, _ = prune(str(root), {"dangling": ["false"]})
    assert [r.untagged for r in removed] == [("team/app:1",)]
    assert summaries(str(root)) == []
    with pytest.raises(InvalidArgument):
        prune(str(root), {"reference": ["x"]})


def test_config_labels_come_from_the_image_config(root: Path) -> None:
    with ImageStore(root / "images") as store:
        record = store.resolve("team/app:1")
        config = json.loads(store.read_blob(record.id))
    assert config["config"]["Labels"] == {"tier": "web"}
