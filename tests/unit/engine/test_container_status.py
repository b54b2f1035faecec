"""cove.engine.container_status: the STATUS column of `docker ps`."""

from __future__ import annotations

from typing import Any

import pytest

from cove.engine.container_status import human_duration, status_text
from cove.engine.state_records import ContainerRecord

STARTED = "2026-11-29T03:42:06.123456789Z"
STARTED_NS = 1_795_923_726_123_456_789
FINISHED = "2026-11-29T04:00:00Z"
FINISHED_NS = 1_795_924_800_000_000_000
NS = 1_000_000_000


def make(status: str = "created", **kw: Any) -> ContainerRecord:
    return ContainerRecord(
        id="ab" * 32,
        name="web",
        image_id="sha256:" + "cd" * 32,
        image_name="busybox:latest",
        created="2026-11-29T03:40:00.000000001Z",
        status=status,
        config={},
        **kw,
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "Less than a second"),
        (0.9, "Less than a second"),
        (-5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (59 * 60 + 59, "59 minutes"),
        (3600, "About an hour"),
        (int(1.49 * 3600), "About an hour"),
        (int(1.5 * 3600), "2 hours"),
        (47 * 3600, "47 hours"),
        (48 * 3600, "2 days"),
        (13 * 86400, "13 days"),
        (14 * 86400, "2 weeks"),
        (59 * 86400, "8 weeks"),
        (60 * 86400, "2 months"),
        (729 * 86400, "24 months"),
        (730 * 86400, "2 years"),
        (3 * 366 * 86400, "3 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(int(seconds * NS)) == text


def test_status_text() -> None:
    assert status_text(make()) == "Created"
    running = make("running", started_at=STARTED)
    assert status_text(running, now_ns=STARTED_NS + 5 * NS) == "Up 5 seconds"
    assert status_text(running, now_ns=STARTED_NS + 10**8) == "Up Less than a second"
    paused = make("paused", started_at=STARTED)
    assert status_text(paused, now_ns=STARTED_NS + 180 * NS) == "Up 3 minutes (Paused)"
    exited = make("exited", exit_code=0, started_at=STARTED, finished_at=FINISHED)
    assert status_text(exited, now_ns=FINISHED_NS + 2 * 3600 * NS) == "Exited (0) 2 hours ago"
    crashed = make("exited", exit_code=137, started_at=STARTED, finished_at=FINISHED)
    assert status_text(crashed, now_ns=FINISHED_NS + 3 * 86400 * NS) == "Exited (137) 3 days ago"
    assert status_text(make("exited", exit_code=2)) == "Exited (2)"
    assert status_text(make("dead", finished_at=FINISHED)) == "Dead"


def test_status_text_uses_the_clock() -> None:
    assert status_text(make("running", started_at="2000-01-01T00:00:00Z")).endswith(" years")
