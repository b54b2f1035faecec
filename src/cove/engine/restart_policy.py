"""Restart policies (`--restart`): their syntax, and Docker's rules for whether an exit
restarts a container and after how long. Pure functions; the flow that applies them
(records, the waiting, the new start) is `cove.engine.container_autorestart`.

Docker's rules, as its restart manager applies them:

- `no` never restarts; `always` and `unless-stopped` restart after any exit; `on-failure[:N]`
  after a non-zero exit only, at most N times (0: no limit), counted by RestartCount;
- never after a stop by hand (`stop`, `kill` with SIGKILL or the stop signal, `rm -f`):
  Docker's "HasBeenManuallyStopped"; a start by hand clears it;
- the back-off before a restart doubles from 100 ms on each consecutive restart, up to one
  minute, and starts again from 100 ms once the container ran for 10 s or more;
- when the host (Docker: the daemon) starts, `always` containers start whatever happened
  before, `unless-stopped` ones unless they were stopped by hand, `on-failure` ones when
  their last exit was a failure within the limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cove.errors import InvalidArgument

NO, ALWAYS, UNLESS_STOPPED, ON_FAILURE = "no", "always", "unless-stopped", "on-failure"
NAMES = (NO, ALWAYS, UNLESS_STOPPED, ON_FAILURE)
BACKOFF_FIRST_MS = 100
BACKOFF_MAX_MS = 60_000
BACKOFF_RESET_NS = 10 * 1_000_000_000  # a run this long starts the back-off over

_WANT = "want no, always, unless-stopped or on-failure[:max-retries]"


def parse_restart_policy(text: str) -> dict[str, Any]:
    """`--restart` ("no", "always", "unless-stopped", "on-failure", "on-failure:3") as the
    API's RestartPolicy object {Name, MaximumRetryCount}."""
    name, colon, count = text.strip().partition(":")
    if name == "":
        name = NO  # docker: an empty policy is "no"
    if name not in NAMES:
        raise InvalidArgument(f"invalid value '{text}' for flag --restart: {_WANT}")
    retries = 0
    if colon:
        if name != ON_FAILURE:
            raise InvalidArgument(
                f"invalid value '{text}' for flag --restart: a maximum retry count goes with "
                "on-failure only"
            )
        if not count.isdigit():
            raise InvalidArgument(
                f"invalid value '{text}' for flag --restart: the maximum retry count must be "
                "a number >= 0"
            )
        retries = int(count)
    return {"Name": name, "MaximumRetryCount": retries}


def check_restart_policy(policy: Mapping[str, Any] | None, *, auto_remove: bool) -> dict[str, Any]:
    """A RestartPolicy object as the API receives it, checked and normalised ("" -> "no")."""
    if not policy:
        return {"Name": NO, "MaximumRetryCount": 0}
    name = str(policy.get("Name") or NO)
    if name not in NAMES:
        raise InvalidArgument(f"invalid restart policy '{name}': {_WANT}")
    count = policy.get("MaximumRetryCount") or 0
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidArgument(
            f"invalid restart policy: the maximum retry count must be a number >= 0, not {count!r}"
        )
    if count and name != ON_FAILURE:
        raise InvalidArgument(
            f"invalid restart policy: a maximum retry count goes with on-failure only, not {name}"
        )
    if auto_remove and name != NO:
        raise InvalidArgument("Conflicting options: --restart and --rm")
    return {"Name": name, "MaximumRetryCount": count}


def policy_name(policy: Mapping[str, Any] | None) -> str:
    name = str((policy or {}).get("Name") or NO)
    return name if name in NAMES else NO


def _max_retries(policy: Mapping[str, Any] | None) -> int:
    count = (policy or {}).get("MaximumRetryCount") or 0
    return count if isinstance(count, int) and count > 0 else 0


def next_backoff(previous_ms: int, ran_ns: int) -> int:
    """Docker's back-off: 100 ms, then double the previous one up to a minute; a run of 10 s
    or more starts it over."""
    if ran_ns >= BACKOFF_RESET_NS or previous_ms <= 0:
        return BACKOFF_FIRST_MS
    return min(previous_ms * 2, BACKOFF_MAX_MS)


@dataclass(frozen=True)
class Decision:
    restart: bool
    delay_ms: int  # the back-off before the restart (and the state the next one doubles)


def decide(
    policy: Mapping[str, Any] | None,
    *,
    exit_code: int,
    restart_count: int,
    manually_stopped: bool,
    ran_ns: int,
    backoff_ms: int,
) -> Decision:
    """Whether a container that exited by itself (with `exit_code`, after running `ran_ns`)
    restarts, and after how long. `restart_count` restarts were done before; `backoff_ms` is
    the back-off of the last one (0: none)."""
    delay = next_backoff(backoff_ms, ran_ns)
    name = policy_name(policy)
    if manually_stopped or name == NO:
        return Decision(False, delay)
    if name in (ALWAYS, UNLESS_STOPPED):
        return Decision(True, delay)
    limit = _max_retries(policy)
    within = limit == 0 or restart_count < limit
    return Decision(exit_code != 0 and within, delay)


def starts_at_boot(
    policy: Mapping[str, Any] | None,
    *,
    exit_code: int,
    restart_count: int,
    manually_stopped: bool,
    ever_started: bool,
) -> bool:
    """Whether `cove system boot` starts a stopped container (see the module docstring). A
    container that never ran (created only) stays as it is."""
    if not ever_started:
        return False
    name = policy_name(policy)
    if name == ALWAYS:
        return True
    if name == UNLESS_STOPPED:
        return not manually_stopped
    if name == ON_FAILURE:
        limit = _max_retries(policy)
        within = limit == 0 or restart_count < limit
        return not manually_stopped and exit_code != 0 and within
    return False
