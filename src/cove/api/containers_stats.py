"""GET /containers/{id}/stats: one JSON document per second (`stream`), or one after two
samples a second apart (so that precpu_stats is there for the CPU %), or one at once
(`one-shot`). `stats_document` is Docker's shape of a reading."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cove.api.containers_target import RUNNING, find_target
from cove.api.context import engine_of
from cove.api.errors import BadParameter
from cove.api.hijack import stream_flag, until_set
from cove.api.query import query_bool
from cove.api.routing import Routes

if TYPE_CHECKING:
    from cove.engine.container_stats import Reading
    from cove.engine.state import ContainerRecord

routes = Routes()

STATS_INTERVAL = 1.0
_ZERO_TIME = "0001-01-01T00:00:00Z"
_BLKIO_KEYS = ("io_service_bytes_recursive", "io_serviced_recursive", "io_queue_recursive",
               "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
               "io_time_recursive", "sectors_recursive")  # fmt: skip


def _rfc3339(time_ns: int) -> str:
    if not time_ns:
        return _ZERO_TIME
    seconds, fraction = divmod(time_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:09d}Z"


def _zero_cpu() -> dict[str, Any]:
    return {
        "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    }


def cpu_stats(reading: Reading | None) -> dict[str, Any]:
    """Docker's cpu_stats (and precpu_stats) from one reading."""
    if reading is None:
        return _zero_cpu()
    cpu = reading.cgroup.get("cpu") or {}
    usage = cpu.get("usage") or {}
    throttling = cpu.get("throttling") or {}
    cpu_usage: dict[str, Any] = {
        "total_usage": int(usage.get("total") or 0),
        "usage_in_kernelmode": int(usage.get("kernel") or 0),
        "usage_in_usermode": int(usage.get("user") or 0),
    }
    if usage.get("percpu"):
        cpu_usage["percpu_usage"] = [int(v) for v in usage["percpu"]]
    return {
        "cpu_usage": cpu_usage,
        "system_cpu_usage": reading.system_cpu,
        "online_cpus": reading.online_cpus,
        "throttling_data": {
            "periods": int(throttling.get("periods") or 0),
            "throttled_periods": int(throttling.get("throttledPeriods") or 0),
            "throttled_time": int(throttling.get("throttledTime") or 0),
        },
    }


def memory_stats(reading: Reading) -> dict[str, Any]:
    from cove.engine.container_stats import memory_limit

    memory: Mapping[str, Any] = reading.cgroup.get("memory") or {}
    if not memory:
        return {}
    usage = memory.get("usage") or {}
    raw = {str(k): int(v) for k, v in (memory.get("raw") or {}).items()}
    stats: dict[str, Any] = {
        "usage": int(usage.get("usage") or 0),
        "stats": raw,
        "limit": memory_limit(memory, reading.host_memory),
    }
    if "total_inactive_file" in raw:  # cgroup v1 has these two; v2 does not
        stats["max_usage"] = int(usage.get("max") or 0)
        stats["failcnt"] = int(usage.get("failcnt") or 0)
    return stats


def stats_document(
    record: ContainerRecord, reading: Reading | None, previous: Reading | None
) -> dict[str, Any]:
    """Docker's stats JSON for `reading` (None: the container does not run: zeros), with
    precpu_stats from `previous`."""
    document: dict[str, Any] = {
        "name": f"/{record.name}",
        "id": record.id,
        "read": _rfc3339(reading.taken_ns if reading else 0),
        "preread": _rfc3339(previous.taken_ns if previous else 0),
        "pids_stats": {},
        "blkio_stats": dict.fromkeys(_BLKIO_KEYS),
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(reading),
        "precpu_stats": cpu_stats(previous),
        "memory_stats": memory_stats(reading) if reading else {},
    }
    if reading is None:
        return document
    pids = reading.cgroup.get("pids") or {}
    if pids:
        document["pids_stats"] = {"current": int(pids.get("current") or 0)}
        if int(pids.get("limit") or 0) > 0:
            document["pids_stats"]["limit"] = int(pids["limit"])
    blkio = reading.cgroup.get("blkio") or {}
    for ours, theirs in (("ioServiceBytesRecursive", "io_service_bytes_recursive"),
                         ("ioServicedRecursive", "io_serviced_recursive")):  # fmt: skip
        if entries := blkio.get(ours):
            document["blkio_stats"][theirs] = [
                {"major": int(e.get("major", 0)), "minor": int(e.get("minor", 0)),
                 "op": str(e.get("op", "")), "value": int(e.get("value", 0))}
                for e in entries
            ]  # fmt: skip
    if reading.networks:
        document["networks"] = {name: dict(counters) for name, counters in reading.networks.items()}
    return document


def _alive(record: ContainerRecord) -> bool:
    from cove.engine.monitor import monitor_alive

    return record.status in RUNNING and monitor_alive(record.monitor_pid, record.monitor_start)


@routes.get("/containers/{id}/stats")
async def stats(request: web.Request) -> web.StreamResponse:
    from cove.engine.container_stats import read_reading

    term = request.match_info["id"]
    stream = query_bool(request, "stream", True)
    one_shot = query_bool(request, "one-shot")
    if stream and one_shot:
        raise BadParameter("cannot have stream=true and one-shot=true")
    engine = engine_of(request)
    target = await find_target(request, term)
    record = target.record

    async def sample() -> Reading | None:
        if not _alive(record):
            return None
        return await engine.run(read_reading, record.pid)

    if not stream:
        previous = None
        if not one_shot and target.running:
            previous = await sample()
            await asyncio.sleep(STATS_INTERVAL)
        current = await sample() if target.running else None
        if current is None:
            previous = None
        return web.json_response(stats_document(record, current, previous))

    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    await response.prepare(request)
    with stream_flag(request, "stats") as flag:
        previous = None
        while True:
            current = await sample()
            document = stats_document(record, current, previous)
            await response.write(json.dumps(document).encode() + b"\n")
            if current is None or flag.is_set():
                break
            previous = current
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until_set(flag, 0.1), STATS_INTERVAL)
    await response.write_eof()
    return response
