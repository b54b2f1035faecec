"""`cove stats`: a container's resource figures as docker computes them.

A `Sample` is one reading: the container's cgroup (`cgroup_stats`, runc's `events --stats`
shape: cpu, memory, pids, blkio), the host's CPU time from /proc/stat and the network
counters of the container's network namespace (/proc/<init pid>/net/dev). Figures come
from two samples, as docker's:

- CPU %: (container CPU time delta / host CPU time delta) x online CPUs x 100.
- memory: usage without the inactive page cache (v1: usage - total_inactive_file, v2:
  memory.current - inactive_file); the limit is the cgroup's, or the host's memory when
  the cgroup has none; MEM % = usage / limit.
- NET I/O: bytes received / sent on every interface but lo (with --network none: 0B / 0B).
- BLOCK I/O: bytes read / written (blkio.throttle.io_service_bytes, v2 io.stat).
- PIDS: pids.current.

Everything but `read_sample` is a pure function of readings (unit-tested without cgroups).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

NS = 1_000_000_000
_NO_LIMIT = 1 << 62  # v1 "unlimited" is 2^63 - page size: anything this big is no limit


@dataclass(frozen=True)
class Sample:
    cpu_total: int = 0  # the container's CPU time, ns
    system_cpu: int = 0  # the host's CPU time (all CPUs), ns
    online_cpus: int = 1
    memory_usage: int = 0  # bytes, without inactive page cache
    memory_limit: int = 0  # bytes
    net_rx: int = 0
    net_tx: int = 0
    block_read: int = 0
    block_write: int = 0
    pids: int = 0
    taken_ns: int = 0


@dataclass(frozen=True)
class Figures:
    """What one line of `docker stats` shows, as numbers."""

    cpu_percent: float
    memory_usage: int
    memory_limit: int
    memory_percent: float
    net_rx: int
    net_tx: int
    block_read: int
    block_write: int
    pids: int


def system_cpu_ns(proc_stat: str, clock_ticks: int) -> int:
    """The host's CPU time from /proc/stat's "cpu" line (user nice system idle iowait irq
    softirq, in clock ticks), in ns, as docker's getSystemCPUUsage."""
    for line in proc_stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            ticks = sum(int(value) for value in parts[1:8])
            return ticks * NS // clock_ticks
    return 0


def cpu_percent(previous: Sample, current: Sample) -> float:
    cpu_delta = current.cpu_total - previous.cpu_total
    system_delta = current.system_cpu - previous.system_cpu
    if cpu_delta <= 0 or system_delta <= 0:
        return 0.0
    return cpu_delta / system_delta * max(current.online_cpus, 1) * 100.0


def memory_usage(memory: Mapping[str, Any]) -> int:
    """Usage minus the inactive file cache (v1 total_inactive_file, v2 inactive_file)."""
    usage = int((memory.get("usage") or {}).get("usage") or 0)
    raw = memory.get("raw") or memory.get("stats") or {}
    for key in ("total_inactive_file", "inactive_file"):
        if key in raw:
            inactive = int(raw[key])
            return usage - inactive if inactive < usage else usage
    return usage


def memory_limit(memory: Mapping[str, Any], host_memory: int) -> int:
    limit = int((memory.get("usage") or {}).get("limit") or 0)
    if limit <= 0 or limit >= _NO_LIMIT or (host_memory and limit > host_memory):
        return host_memory
    return limit


