"""cove.engine.system_df: shared blobs counted once, what pruning would give back; and
`cove commit`'s config: the container's settings over its image's."""

from __future__ import annotations

from cove.cli.engine.system_df import reclaimable
from cove.engine.container_commit import container_config
from cove.engine.system_df import shared_totals


def test_shared_blobs_count_once() -> None:
    blobs = {
        "img-a": {"base": 1000, "a-top": 10, "a-config": 1},
        "img-b": {"base": 1000, "b-top": 20, "b-config": 2},
        "img-c": {"c-only": 5},
    }
    total, free, shared = shared_totals(blobs, active=["img-a"])
    assert total == 1000 + 10 + 1 + 20 + 2 + 5
    assert free == total - 1011  # all but what img-a holds (the base stays for it)
    assert shared == {"img-a": 1000, "img-b": 1000, "img-c": 0}
    assert shared_totals({}, [])[:2] == (0, 0)


def test_reclaimable_cell() -> None:
    assert reclaimable(400, 1000) == "400B (40%)"
    assert reclaimable(0, 0) == "0B"
    assert reclaimable(5, 10, percent=False) == "5B"


def test_commit_keeps_the_containers_settings() -> None:
    image = {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/", "Labels": {"x": "1"}}
    options = {"cmd": ["echo", "hi"], "env": ["A=2", "B=3", "PATH"], "workdir": "/tmp",
               "user": "1000", "labels": {"y": "2"}, "entrypoint": None}  # fmt: skip
    config = container_config(image, options)
    assert config["Cmd"] == ["echo", "hi"] and config["WorkingDir"] == "/tmp"
    assert config["Env"] == ["A=2", "B=3"]  # a bare NAME unsets it
    assert config["User"] == "1000" and config["Labels"] == {"x": "1", "y": "2"}
    entry = container_config(image, {"entrypoint": ["/bin/top"], "cmd": None})
    assert entry["Entrypoint"] == ["/bin/top"] and "Cmd" not in entry  # as docker drops it
    assert container_config(image, {}) == image
