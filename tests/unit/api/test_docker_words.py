"""dockerd's words and shapes where the engine's differ (found by tests/compat/test_parity_*.py
against dockerd 20.10), and the journal watch that wakes the wait follower."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cove import errors
from cove.api.containers_wait import JournalWatch
from cove.api.errors import docker_message, familiar
from cove.api.images import docker_inspect


def test_familiar_names_the_tag_docker_looked_for() -> None:
    assert familiar("busybox") == "busybox:latest"
    assert familiar("a/b/c") == "a/b/c:latest"
    assert familiar("localhost:5000/x") == "localhost:5000/x:latest"
    assert familiar("localhost:5000/x:2") == "localhost:5000/x:2"
    assert familiar("x@sha256:" + "a" * 64) == "x@sha256:" + "a" * 64
    assert familiar("sha256:" + "b" * 64) == "sha256:" + "b" * 64


def test_engine_errors_in_dockerds_words() -> None:
    holder = "c" * 64
    assert docker_message(errors.NameConflict("web", holder)) == (
        f'Conflict. The container name "/web" is already in use by container "{holder}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )
    assert docker_message(errors.NoSuchImage("nosuch")) == "No such image: nosuch:latest"
    assert docker_message(errors.NoSuchImage("nosuch:1")) == "No such image: nosuch:1"
    assert docker_message(errors.NoSuchVolume("v1")) == "get v1: no such volume"
    assert docker_message(errors.InvalidArgument("as it was")) == "as it was"


def test_image_config_is_a_container_config() -> None:
    engine = {"Id": "sha256:" + "d" * 64, "Config": {"User": "", "Env": [], "Cmd": None,
              "ExposedPorts": None, "StopSignal": None, "Labels": None}}  # fmt: skip
    config = docker_inspect(engine, (1, 44))["Config"]
    assert config["Env"] is None  # Go's nil slice
    assert "ExposedPorts" not in config and "StopSignal" not in config  # omitempty
    for key, zero in (("Hostname", ""), ("Domainname", ""), ("AttachStdin", False),
                      ("AttachStdout", False), ("AttachStderr", False), ("Tty", False),
                      ("OpenStdin", False), ("StdinOnce", False), ("Image", ""),
                      ("OnBuild", None)):  # fmt: skip
        assert config[key] == zero, key
    kept = docker_inspect({"Config": {"Env": ["A=1"], "StopSignal": "SIGINT"}}, (1, 44))
    assert kept["Config"]["Env"] == ["A=1"] and kept["Config"]["StopSignal"] == "SIGINT"


def test_journal_watch_wakes_on_the_journal_only(tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    journal.write_text("")

    async def scenario() -> tuple[float, float, float]:
        watch = JournalWatch.open(str(journal))
        assert watch is not None
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        loop.call_later(0.05, lambda: (tmp_path / "other.db").write_text("x"))
        await watch.written(0.3)  # another file of the folder: no wake-up
        other = time.monotonic() - started
        started = time.monotonic()
        loop.call_later(0.05, lambda: journal.write_text("{}\n"))
        await watch.written(2.0)
        woke = time.monotonic() - started
        started = time.monotonic()
        await watch.written(0.1)  # nothing new: the timeout
        idle = time.monotonic() - started
        watch.close()
        return other, woke, idle

    other, woke, idle = asyncio.run(scenario())
    assert other >= 0.29
    assert woke < 1.0
    assert 0.09 <= idle < 1.0
