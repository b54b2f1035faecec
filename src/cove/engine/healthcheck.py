"""Healthchecks (Docker's HEALTHCHECK): the configuration, one check, and State.Health.

Configuration: the API's Healthcheck object {Test, Interval, Timeout, Retries, StartPeriod}
(durations in nanoseconds), from the image config's "Healthcheck" with the run flags over
it (`--health-cmd`, `--health-interval`, ...; a zero field takes the image's value), stored
resolved in the record's settings at create. Test is ["NONE"] (no checks), ["CMD", args...]
or ["CMD-SHELL", "command"] (run by /bin/sh -c).

Scheduling: the container's monitor (native/cove-monitor.c, `--health-interval-ms N
--health-command ARG...`) keeps a timerfd in its poll loop and, every interval, forks and
execs `cove container healthcheck ID` unless the previous check still runs (never two at
once; it ends a running check when the container exits). So checks go on without any cove
command or server alive, and cost no process per container between checks: the monitor's
share is a timerfd and a few words of memory; each check is a short-lived `cove` process
(and the runtime's exec) that lives as long as the check.

A check (`run_check`) is an exec of the Test in the container (the container's user, env
and capabilities, as `docker exec`) with the Timeout; its result goes to State.Health, kept in
`health.json` in the container's folder (not the database: it changes every interval):
{Status starting|healthy|unhealthy, FailingStreak, Log: the last 5 {Start, End, ExitCode,
Output}}, with Docker's rules: exit 0 is healthy at once; any other result (a timeout or an
exec that fails is -1) adds to FailingStreak, except while "starting" within StartPeriod,
and Retries failures in a row make it unhealthy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cove.errors import CoveError, InvalidArgument, NoSuchContainer

NS = 1_000_000_000
MS = 1_000_000
DEFAULT_INTERVAL_NS = 30 * NS
DEFAULT_TIMEOUT_NS = 30 * NS
DEFAULT_RETRIES = 3
MIN_DURATION_NS = MS  # docker refuses a non-zero duration under 1 ms
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
STATE_FILE = "health.json"
LOCK_FILE = "health.lock"
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"

_DURATION_FIELDS = ("Interval", "Timeout", "StartPeriod")


# --- configuration -----------------------------------------------------------------------------


def parse_duration(text: str, flag: str) -> int:
    """A Go duration ("30s", "1m30s", "500ms") for `flag`, in nanoseconds (>= 0)."""
    from cove.engine.container_logs import _duration_ns

    body = text.strip()
    value = 0 if body in ("0", "+0", "-0") else _duration_ns(body) if body else None  # Go's
    if value is None:
        raise InvalidArgument(
            f"invalid value '{text}' for flag {flag}: want a duration such as 30s, 1m30s or 500ms"
        )
    if value < 0:
        raise InvalidArgument(f"invalid value '{text}' for flag {flag}: it cannot be negative")
    if 0 < value < MIN_DURATION_NS:
        raise InvalidArgument(f"invalid value '{text}' for flag {flag}: it cannot be under 1ms")
    return value


def health_options(
    *,
    cmd: str | None = None,
    interval: str | None = None,
    timeout: str | None = None,
    retries: int | None = None,
    start_period: str | None = None,
    disabled: bool = False,
) -> dict[str, Any] | None:
    """The run flags as a Healthcheck object (None: no flag given, the image decides)."""
    given = [cmd, interval, timeout, retries, start_period]
    if disabled:
        if any(value is not None for value in given):
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if all(value is None for value in given):
        return None
    config: dict[str, Any] = {}
    if cmd is not None:
        config["Test"] = ["CMD-SHELL", cmd]
    for flag, key, text in (("--health-interval", "Interval", interval),
                            ("--health-timeout", "Timeout", timeout),
                            ("--health-start-period", "StartPeriod", start_period)):  # fmt: skip
        if text is not None:
            config[key] = parse_duration(text, flag)
    if retries is not None:
        if retries < 0:
            raise InvalidArgument(
                f"invalid value '{retries}' for flag --health-retries: it cannot be negative"
            )
        config["Retries"] = retries
    return config


def check_config(config: Mapping[str, Any] | None, what: str = "Healthcheck") -> dict[str, Any]:
    """A Healthcheck object as the API (or an image config) gives it, checked."""
    if not config:
        return {}
    if not isinstance(config, Mapping):
        raise InvalidArgument(f"invalid {what}: want an object")
    checked: dict[str, Any] = {}
    test = config.get("Test")
    if test:
        if not isinstance(test, Sequence) or isinstance(test, str):
            raise InvalidArgument(f"invalid {what} Test: want a list of strings")
        words = [str(word) for word in test]
        kind = words[0]
        if kind not in ("NONE", "CMD", "CMD-SHELL"):
            raise InvalidArgument(
                f"invalid {what} Test: it starts with NONE, CMD or CMD-SHELL, not {kind!r}"
            )
        if kind != "NONE" and len(words) < 2:
            raise InvalidArgument(f"invalid {what} Test: {kind} needs a command")
        checked["Test"] = words
    for key in (*_DURATION_FIELDS, "Retries"):
        value = config.get(key) or 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"invalid {what} {key}: want a number >= 0, not {value!r}")
        if key != "Retries" and 0 < value < MIN_DURATION_NS:
            raise InvalidArgument(f"invalid {what} {key}: it cannot be under 1ms")
        if value:
            checked[key] = value
    return checked


def resolve(
    user: Mapping[str, Any] | None, image: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The container's Healthcheck: the user's over the image's, field by field (Docker's
    merge); None when there is no Test or the Test is NONE (no checks)."""
    mine = check_config(user)
    theirs = check_config(image, "image Healthcheck")
    merged = dict(theirs)
    merged.update(mine)
    test = merged.get("Test")
    if not test or test[0] == "NONE":
        return None
    return merged


