"""cove.engine.restart_policy (Docker's rules for restarts and their back-off), the records
side of cove.engine.container_autorestart (stop by hand, cancel, the waiter's checks) on a
real SQLite store, and how a restarting container shows in inspect and ps."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cove.engine import container_autorestart as autorestart
from cove.engine.container_inspect import inspect_container
from cove.engine.container_logs import parse_timestamp
from cove.engine.container_status import status_text
from cove.engine.monitor import monitor_alive, process_start_time
from cove.engine.restart_policy import (
    BACKOFF_FIRST_MS,
    BACKOFF_MAX_MS,
    Decision,
    check_restart_policy,
    decide,
    next_backoff,
    parse_restart_policy,
    starts_at_boot,
)
from cove.engine.state import ContainerRecord, ContainerStore, new_id
from cove.errors import InvalidArgument

NS = 1_000_000_000
ANY_POLICY = {"Name": "always", "MaximumRetryCount": 0}


# --- --restart ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "count"),
    [
        ("no", "no", 0),
        ("", "no", 0),
        ("always", "always", 0),
        ("unless-stopped", "unless-stopped", 0),
        ("on-failure", "on-failure", 0),
        ("on-failure:5", "on-failure", 5),
        ("on-failure:0", "on-failure", 0),
    ],
)
def test_parse_restart_policy(text: str, name: str, count: int) -> None:
    assert parse_restart_policy(text) == {"Name": name, "MaximumRetryCount": count}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("sometimes", "want no, always, unless-stopped or on-failure"),
        ("always:3", "on-failure only"),
        ("no:1", "on-failure only"),
        ("on-failure:x", "a number >= 0"),
        ("on-failure:-1", "a number >= 0"),
        ("On-Failure", "want no, always"),
    ],
)
def test_bad_restart_policies_name_the_flag(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_restart_policy(text)
    assert f"invalid value '{text}' for flag --restart" in str(caught.value)
    assert words in str(caught.value)


def test_check_restart_policy_for_the_api() -> None:
    assert check_restart_policy(None, auto_remove=True) == {"Name": "no", "MaximumRetryCount": 0}
    assert check_restart_policy({"Name": ""}, auto_remove=True)["Name"] == "no"
    policy = {"Name": "on-failure", "MaximumRetryCount": 2}
    assert check_restart_policy(policy, auto_remove=False) == policy
    with pytest.raises(InvalidArgument, match="Conflicting options: --restart and --rm"):
        check_restart_policy({"Name": "always"}, auto_remove=True)
    with pytest.raises(InvalidArgument, match="invalid restart policy 'never'"):
        check_restart_policy({"Name": "never"}, auto_remove=False)
    with pytest.raises(InvalidArgument, match="maximum retry count"):
        check_restart_policy({"Name": "on-failure", "MaximumRetryCount": -2}, auto_remove=False)
    with pytest.raises(InvalidArgument, match="on-failure only"):
        check_restart_policy({"Name": "always", "MaximumRetryCount": 2}, auto_remove=False)


# --- the decision ------------------------------------------------------------------------------


def run_decide(policy: str, *, exit_code: int = 1, count: int = 0, manual: bool = False,
               ran_ns: int = NS, backoff_ms: int = 0) -> Decision:  # fmt: skip
    return decide(parse_restart_policy(policy), exit_code=exit_code, restart_count=count,
                  manually_stopped=manual, ran_ns=ran_ns, backoff_ms=backoff_ms)  # fmt: skip


def test_no_never_restarts() -> None:
    assert not run_decide("no").restart
    assert not decide(None, exit_code=1, restart_count=0, manually_stopped=False, ran_ns=0,
                      backoff_ms=0).restart  # fmt: skip


@pytest.mark.parametrize("policy", ["always", "unless-stopped"])
def test_always_and_unless_stopped_restart_after_any_exit(policy: str) -> None:
    assert run_decide(policy, exit_code=0).restart
    assert run_decide(policy, exit_code=137, count=1000).restart


def test_on_failure_restarts_after_failures_up_to_its_count() -> None:
    assert not run_decide("on-failure", exit_code=0).restart
    assert run_decide("on-failure", exit_code=1, count=1000).restart  # 0: no limit
    assert run_decide("on-failure:2", exit_code=3, count=0).restart
    assert run_decide("on-failure:2", exit_code=3, count=1).restart
    assert not run_decide("on-failure:2", exit_code=3, count=2).restart


@pytest.mark.parametrize("policy", ["always", "unless-stopped", "on-failure"])
def test_nothing_restarts_after_a_stop_by_hand(policy: str) -> None:
    assert not run_decide(policy, exit_code=137, manual=True).restart


def test_backoff_doubles_from_100ms_up_to_a_minute() -> None:
    delays = []
    backoff = 0
    for _ in range(14):
        backoff = next_backoff(backoff, ran_ns=NS)
        delays.append(backoff)
    assert delays[:6] == [100, 200, 400, 800, 1600, 3200]
    assert delays[-1] == BACKOFF_MAX_MS and max(delays) == BACKOFF_MAX_MS
    assert delays == sorted(delays)


def test_backoff_starts_over_after_a_run_of_ten_seconds() -> None:
    assert next_backoff(6400, ran_ns=10 * NS - 1) == 12800
    assert next_backoff(6400, ran_ns=10 * NS) == BACKOFF_FIRST_MS
    assert run_decide("always", backoff_ms=800, ran_ns=2 * NS).delay_ms == 1600
    assert run_decide("always", backoff_ms=800, ran_ns=60 * NS).delay_ms == 100


# --- at boot -----------------------------------------------------------------------------------


def boot(policy: str, *, exit_code: int = 0, count: int = 0, manual: bool = False,
         started: bool = True) -> bool:  # fmt: skip
    return starts_at_boot(parse_restart_policy(policy), exit_code=exit_code,
                          restart_count=count, manually_stopped=manual,
                          ever_started=started)  # fmt: skip


def test_boot_starts_always_even_after_a_stop_by_hand() -> None:
    assert boot("always") and boot("always", manual=True)
    assert not boot("always", started=False)  # created, never run


def test_boot_starts_unless_stopped_unless_stopped_by_hand() -> None:
    assert boot("unless-stopped", exit_code=255)
    assert not boot("unless-stopped", manual=True)


def test_boot_starts_on_failure_after_a_failure_within_its_count() -> None:
    assert boot("on-failure", exit_code=255)
    assert not boot("on-failure", exit_code=0)
    assert not boot("on-failure:2", exit_code=1, count=2)
    assert not boot("on-failure", exit_code=143, manual=True)
    assert not boot("no", exit_code=255)


# --- records: stop by hand, cancel, the waiter's checks --------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> ContainerStore:
    return ContainerStore(tmp_path / "engine")


def add(store: ContainerStore, **fields: Any) -> ContainerRecord:
    policy = {"Name": "always", "MaximumRetryCount": 0}
    record = store.add(ContainerRecord(id=new_id(), name="", image_id="i", image_name="img",
                                       settings={"restart_policy": policy}))  # fmt: skip
    return store.update_state(record.id, **fields) if fields else record


def test_decision_for_a_record_uses_its_count_backoff_and_run_time(store: ContainerStore) -> None:
    record = add(store, started_at="2026-11-29T03:00:00Z", restart_count=4,
                 settings={"restart_policy": {"Name": "on-failure", "MaximumRetryCount": 5},
                           autorestart.BACKOFF: 400})  # fmt: skip
    short = autorestart.decision_for(record, 1, "2026-11-29T03:00:02Z")
    assert short == Decision(True, 800)
    long = autorestart.decision_for(record, 1, "2026-11-29T03:00:12Z")
    assert long == Decision(True, 100)
    assert not autorestart.decision_for(record, 0, "2026-11-29T03:00:02Z").restart


def test_mark_stopped_by_hand_sets_the_flag_once(store: ContainerStore) -> None:
    record = add(store, status="running")
    marked = autorestart.mark_stopped_by_hand(store, record.id)
    assert marked.status == "running" and marked.settings[autorestart.MANUALLY_STOPPED] is True
    assert autorestart.started_by_hand(marked.settings) == {"restart_policy": ANY_POLICY}


def test_started_by_hand_forgets_the_stop_and_the_backoff() -> None:
    settings = {"restart_policy": ANY_POLICY, autorestart.MANUALLY_STOPPED: True,
                autorestart.BACKOFF: 3200, "stop_signal": "SIGTERM"}  # fmt: skip
    assert autorestart.started_by_hand(settings) == {"restart_policy": ANY_POLICY,
                                                     "stop_signal": "SIGTERM"}  # fmt: skip


def fake_waiter() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"], start_new_session=True)


def test_a_stop_cancels_a_pending_restart_and_ends_its_waiter(store: ContainerStore) -> None:
    waiter = fake_waiter()
    try:
        record = add(store, status="restarting", exit_code=3, monitor_pid=waiter.pid,
                     monitor_start=process_start_time(waiter.pid))  # fmt: skip
        stopped = autorestart.mark_stopped_by_hand(store, record.id)
        assert (stopped.status, stopped.exit_code, stopped.monitor_pid) == ("exited", 3, 0)
        assert stopped.settings[autorestart.MANUALLY_STOPPED] is True
        assert waiter.wait(timeout=10) == -signal.SIGKILL
    finally:
        waiter.kill()
        waiter.wait()


def test_cancel_never_kills_a_recycled_pid(store: ContainerStore) -> None:
    other = fake_waiter()
    try:
        record = add(store, status="restarting", monitor_pid=other.pid, monitor_start=1)
        with store.lock(record.id):
            autorestart.cancel(store, record)
        assert other.poll() is None  # not the recorded process (another start time)
    finally:
        other.kill()
        other.wait()


def test_a_waiter_that_is_not_the_recorded_one_does_nothing(
    store: ContainerStore, tmp_path: Path
) -> None:
    record = add(store, status="restarting", monitor_pid=os.getpid() + 1, monitor_start=1)
    autorestart.wait_and_restart(store, str(tmp_path / "engine"), record.id, 0)
    assert store.get(record.id).status == "restarting"  # left to its own waiter
    stopped = add(store, status="exited", monitor_pid=os.getpid())
    autorestart.wait_and_restart(store, str(tmp_path / "engine"), stopped.id, 0)
    assert store.get(stopped.id).status == "exited"


def test_a_waiter_of_a_removed_container_leaves_no_folder(
    store: ContainerStore, tmp_path: Path
) -> None:
    record = add(store, status="restarting", monitor_pid=os.getpid())
    store.remove(record.id)
    autorestart.wait_and_restart(store, str(tmp_path / "engine"), record.id, 0)
    assert not store.container_dir(record.id).exists()


def test_needs_cleanup_of_a_restarting_record_follows_its_waiter(store: ContainerStore) -> None:
    from cove.engine.container_start import needs_cleanup

    waiter = fake_waiter()
    try:
        start = process_start_time(waiter.pid)
        record = add(store, status="restarting", monitor_pid=waiter.pid, monitor_start=start)
        assert monitor_alive(waiter.pid, start) and not needs_cleanup(store, record)
    finally:
        waiter.kill()
        waiter.wait()
    assert needs_cleanup(store, record)


# --- how it shows ------------------------------------------------------------------------------


def test_a_restarting_container_in_inspect_and_ps(store: ContainerStore) -> None:
    record = add(store, status="restarting", exit_code=3, restart_count=2, pid=0,
                 started_at="2026-11-29T03:00:00Z",
                 finished_at="2026-11-29T03:00:01Z")  # fmt: skip
    document = inspect_container(record, spec=None, log_path="", extra=dict(record.settings))
    state: dict[str, Any] = document["State"]  # type: ignore[assignment]
    assert (state["Status"], state["Running"], state["Restarting"], state["Pid"]) == (
        "restarting", True, True, 0)  # fmt: skip
    assert document["RestartCount"] == 2
    host: dict[str, Any] = document["HostConfig"]  # type: ignore[assignment]
    assert host["RestartPolicy"] == {"Name": "always", "MaximumRetryCount": 0}
    finished_ns = parse_timestamp(record.finished_at) or 0
    assert status_text(record, now_ns=finished_ns + 5 * NS) == "Restarting (3) 5 seconds ago"
    assert record.running  # listed by `ps` without -a, as Docker does
    assert [r.id for r in store.list(filters={"status": ["restarting"]})] == [record.id]
