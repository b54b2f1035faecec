"""cpu (v1): CFS shares, quota, period and burst, real-time bandwidth, idle; throttling.

Spec field             kernel file (scheduler/sched-bwc.rst, sched-rt-group.rst)
cpu.shares             cpu.shares            (the kernel clamps to 2..262144: checked)
cpu.period             cpu.cfs_period_us     (written before the quota)
cpu.quota              cpu.cfs_quota_us      (-1 = unlimited)
cpu.burst              cpu.cfs_burst_us      (Linux 5.14 and later)
cpu.realtimePeriod     cpu.rt_period_us      (only with CONFIG_RT_GROUP_SCHED)
cpu.realtimeRuntime    cpu.rt_runtime_us
cpu.idle               cpu.idle              (Linux 5.15 and later)

A value of 0 means "not set" for shares, quota, period and the real-time pair, as runc
reads them. A field whose file this kernel lacks is an error only when it asks for
something (burst or idle 0 is what such a kernel does anyway).

The real-time runtime must be in place before a real-time task joins the cgroup, so the
manager applies this controller before it moves the container's process in.
"""

from __future__ import annotations

from cove.errors import CgroupError
from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

FIELD = "linux.resources.cpu"


class CpuController:
    name = "cpu"

    def apply(self, path: str, resources: LinuxResources) -> None:
        cpu = resources.cpu
        if cpu is None:
            return
        if cpu.shares:
            _set_shares(path, cpu.shares)
        bandwidth: list[tuple[str, object, str]] = []
        if cpu.period:
            bandwidth.append(("cpu.cfs_period_us", cpu.period, f"{FIELD}.period"))
        if cpu.quota:
            bandwidth.append(("cpu.cfs_quota_us", cpu.quota, f"{FIELD}.quota"))
        if cpu.burst is not None and _optional(path, "cpu.cfs_burst_us", cpu.burst, "burst"):
            bandwidth.append(("cpu.cfs_burst_us", cpu.burst, f"{FIELD}.burst"))
        _files.write_settling(path, bandwidth)
        realtime: list[tuple[str, object, str]] = []
        if cpu.realtime_period:
            _require(path, "cpu.rt_period_us", "realtimePeriod")
            realtime.append(("cpu.rt_period_us", cpu.realtime_period, f"{FIELD}.realtimePeriod"))
        if cpu.realtime_runtime:
            _require(path, "cpu.rt_runtime_us", "realtimeRuntime")
            realtime.append(("cpu.rt_runtime_us", cpu.realtime_runtime, f"{FIELD}.realtimeRuntime"))
        _files.write_settling(path, realtime)
        if cpu.idle is not None and _optional(path, "cpu.idle", cpu.idle, "idle"):
            _files.write(path, "cpu.idle", cpu.idle, f"{FIELD}.idle")

    def stats(self, path: str, data: dict[str, Any]) -> None:
        stat = _files.read_keyed(path, "cpu.stat")
        data.setdefault("cpu", {})["throttling"] = {
            "periods": stat.get("nr_periods", 0),
            "throttledPeriods": stat.get("nr_throttled", 0),
            "throttledTime": stat.get("throttled_time", 0),
        }


CONTROLLER = CpuController()


def _set_shares(path: str, shares: int) -> None:
    _files.write(path, "cpu.shares", shares, f"{FIELD}.shares")
    actual = _files.read_int(path, "cpu.shares", shares)
    if actual != shares:
        bound = "maximum" if shares > actual else "minimum"
        raise CgroupError(
            f"{FIELD}.shares: cannot set {shares} in {path}: the {bound} this kernel allows "
            f"is {actual}"
        )


def _require(path: str, name: str, key: str) -> None:
    if not _files.exists(path, name):
        raise _files.unsupported(f"{FIELD}.{key}", name, path)


def _optional(path: str, name: str, value: int, key: str) -> bool:
    """Whether to write `name`: absent is fine for 0 (the kernel's behaviour without it)."""
    if _files.exists(path, name):
        return True
    if value:
        raise _files.unsupported(f"{FIELD}.{key}", name, path)
    return False
