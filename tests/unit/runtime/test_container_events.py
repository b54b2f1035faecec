"""`events`: an OOM kill that stops the container is still reported."""

from __future__ import annotations

from typing import Any

import pytest

from cove.oci.state import RUNNING, STOPPED
from cove.runtime import container_events
from cove.runtime.store import ContainerRecord


class FakeStore:
    def load(self, container_id: str) -> ContainerRecord:
        return ContainerRecord(container_id, "/b", "/r", "t", cgroup_paths={})


def test_oom_that_stops_the_container_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    statuses = iter([RUNNING, STOPPED])
    kills = iter([0, 0, 1])  # baseline, while running, after it stopped
    monkeypatch.setattr(container_events, "status_of", lambda store, record: next(statuses))
    monkeypatch.setattr(container_events, "host_layout", lambda: None)
    monkeypatch.setattr(
        container_events.CgroupManager, "oom_kills", lambda self, layout: next(kills)
    )
    monkeypatch.setattr(container_events.CgroupManager, "stats", lambda self, layout: {})
    seen: list[dict[str, Any]] = list(
        container_events.events(FakeStore(), "c1", 1.0, sleep=lambda _s: None)  # type: ignore[arg-type]
    )
    assert [event["type"] for event in seen] == ["stats", "oom"]


def test_no_oom_no_event(monkeypatch: pytest.MonkeyPatch) -> None:
    statuses = iter([RUNNING, STOPPED])
    monkeypatch.setattr(container_events, "status_of", lambda store, record: next(statuses))
    monkeypatch.setattr(container_events, "host_layout", lambda: None)
    monkeypatch.setattr(container_events.CgroupManager, "oom_kills", lambda self, layout: 0)
    monkeypatch.setattr(container_events.CgroupManager, "stats", lambda self, layout: {})
    seen = list(container_events.events(FakeStore(), "c1", 1.0, sleep=lambda _s: None))  # type: ignore[arg-type]
    assert [event["type"] for event in seen] == ["stats"]
