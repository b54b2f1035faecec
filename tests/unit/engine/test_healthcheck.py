"""cove.engine.healthcheck: the flags and the API/image Healthcheck, Docker's merge, the
state a result leaves (streak, retries, start period, the last 5 entries), its file, and how
it shows in inspect and ps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cove.engine import healthcheck as hc
from cove.engine.container_inspect import inspect_container
from cove.engine.container_status import status_text
from cove.engine.state_records import ContainerRecord
from cove.errors import InvalidArgument

NS = 1_000_000_000
MS = 1_000_000


# --- durations and flags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [("30s", 30 * NS), ("1m30s", 90 * NS), ("500ms", 500 * MS), ("1h", 3600 * NS),
     ("1.5s", 1500 * MS), ("0", 0), ("0s", 0)],
)  # fmt: skip
def test_parse_duration(text: str, ns: int) -> None:
    assert hc.parse_duration(text, "--health-interval") == ns


@pytest.mark.parametrize(
    ("text", "words"),
    [("5x", "want a duration"), ("", "want a duration"), ("30", "want a duration"),
     ("-1s", "cannot be negative"), ("10us", "cannot be under 1ms")],
)  # fmt: skip
def test_bad_durations_name_the_flag(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        hc.parse_duration(text, "--health-interval")
    assert f"invalid value '{text}' for flag --health-interval" in str(caught.value)
    assert words in str(caught.value)


def test_health_options_from_the_flags() -> None:
    assert hc.health_options() is None  # nothing given: the image decides
    assert hc.health_options(disabled=True) == {"Test": ["NONE"]}
    config = hc.health_options(cmd="curl -f localhost", interval="5s", timeout="2s",
                               retries=4, start_period="1m")  # fmt: skip
    assert config == {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 5 * NS,
                      "Timeout": 2 * NS, "Retries": 4, "StartPeriod": 60 * NS}  # fmt: skip
    assert hc.health_options(interval="1s") == {"Interval": NS}  # the image's Test stays


def test_health_options_refuse_conflicts_and_negative_retries() -> None:
    with pytest.raises(InvalidArgument, match="--no-healthcheck conflicts with --health-"):
        hc.health_options(cmd="true", disabled=True)
    with pytest.raises(InvalidArgument, match="--health-retries: it cannot be negative"):
        hc.health_options(cmd="true", retries=-1)


def test_check_config_for_the_api_and_images() -> None:
    assert hc.check_config(None) == {}
    assert hc.check_config({"Test": ["CMD", "true"], "Retries": 0}) == {"Test": ["CMD", "true"]}
    for bad, words in (({"Test": ["SHELL", "x"]}, "NONE, CMD or CMD-SHELL"),
                       ({"Test": ["CMD"]}, "CMD needs a command"),
                       ({"Test": "true"}, "a list of strings"),
                       ({"Interval": -1}, "Interval: want a number >= 0"),
                       ({"Timeout": 10}, "Timeout: it cannot be under 1ms"),
                       ({"Retries": "3"}, "Retries: want a number")):  # fmt: skip
        with pytest.raises(InvalidArgument, match=words):
            hc.check_config(bad)


def test_resolve_merges_the_flags_over_the_image_field_by_field() -> None:
    image = {"Test": ["CMD", "check"], "Interval": 10 * NS, "Retries": 5}
    assert hc.resolve(None, image) == image
    assert hc.resolve({"Interval": NS}, image) == {**image, "Interval": NS}
    mine = {"Test": ["CMD-SHELL", "true"], "Timeout": 3 * NS}
    assert hc.resolve(mine, image) == {**image, **mine}
    assert hc.resolve({"Test": ["NONE"]}, image) is None  # --no-healthcheck
    assert hc.resolve(None, {"Test": ["NONE"]}) is None
    assert hc.resolve({"Interval": NS}, None) is None  # no Test anywhere
    assert hc.resolve(None, None) is None


def test_image_healthcheck_reads_the_config_extra() -> None:
    from cove.image.image_config import ExecutionConfig

    check = {"Test": ["CMD-SHELL", "true"], "Interval": NS}
    assert hc.image_healthcheck(ExecutionConfig(extra={"Healthcheck": check})) == check
    assert hc.image_healthcheck(ExecutionConfig()) is None
    assert hc.image_healthcheck(None) is None


def test_monitor_schedule_and_probe_command() -> None:
    assert hc.monitor_schedule(None) == 0
    assert hc.monitor_schedule({"Test": ["NONE"]}) == 0
    assert hc.monitor_schedule({"Test": ["CMD", "true"]}) == 30_000  # Docker's default: 30s
    assert hc.monitor_schedule({"Test": ["CMD", "true"], "Interval": 250 * MS}) == 250
    assert hc.probe_command(["CMD-SHELL", "a && b"]) == ["/bin/sh", "-c", "a && b"]
    assert hc.probe_command(["CMD", "/bin/check", "-v"]) == ["/bin/check", "-v"]


@pytest.mark.parametrize(
    ("ns", "text"),
    [(30 * NS, "30s"), (90 * NS, "1m30s"), (500 * MS, "500ms"), (3600 * NS, "1h0m0s"),
     (1500 * MS, "1.5s")],
)  # fmt: skip
def test_go_duration(ns: int, text: str) -> None:
    assert hc.go_duration(ns) == text


# --- results -------------------------------------------------------------------------------------


def result(code: int, n: int = 0) -> dict[str, Any]:
    return {"Start": f"s{n}", "End": f"e{n}", "ExitCode": code, "Output": f"out {n}"}


def run(codes: list[int], config: dict[str, Any], *, at_ns: int = 100 * NS) -> dict[str, Any]:
    state: dict[str, Any] = hc.fresh_state("x")
    for n, code in enumerate(codes):
        state = hc.apply_result(state, result(code, n), config, started_at_ns=0, now_ns=at_ns)
    return state


def test_a_passing_check_is_healthy_at_once() -> None:
    state = run([0], {"Test": ["CMD", "true"]})
    assert (state["Status"], state["FailingStreak"]) == ("healthy", 0)


def test_failures_turn_unhealthy_after_retries() -> None:
    config = {"Test": ["CMD", "false"], "Retries": 3}
    assert run([1, 1], config)["Status"] == "starting"
    assert run([1, 1, 1], config)["Status"] == "unhealthy"
    assert run([1, 1, 1], config)["FailingStreak"] == 3
    assert run([0, 1, 1], config)["Status"] == "healthy"  # not yet Retries in a row
    assert run([1, 1, 1, 0], config)["Status"] == "healthy"
    assert run([1, 1, 1, 0], config)["FailingStreak"] == 0
    assert run([-1, -1, -1], {"Test": ["CMD", "x"]})["Status"] == "unhealthy"  # default 3


def test_failures_in_the_start_period_do_not_count_while_starting() -> None:
    config = {"Test": ["CMD", "false"], "Retries": 1, "StartPeriod": 60 * NS}
    early = run([1, 1, 1], config, at_ns=10 * NS)
    assert (early["Status"], early["FailingStreak"]) == ("starting", 0)
    assert len(early["Log"]) == 3  # still logged
    assert run([1], config, at_ns=61 * NS)["Status"] == "unhealthy"
    healthy_then_failing = run([0, 1], config, at_ns=10 * NS)  # only "starting" has grace
    assert healthy_then_failing["Status"] == "unhealthy"


def test_the_log_keeps_the_last_five_entries() -> None:
    state = run([0, 1, 0, 1, 0, 1, 0], {"Test": ["CMD", "x"], "Retries": 9})
    assert [entry["Start"] for entry in state["Log"]] == ["s2", "s3", "s4", "s5", "s6"]


def test_state_file_reset_keeps_the_log(tmp_path: Path) -> None:
    assert hc.read_state(tmp_path) is None
    hc.reset_state(tmp_path, "t1")
    assert hc.read_state(tmp_path) == hc.fresh_state("t1")
    (tmp_path / hc.STATE_FILE).write_text(
        '{"Status": "unhealthy", "FailingStreak": 4, "Log": [{"ExitCode": 1}], "started_at": "t1"}'
    )
    hc.reset_state(tmp_path, "t2")
    state = hc.read_state(tmp_path)
    assert state == {"Status": "starting", "FailingStreak": 0, "Log": [{"ExitCode": 1}],
                     "started_at": "t2"}  # fmt: skip
    assert hc.public_state(state) == {"Status": "starting", "FailingStreak": 0,
                                      "Log": [{"ExitCode": 1}]}  # fmt: skip
    (tmp_path / hc.STATE_FILE).write_text("{broken")
    assert hc.read_state(tmp_path) is None


# --- inspect and ps ----------------------------------------------------------------------------


def record(status: str = "running") -> ContainerRecord:
    return ContainerRecord(id="ab" * 32, name="web", image_id="i", image_name="img",
                           status=status, started_at="2026-11-29T03:42:06Z")  # fmt: skip


def test_inspect_shows_health_and_the_config() -> None:
    config = {"Test": ["CMD-SHELL", "true"], "Interval": NS}
    health = {"Status": "healthy", "FailingStreak": 0, "Log": [result(0)], "started_at": "x"}
    document = inspect_container(record(), spec=None, log_path="",
                                 extra={"healthcheck": config, "health": health})  # fmt: skip
    state: dict[str, Any] = document["State"]  # type: ignore[assignment]
    assert state["Health"] == {"Status": "healthy", "FailingStreak": 0, "Log": [result(0)]}
    assert document["Config"]["Healthcheck"] == config  # type: ignore[index]
    before_first = inspect_container(record(), spec=None, log_path="",
                                     extra={"healthcheck": config})  # fmt: skip
    assert before_first["State"]["Health"]["Status"] == "starting"  # type: ignore[index]
    plain = inspect_container(record(), spec=None, log_path="", extra={})
    assert "Health" not in plain["State"]  # type: ignore[operator]
    assert "Healthcheck" not in plain["Config"]  # type: ignore[operator]


def test_ps_status_shows_health() -> None:
    from cove.engine.container_logs import parse_timestamp

    now = (parse_timestamp("2026-11-29T03:42:06Z") or 0) + 5 * NS
    assert status_text(record(), now_ns=now, health="healthy") == "Up 5 seconds (healthy)"
    assert status_text(record(), now_ns=now, health="unhealthy") == "Up 5 seconds (unhealthy)"
    assert status_text(record(), now_ns=now, health="starting") == (
        "Up 5 seconds (health: starting)")  # fmt: skip
    assert status_text(record(), now_ns=now) == "Up 5 seconds"