def image_healthcheck(image_config: object) -> Mapping[str, Any] | None:
    """The "Healthcheck" of an image config (cove.image's ImageConfig), if it has one."""
    execution = getattr(image_config, "config", image_config)
    extra = getattr(execution, "extra", None)
    if isinstance(extra, Mapping):
        found = extra.get("Healthcheck")
        if isinstance(found, Mapping):
            return found
    return None


def monitor_schedule(config: Mapping[str, Any] | None) -> int:
    """The monitor's --health-interval-ms for a resolved config (0: no checks)."""
    if not config or not config.get("Test") or config["Test"][0] == "NONE":
        return 0
    interval = config.get("Interval") or DEFAULT_INTERVAL_NS
    return max(int(interval // MS), 1)


def probe_command(test: Sequence[str]) -> list[str]:
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]]
    return list(test[1:])


def go_duration(ns: int) -> str:
    """Go's time.Duration.String for whole milliseconds and up: 30s, 1m30s, 500ms, 1h0m0s."""
    if ns < NS:
        return f"{ns // MS}ms" if ns % MS == 0 else f"{ns / MS:g}ms"
    hours, rest = divmod(ns, 3600 * NS)
    minutes, rest = divmod(rest, 60 * NS)
    seconds = f"{rest / NS:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


# --- state -----------------------------------------------------------------------------------


def fresh_state(started_at: str) -> dict[str, Any]:
    return {"Status": STARTING, "FailingStreak": 0, "Log": [], "started_at": started_at}


