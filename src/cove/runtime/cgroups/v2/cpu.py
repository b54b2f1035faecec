"""The cpu controller on cgroup v2: cpu.weight, cpu.max, cpu.max.burst, cpu.idle.

cpus and mems belong to the cpuset controller (cove.runtime.cgroups.v2.cpuset).
"""

from __future__ import annotations

from cove.errors import CgroupError
from cove.runtime.cgroups.v2 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import CPU, LinuxResources

_FIELD = "linux.resources.cpu"


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000), the OCI/runc linear map."""
    shares = min(max(shares, 2), 262144)
    return 1 + ((shares - 2) * 9999) // 262142


def _max_text(path: str, cpu: CPU) -> str | None:
    """cpu.max's new content ("QUOTA [PERIOD]"), or None when neither is set."""
    if cpu.quota is None and cpu.period is None:
        return None
    if cpu.quota is not None:
        quota = "max" if cpu.quota < 0 else str(cpu.quota)
    else:
        # Only the period changes: keep the quota the cgroup has now.
        current = (_files.read(path, "cpu.max") or "max").split()
        quota = current[0] if current else "max"
    # Without a period the kernel keeps the current one (100000 on a new cgroup).
    return quota if cpu.period is None else f"{quota} {cpu.period}"


def _apply(path: str, cpu: CPU) -> None:
    # cgroup v2 has no real-time group scheduling: refuse a budget we cannot give. A zero
    # runtime (no real-time time at all) is what v2 gives anyway, so it is accepted.
    for key, value in (("realtimeRuntime", cpu.realtime_runtime),
                       ("realtimePeriod", cpu.realtime_period)):  # fmt: skip
        if value:
            raise CgroupError(
                f"{_FIELD}.{key}: cgroup v2 has no real-time cpu limits (got {value})"
            )
    if cpu.shares:  # 0 means unset, as in runc
        _files.write(path, "cpu.weight", str(shares_to_weight(cpu.shares)), f"{_FIELD}.shares")
    text = _max_text(path, cpu)
    if text is not None:
        field = f"{_FIELD}.quota" if cpu.quota is not None else f"{_FIELD}.period"
        _files.write(path, "cpu.max", text, field)
    if cpu.burst is not None:
        _files.write(path, "cpu.max.burst", str(cpu.burst), f"{_FIELD}.burst")
    if cpu.idle is not None:
        _files.write(path, "cpu.idle", str(cpu.idle), f"{_FIELD}.idle")


class _CPUController:
    name = "cpu"

    def apply(self, path: str, resources: LinuxResources) -> None:
        if resources.cpu is not None:
            _apply(path, resources.cpu)

    def stats(self, path: str, data: dict[str, Any]) -> None:
        stat = _files.read_flat_keyed(path, "cpu.stat")
        if stat is None:
            return
        # cpu.stat is in microseconds; runc reports nanoseconds.
        data["cpu"] = {
            "usage": {
                "total": stat.get("usage_usec", 0) * 1000,
                "kernel": stat.get("system_usec", 0) * 1000,
                "user": stat.get("user_usec", 0) * 1000,
            },
            "throttling": {
                "periods": stat.get("nr_periods", 0),
                "throttledPeriods": stat.get("nr_throttled", 0),
                "throttledTime": stat.get("throttled_usec", 0) * 1000,
            },
        }


CONTROLLER = _CPUController()
