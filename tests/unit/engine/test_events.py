"""cove.engine.events: the JSON-lines journal (appends, ranges, rotation, following),
Docker's filters, and `cove events` output."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from cove.cli.engine.events import format_event
from cove.engine.events import (
    EVENTS_FILE,
    append,
    emit,
    emit_exit,
    format_time,
    make_event,
    matches,
    parse_filters,
    read_events,
    stream_events,
)
from cove.engine.state import ContainerRecord
from cove.errors import InvalidArgument

T0 = 1_795_923_726_123_456_789  # 2026-11-29T03:42:06.123456789Z
NS = 1_000_000_000
CID = "ab" * 32


def record(name: str = "web", labels: dict[str, str] | None = None) -> ContainerRecord:
    return ContainerRecord(id=CID, name=name, image_id="sha256:" + "0" * 64, image_name="bb:1",
                           config={"labels": labels or {}})  # fmt: skip


def ev(action: str, t: int, name: str = "web", event_type: str = "container") -> dict:
    return make_event(action, CID if name == "web" else "cd" * 32, {"name": name, "image": "bb:1"},
                      event_type=event_type, now_ns=t)  # fmt: skip


def test_event_has_dockers_shape() -> None:
    event = make_event("die", CID, {"name": "web", "image": "bb:1", "exitCode": "3"}, now_ns=T0)
    assert event == {
        "status": "die", "id": CID, "from": "bb:1", "Type": "container", "Action": "die",
        "Actor": {"ID": CID, "Attributes": {"name": "web", "image": "bb:1", "exitCode": "3"}},
        "scope": "local", "time": T0 // NS, "timeNano": T0,
    }  # fmt: skip
    network = make_event("connect", "n1", {}, event_type="network", now_ns=T0)
    assert "status" not in network and network["Type"] == "network"


def test_append_writes_one_line_per_event_and_reads_back_in_range(tmp_path: Path) -> None:
    for i, action in enumerate(["create", "start", "die", "destroy"]):
        append(tmp_path, ev(action, T0 + i * NS))
    lines = (tmp_path / EVENTS_FILE).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["Type"] == "container" for line in lines)
    assert [e["Action"] for e in read_events(tmp_path)] == ["create", "start", "die", "destroy"]
    window = read_events(tmp_path, since_ns=T0 + NS, until_ns=T0 + 2 * NS)
    assert [e["Action"] for e in window] == ["start", "die"]
    assert oct((tmp_path / EVENTS_FILE).stat().st_mode & 0o777) == "0o600"


def test_a_torn_line_is_skipped(tmp_path: Path) -> None:
    append(tmp_path, ev("create", T0))
    with open(tmp_path / EVENTS_FILE, "ab") as f:
        f.write(b'{"Type": "contai\n')
    append(tmp_path, ev("start", T0 + 1))
    assert [e["Action"] for e in read_events(tmp_path)] == ["create", "start"]


def test_rotation_keeps_one_old_file(tmp_path: Path) -> None:
    for i in range(30):
        append(tmp_path, ev(f"a{i}", T0 + i), max_bytes=1000)
    old = tmp_path / (EVENTS_FILE + ".1")
    assert old.exists() and (tmp_path / EVENTS_FILE).stat().st_size <= 1000 + 400
    assert sorted(p.name for p in tmp_path.iterdir()) == [EVENTS_FILE, EVENTS_FILE + ".1"]
    actions = [e["Action"] for e in read_events(tmp_path)]
    assert actions == sorted(actions, key=lambda a: int(a[1:]))  # oldest first, no gaps inside
    assert actions[-1] == "a29"
    # the oldest ones went with the second rotation: only one old file is kept
    assert actions[0] != "a0" and len(actions) < 30


def test_concurrent_appends_never_mix_lines(tmp_path: Path) -> None:
    def writer(tag: str) -> None:
        for i in range(200):
            append(tmp_path, ev(f"{tag}-{i}", T0 + i, name="x" * 300), max_bytes=20_000)

    threads = [threading.Thread(target=writer, args=(tag,)) for tag in "abcd"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in (EVENTS_FILE, EVENTS_FILE + ".1"):
        for line in (tmp_path / name).read_bytes().splitlines():
            json.loads(line)  # every line whole


def test_emit_never_fails(tmp_path: Path) -> None:
    emit(tmp_path / "no" / "such" / "dir", "start", record())  # swallowed
    emit(tmp_path, "kill", record(labels={"tier": "web"}), signal=9)
    emit_exit(tmp_path, record(), oom=True)
    events = read_events(tmp_path)
    assert [e["Action"] for e in events] == ["kill", "oom", "die"]
    assert events[0]["Actor"]["Attributes"] == {"tier": "web", "image": "bb:1", "name": "web",
                                                "signal": "9"}  # fmt: skip
    assert events[2]["Actor"]["Attributes"]["exitCode"] == "0"


def test_filters_as_docker() -> None:
    start, other = ev("start", T0), ev("die", T0, name="db")
    assert matches(start, parse_filters(["type=container", "event=start"]))
    assert not matches(start, parse_filters(["event=die"]))
    assert matches(start, parse_filters(["event=die", "event=start"]))  # one value enough
    assert matches(start, parse_filters(["container=web"]))
    assert matches(start, parse_filters([f"container={CID[:12]}"]))
    assert not matches(other, parse_filters(["container=web"]))
    assert matches(start, parse_filters(["image=bb:1"]))
    assert not matches(start, parse_filters(["image=bb:2"]))
    health = make_event("health_status: healthy", CID, {"name": "web"}, now_ns=T0)
    assert matches(health, parse_filters(["event=health_status"]))
    labelled = make_event("start", CID, {"tier": "front", "name": "w"}, now_ns=T0)
    assert matches(labelled, parse_filters(["label=tier"]))
    assert matches(labelled, parse_filters(["label=tier=front"]))
    assert not matches(labelled, parse_filters(["label=tier=back"]))
    assert not matches(labelled, parse_filters(["label=tier=front", "label=tier=back"]))  # all
    assert matches(labelled, parse_filters(["label=tier=front", "label=name"]))
    with pytest.raises(InvalidArgument, match="invalid filter"):
        parse_filters(["colour=red"])
    with pytest.raises(InvalidArgument):
        parse_filters(["event"])


def test_stream_gives_history_then_new_events_until_the_bound(tmp_path: Path) -> None:
    now = time.time_ns()
    append(tmp_path, ev("create", now - 10 * NS))
    append(tmp_path, ev("start", now - 5 * NS))

    def later() -> None:
        time.sleep(0.3)
        append(tmp_path, ev("die", time.time_ns()))
        append(tmp_path, ev("destroy", time.time_ns() + 10 * NS))  # after --until

    thread = threading.Thread(target=later)
    thread.start()
    got = list(stream_events(tmp_path, since_ns=now - 6 * NS, until_ns=now + 3 * NS,
                             interval=0.02))  # fmt: skip
    thread.join()
    assert [e["Action"] for e in got] == ["start", "die"]


def test_stream_without_bounds_gives_only_new_events(tmp_path: Path) -> None:
    append(tmp_path, ev("old", T0))
    seen: list[str] = []

    def stop() -> bool:
        return len(seen) >= 2

    def later() -> None:
        time.sleep(0.2)
        append(tmp_path, ev("new1", T0 + 1))
        append(tmp_path, ev("new2", T0 + 2))

    thread = threading.Thread(target=later)
    thread.start()
    for event in stream_events(tmp_path, stop=stop, interval=0.02):
        seen.append(event["Action"])
    thread.join()
    assert seen == ["new1", "new2"]


def test_stream_follows_across_a_rotation(tmp_path: Path) -> None:
    append(tmp_path, ev("first", T0))
    seen: list[str] = []

    def later() -> None:
        time.sleep(0.2)
        for i in range(20):
            append(tmp_path, ev(f"e{i}", T0 + i + 1, name="y" * 200), max_bytes=2000)
            time.sleep(0.01)

    thread = threading.Thread(target=later)
    thread.start()
    for event in stream_events(tmp_path, stop=lambda: len(seen) >= 20, interval=0.01):
        seen.append(event["Action"])
    thread.join()
    assert (tmp_path / (EVENTS_FILE + ".1")).exists()
    assert seen == [f"e{i}" for i in range(20)]


def test_stream_waits_for_the_file_to_appear(tmp_path: Path) -> None:
    seen: list[str] = []

    def later() -> None:
        time.sleep(0.2)
        append(tmp_path, ev("create", T0))

    thread = threading.Thread(target=later)
    thread.start()
    for event in stream_events(tmp_path, stop=lambda: bool(seen), interval=0.02):
        seen.append(event["Action"])
    thread.join()
    assert seen == ["create"]


def test_output_formats() -> None:
    event = make_event("die", CID, {"name": "web", "image": "bb:1", "exitCode": "3"}, now_ns=T0)
    text = format_event(event)
    assert text.startswith(format_time(T0) + " container die " + CID)
    assert text.endswith("(exitCode=3, image=bb:1, name=web)")
    assert json.loads(format_event(event, "json")) == event
    assert json.loads(format_event(event, "{{json .}}")) == event
    template = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Status}} {{.TimeNano}}"
    assert format_event(event, template) == f"container die web die {T0}"


def test_format_time_is_rfc3339nano(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert format_time(T0) == "2026-11-29T03:42:06.123456789Z"
        assert format_time(T0 - 123_456_789) == "2026-11-29T03:42:06Z"
        assert format_time(T0 - 123_456_789 + 500_000_000) == "2026-11-29T03:42:06.5Z"
        monkeypatch.setenv("TZ", "Europe/Paris")
        time.tzset()
        assert format_time(T0) == "2026-11-29T04:42:06.123456789+01:00"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert os.environ.get("TZ") is None