def apply_result(
    state: Mapping[str, Any],
    result: Mapping[str, Any],
    config: Mapping[str, Any],
    *,
    started_at_ns: int,
    now_ns: int,
) -> dict[str, Any]:
    """State.Health after one check's `result` {Start, End, ExitCode, Output} (Docker's
    rules: see the module docstring)."""
    log = [*list(state.get("Log") or []), dict(result)][-MAX_LOG_ENTRIES:]
    status = str(state.get("Status") or STARTING)
    streak = int(state.get("FailingStreak") or 0)
    if result.get("ExitCode") == 0:
        status, streak = HEALTHY, 0
    else:
        start_period = int(config.get("StartPeriod") or 0)
        grace = status == STARTING and now_ns - started_at_ns < start_period
        if not grace:
            streak += 1
            if streak >= int(config.get("Retries") or DEFAULT_RETRIES):
                status = UNHEALTHY
    updated = dict(state)
    updated.update({"Status": status, "FailingStreak": streak, "Log": log})
    return updated


def state_path(container_dir: Path) -> Path:
    return container_dir / STATE_FILE


def read_state(container_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(state_path(container_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def public_state(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """State.Health as inspect shows it."""
    if state is None:
        return None
    return {"Status": state.get("Status") or STARTING,
            "FailingStreak": int(state.get("FailingStreak") or 0),
            "Log": list(state.get("Log") or [])}  # fmt: skip


def _write_state(container_dir: Path, state: Mapping[str, Any]) -> None:
    path = state_path(container_dir)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(container_dir: Path) -> Iterator[None]:
    fd = os.open(container_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def reset_state(container_dir: Path, started_at: str) -> None:
    """A new run starts "starting" with no failures; the log of earlier checks stays."""
    with _locked(container_dir):
        old = read_state(container_dir) or {}
        state = fresh_state(started_at)
        state["Log"] = list(old.get("Log") or [])[-MAX_LOG_ENTRIES:]
        _write_state(container_dir, state)


# --- one check ---------------------------------------------------------------------------------


def run_check(root: str, container_id: str) -> dict[str, Any] | None:
    """Run the container's check once and record it; its State.Health after, or None when
    there is nothing to check (no healthcheck, not running) or the container moved on (it
    stopped or started again) while the check ran."""
    from cove.engine.container_exec import ExecOptions, exec_process
    from cove.engine.container_logs import parse_timestamp
    from cove.engine.oci_runtime import runtime_for
    from cove.engine.state import ContainerStore, utc_now
    from cove.errors import RuntimeTimedOut

    store = ContainerStore(root)
    try:
        record = store.get(container_id)
        config = record.settings.get("healthcheck")
        if record.status != "running" or not monitor_schedule(config):
            return None
        assert isinstance(config, Mapping)
        timeout_ns = int(config.get("Timeout") or DEFAULT_TIMEOUT_NS)
        start = utc_now()
        with tempfile.TemporaryFile() as output:
            try:
                process = exec_process(record, ExecOptions(command=probe_command(config["Test"])))
                code = runtime_for(record.runtime, root).exec(
                    record.id, process, detach=False, stdio=(None, output, output),
                    timeout=timeout_ns / NS,
                )  # fmt: skip
                output.seek(0)
                text = output.read(MAX_OUTPUT).decode(errors="replace")
            except RuntimeTimedOut:
                code, text = -1, f"Health check exceeded timeout ({go_duration(timeout_ns)})"
            except (CoveError, OSError) as exc:
                code, text = -1, str(exc)
        result = {"Start": start, "End": utc_now(), "ExitCode": code, "Output": text}
        container_dir = store.container_dir(record.id)
        with _locked(container_dir):
            current = store.get(record.id)
            if current.status != "running" or current.started_at != record.started_at:
                return None
            state = read_state(container_dir) or {}
            if state.get("started_at") != record.started_at:
                state = fresh_state(record.started_at)
            started = parse_timestamp(record.started_at) or 0
            updated = apply_result(state, result, config, started_at_ns=started,
                                   now_ns=time.time_ns())  # fmt: skip
            _write_state(container_dir, updated)
        if updated.get("Status") != state.get("Status"):
            from cove.engine import events

            events.emit(root, f"health_status: {updated.get('Status')}", current)
        return public_state(updated)
    except (NoSuchContainer, FileNotFoundError):
        return None  # removed meanwhile
    finally:
        store.close()
