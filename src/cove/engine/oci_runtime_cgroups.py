"""A container's cgroup figures read from cgroupfs, in the shape of runc's `events --stats`
data, for runtimes without an `events` verb (see `cove.engine.oci_runtime`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cove.engine.oci_runtime_traits import cgroup_mounts

# --- cgroup figures for runtimes without `events` ------------------------------------------


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return 0
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _read_keyed(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def cgroup_stats(
    pid: int, mounts_file: str | os.PathLike[str] = "/proc/self/mounts"
) -> dict[str, Any]:
    """The cpu, memory and pids figures of `pid`'s cgroups, in the shape of runc's
    `events --stats` data (a subset: cpu.usage, memory.usage/cache/raw, pids)."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return {}
    v1: dict[str, Path] = {}
    v2: Path | None = None
    mounts = cgroup_mounts(mounts_file)
    for line in lines:
        hierarchy, controllers, rel = line.split(":", 2)
        rel = rel.lstrip("/")
        if hierarchy == "0" and controllers == "":
            for mnt, fstype, _ in mounts:
                if fstype == "cgroup2":
                    path = Path(mnt) / rel
                    if (path / "cgroup.controllers").is_file() and (
                        path / "cgroup.controllers"
                    ).read_text().strip():
                        v2 = path
            continue
        for ctrl in controllers.split(","):
            for mnt, fstype, opts in mounts:
                if fstype == "cgroup" and ctrl in opts.split(","):
                    v1[ctrl] = Path(mnt) / rel
    data: dict[str, Any] = {}
    if v1:
        if "cpuacct" in v1:
            total = _read_int(v1["cpuacct"] / "cpuacct.usage") or 0
            try:
                percpu = [
                    int(x) for x in (v1["cpuacct"] / "cpuacct.usage_percpu").read_text().split()
                ]
            except (OSError, ValueError):
                percpu = []
            data["cpu"] = {"usage": {"total": total, "percpu": percpu}}
            ticks = _read_keyed(v1["cpuacct"] / "cpuacct.stat")  # USER_HZ ticks
            tick_ns = 1_000_000_000 // (os.sysconf("SC_CLK_TCK") or 100)
            data["cpu"]["usage"]["user"] = ticks.get("user", 0) * tick_ns
            data["cpu"]["usage"]["kernel"] = ticks.get("system", 0) * tick_ns
        if "cpu" in v1:
            throttled = _read_keyed(v1["cpu"] / "cpu.stat")
            data.setdefault("cpu", {"usage": {"total": 0, "percpu": []}})["throttling"] = {
                "periods": throttled.get("nr_periods", 0),
                "throttledPeriods": throttled.get("nr_throttled", 0),
                "throttledTime": throttled.get("throttled_time", 0),
            }
        if "memory" in v1:
            mem = v1["memory"]
            raw = _read_keyed(mem / "memory.stat")
            data["memory"] = {
                "cache": raw.get("total_cache", raw.get("cache", 0)),
                "usage": {
                    "usage": _read_int(mem / "memory.usage_in_bytes") or 0,
                    "limit": _read_int(mem / "memory.limit_in_bytes") or 0,
                    "max": _read_int(mem / "memory.max_usage_in_bytes") or 0,
                    "failcnt": _read_int(mem / "memory.failcnt") or 0,
                },
                "raw": raw,
            }
        if "pids" in v1:
            data["pids"] = {
                "current": _read_int(v1["pids"] / "pids.current") or 0,
                "limit": _read_int(v1["pids"] / "pids.max") or 0,
            }
        if "blkio" in v1:
            data["blkio"] = {
                key: parse_blkio_v1(_read_text(v1["blkio"] / f"{base}_recursive")
                                    or _read_text(v1["blkio"] / base))
                for key, base in (("ioServiceBytesRecursive", "blkio.throttle.io_service_bytes"),
                                  ("ioServicedRecursive", "blkio.throttle.io_serviced"))
            }  # fmt: skip
    elif v2 is not None:
        cpu = _read_keyed(v2 / "cpu.stat")
        data["cpu"] = {
            "usage": {"total": cpu.get("usage_usec", 0) * 1000, "percpu": [],
                      "user": cpu.get("user_usec", 0) * 1000,
                      "kernel": cpu.get("system_usec", 0) * 1000},
            "throttling": {"periods": cpu.get("nr_periods", 0),
                           "throttledPeriods": cpu.get("nr_throttled", 0),
                           "throttledTime": cpu.get("throttled_usec", 0) * 1000},
        }  # fmt: skip
        raw = _read_keyed(v2 / "memory.stat")
        data["memory"] = {
            "cache": raw.get("file", 0),
            "usage": {
                "usage": _read_int(v2 / "memory.current") or 0,
                "limit": _read_int(v2 / "memory.max") or 0,
                "max": _read_int(v2 / "memory.peak") or 0,
                "failcnt": _read_keyed(v2 / "memory.events").get("max", 0),
            },
            "raw": raw,
        }
        data["pids"] = {
            "current": _read_int(v2 / "pids.current") or 0,
            "limit": _read_int(v2 / "pids.max") or 0,
        }
        io_stat = _read_text(v2 / "io.stat")
        data["blkio"] = {
            "ioServiceBytesRecursive": parse_io_stat(io_stat),
            "ioServicedRecursive": parse_io_stat(io_stat, ("rios", "wios")),
        }
    return data


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def parse_blkio_v1(text: str) -> list[dict[str, Any]]:
    """blkio.throttle.io_service_bytes ("8:0 Read 4096" lines) as runc's
    ioServiceBytesRecursive entries (the "Total" line of the file is left out)."""
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0] or not parts[2].isdigit():
            continue
        major, _, minor = parts[0].partition(":")
        if major.isdigit() and minor.isdigit():
            entries.append({"major": int(major), "minor": int(minor), "op": parts[1],
                            "value": int(parts[2])})  # fmt: skip
    return entries


def parse_io_stat(text: str, keys: tuple[str, str] = ("rbytes", "wbytes")) -> list[dict[str, Any]]:
    """cgroup v2 io.stat ("8:0 rbytes=4096 wbytes=0 rios=1 wios=0 ...") as runc's
    ioServiceBytesRecursive entries (or, with keys ("rios", "wios"), ioServicedRecursive),
    op "Read" and "Write"."""
    entries: list[dict[str, Any]] = []
    for line in text.splitlines():
        parts = line.split()
        if not parts or ":" not in parts[0]:
            continue
        major, _, minor = parts[0].partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        for key, op in zip(keys, ("Read", "Write"), strict=True):
            if fields.get(key, "").isdigit():
                entries.append({"major": int(major), "minor": int(minor), "op": op,
                                "value": int(fields[key])})  # fmt: skip
    return entries


def oom_kill_count(
    cgroups_path: str, mounts_file: str | os.PathLike[str] = "/proc/self/mounts"
) -> int:
    """How many processes the kernel's OOM killer took in the cgroup `cgroups_path` (as in
    a spec's linux.cgroupsPath): the memory controller's oom_kill counter, v1 or v2."""
    rel = cgroups_path.strip("/")
    mounts = cgroup_mounts(mounts_file)
    for mnt, fstype, opts in mounts:
        if fstype == "cgroup" and "memory" in opts.split(","):
            return _read_keyed(Path(mnt) / rel / "memory.oom_control").get("oom_kill", 0)
    for mnt, fstype, _ in mounts:
        if fstype == "cgroup2":
            events = _read_keyed(Path(mnt) / rel / "memory.events")
            if events:
                return events.get("oom_kill", 0)
    return 0