def block_io(entries: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(bytes read, bytes written) summed over devices."""
    read = write = 0
    for entry in entries:
        op = str(entry.get("op", "")).lower()
        if op == "read":
            read += int(entry.get("value") or 0)
        elif op == "write":
            write += int(entry.get("value") or 0)
    return read, write


def net_io(net_dev: str) -> tuple[int, int]:
    """(bytes received, bytes sent) of every interface but lo, from /proc/PID/net/dev."""
    rx = tx = 0
    for line in net_dev.splitlines():
        name, colon, counters = line.partition(":")
        if not colon or name.strip() in ("lo", "") or "|" in name:
            continue
        fields = counters.split()
        if len(fields) >= 9 and fields[0].isdigit() and fields[8].isdigit():
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def host_memory(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def sample_from(
    data: Mapping[str, Any],
    *,
    system_cpu: int,
    online_cpus: int,
    net_dev: str,
    host_memory_bytes: int,
    taken_ns: int = 0,
) -> Sample:
    """A sample from runc-shaped cgroup data (`cgroup_stats`, `events --stats`)."""
    cpu = data.get("cpu") or {}
    memory = data.get("memory") or {}
    usage = memory_usage(memory)
    rx, tx = net_io(net_dev)
    read, write = block_io((data.get("blkio") or {}).get("ioServiceBytesRecursive") or [])
    return Sample(
        cpu_total=int((cpu.get("usage") or {}).get("total") or 0),
        system_cpu=system_cpu, online_cpus=online_cpus,
        memory_usage=usage, memory_limit=memory_limit(memory, host_memory_bytes),
        net_rx=rx, net_tx=tx, block_read=read, block_write=write,
        pids=int((data.get("pids") or {}).get("current") or 0), taken_ns=taken_ns,
    )  # fmt: skip


def figures(previous: Sample | None, current: Sample) -> Figures:
    limit = current.memory_limit
    return Figures(
        cpu_percent=cpu_percent(previous, current) if previous is not None else 0.0,
        memory_usage=current.memory_usage, memory_limit=limit,
        memory_percent=current.memory_usage / limit * 100.0 if limit else 0.0,
        net_rx=current.net_rx, net_tx=current.net_tx,
        block_read=current.block_read, block_write=current.block_write, pids=current.pids,
    )  # fmt: skip


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def read_sample(pid: int) -> Sample:
    """A sample of the container whose init is `pid` (an empty one when it is gone)."""
    from cove.engine.oci_runtime_cgroups import cgroup_stats

    taken = time.time_ns()
    system = system_cpu_ns(_read("/proc/stat"), os.sysconf("SC_CLK_TCK"))
    online = os.sysconf("SC_NPROCESSORS_ONLN")
    if pid <= 0:
        return Sample(system_cpu=system, online_cpus=online, taken_ns=taken)
    data = cgroup_stats(pid)
    percpu = ((data.get("cpu") or {}).get("usage") or {}).get("percpu") or []
    return sample_from(
        data, system_cpu=system, online_cpus=online or len(percpu) or 1,
        net_dev=_read(f"/proc/{pid}/net/dev"),
        host_memory_bytes=host_memory(_read("/proc/meminfo")), taken_ns=taken,
    )  # fmt: skip


# --- the readings behind the API's stats document -------------------------------------------

_NET_FIELDS = ("rx_bytes", "rx_packets", "rx_errors", "rx_dropped",
               "tx_bytes", "tx_packets", "tx_errors", "tx_dropped")  # fmt: skip
# their columns in /proc/PID/net/dev (receive: bytes packets errs drop ...; transmit from 8)
_NET_COLUMNS = (0, 1, 2, 3, 8, 9, 10, 11)


def net_devices(net_dev: str) -> dict[str, dict[str, int]]:
    """Per-interface counters (but lo) from /proc/PID/net/dev, under Docker's names."""
    devices: dict[str, dict[str, int]] = {}
    for line in net_dev.splitlines():
        name, colon, counters = line.partition(":")
        name = name.strip()
        if not colon or name in ("lo", "") or "|" in name:
            continue
        fields = counters.split()
        if len(fields) < 16 or not all(f.isdigit() for f in fields[:16]):
            continue
        devices[name] = {
            key: int(fields[col]) for key, col in zip(_NET_FIELDS, _NET_COLUMNS, strict=True)
        }
    return devices


@dataclass(frozen=True)
class Reading:
    """One reading of a running container, unprocessed: its cgroup figures (runc's `events
    --stats` shape), the host's CPU time and CPU count and memory, its network counters."""

    cgroup: Mapping[str, Any]
    system_cpu: int
    online_cpus: int
    host_memory: int
    networks: Mapping[str, Mapping[str, int]]
    taken_ns: int


def read_reading(pid: int) -> Reading:
    from cove.engine.oci_runtime_cgroups import cgroup_stats

    taken = time.time_ns()
    system = system_cpu_ns(_read("/proc/stat"), os.sysconf("SC_CLK_TCK"))
    data = cgroup_stats(pid) if pid > 0 else {}
    percpu = ((data.get("cpu") or {}).get("usage") or {}).get("percpu") or []
    online = os.sysconf("SC_NPROCESSORS_ONLN") or len(percpu) or 1
    networks = net_devices(_read(f"/proc/{pid}/net/dev")) if pid > 0 else {}
    return Reading(cgroup=data, system_cpu=system, online_cpus=online,
                   host_memory=host_memory(_read("/proc/meminfo")), networks=networks,
                   taken_ns=taken)  # fmt: skip
