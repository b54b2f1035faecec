"""Container lifecycle routes: start, stop, restart, kill, pause, unpause, rename,
update, wait, delete, prune.

Translation only: the engine's ContainerService does the work, on a worker thread
(`Engine.call`). `wait` holds no thread: it follows the engine's event journal
(`containers_wait`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from cove.api.containers_target import call
from cove.api.context import Services, engine_of
from cove.api.errors import BadParameter, Conflict, NotFound, NotModified
from cove.api.query import json_body, query_bool, query_int, request_filters, until_of
from cove.api.routing import Routes
from cove.errors import CoveError, NoSuchContainer

routes = Routes()

RUNNING = ("running", "paused", "restarting")


@routes.post("/containers/{id}/start")
async def start(request: web.Request) -> web.Response:
    term = request.match_info["id"]

    def action(s: Services) -> None:
        record = s.containers.get(term)
        if record.status == "running":
            raise NotModified("container already started")
        if record.status == "paused":
            raise Conflict("cannot start a paused container, try unpause instead")
        try:
            s.containers.start(record.id)
        except CoveError as exc:
            if record.settings.get("auto_remove"):
                # Docker removes an AutoRemove container whose start failed (`docker run
                # --rm` waits for that removal before it reports the error)
                with contextlib.suppress(CoveError):
                    s.containers.remove(record.id, force=True, volumes=True)
            if _command_cannot_run(str(exc)):
                raise BadParameter(str(exc)) from None
            raise

    await call(request, action)
    return web.Response(status=204)


def _command_cannot_run(message: str) -> bool:
    """A start that failed on the container's command (not found, not executable): 400, as
    dockerd answers it (its CLI then exits 127 or 126, by these words)."""
    lowered = message.lower()
    return any(words in lowered for words in ("executable file not found",
                                              "no such file or directory",
                                              "permission denied"))  # fmt: skip


def _stop_args(request: web.Request) -> tuple[int | None, str | None]:
    given = query_int(request, "t", -2)
    timeout = None if given == -2 else given
    signal = request.query.get("signal", "").strip() or None
    return timeout, signal


@routes.post("/containers/{id}/stop")
async def stop(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    timeout, signal = _stop_args(request)

    def action(s: Services) -> None:
        record = s.containers.get(term)
        if record.status not in RUNNING:
            raise NotModified("container already stopped")
        s.containers.stop(record.id, timeout, signal)

    await call(request, action)
    return web.Response(status=204)


@routes.post("/containers/{id}/restart")
async def restart(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    timeout, signal = _stop_args(request)
    await call(request, lambda s: s.containers.restart(term, timeout, signal))
    return web.Response(status=204)


@routes.post("/containers/{id}/kill")
async def kill(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    signal = request.query.get("signal", "").strip() or "SIGKILL"
    try:
        await engine_of(request).call(lambda s: s.containers.kill(term, signal))
    except NoSuchContainer:  # dockerd's words
        raise NotFound(f"Cannot kill container: {term}: No such container: {term}") from None
    return web.Response(status=204)


@routes.post("/containers/{id}/pause")
async def pause(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    await call(request, lambda s: s.containers.pause(term))
    return web.Response(status=204)


@routes.post("/containers/{id}/unpause")
async def unpause(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    await call(request, lambda s: s.containers.unpause(term))
    return web.Response(status=204)


@routes.post("/containers/{id}/rename")
async def rename(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    new_name = request.query.get("name", "").strip()
    if not new_name:
        raise BadParameter("Neither old nor new names may be empty")
    await call(request, lambda s: s.containers.rename(term, new_name))
    return web.Response(status=204)


# UpdateConfig field -> CreateOptions field
_UPDATE_FIELDS = {
    "Memory": "memory", "MemorySwap": "memory_swap", "MemoryReservation": "memory_reservation",
    "CpuShares": "cpu_shares", "CpuQuota": "cpu_quota", "CpuPeriod": "cpu_period",
    "CpusetCpus": "cpuset_cpus", "CpusetMems": "cpuset_mems", "PidsLimit": "pids_limit",
    "BlkioWeight": "blkio_weight",
}  # fmt: skip
_UPDATE_REFUSED = ("KernelMemory", "KernelMemoryTCP", "CpuRealtimePeriod", "CpuRealtimeRuntime",
                   "BlkioWeightDevice", "BlkioDeviceReadBps", "BlkioDeviceWriteBps",
                   "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps", "Devices",
                   "DeviceCgroupRules", "DeviceRequests", "Ulimits", "OomKillDisable",
                   "MemorySwappiness", "CgroupParent")  # fmt: skip


def update_changes(body: object) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """An UpdateConfig body -> (CreateOptions changes, RestartPolicy or None). Docker's
    clients send every field: zero (or null) means "leave as it is"."""
    if not isinstance(body, Mapping):
        raise BadParameter("invalid update: want a JSON object")
    changes: dict[str, Any] = {}
    for key, option in _UPDATE_FIELDS.items():
        value = body.get(key)
        if value is None or value == 0 or value == "":
            continue
        if key in ("CpusetCpus", "CpusetMems"):
            if not isinstance(value, str):
                raise BadParameter(f"invalid {key}: want a string")
        elif isinstance(value, bool) or not isinstance(value, int):
            raise BadParameter(f"invalid {key}: want an integer")
        changes[option] = value
    nano = body.get("NanoCpus")
    if nano:
        if isinstance(nano, bool) or not isinstance(nano, int) or nano < 0:
            raise BadParameter("invalid NanoCpus: want an integer >= 0")
        changes["cpus"] = f"{nano / 1e9:.9g}"
    for key in _UPDATE_REFUSED:
        value = body.get(key)
        if value not in (None, 0, "", [], False) and not (key == "MemorySwappiness"
                                                          and value == -1):  # fmt: skip
            raise BadParameter(f"{key} cannot be updated by cove")
    policy = body.get("RestartPolicy")
    restart_policy = None
    if isinstance(policy, Mapping) and policy.get("Name"):
        restart_policy = dict(policy)
    elif policy is not None and not isinstance(policy, Mapping):
        raise BadParameter("invalid RestartPolicy: want an object")
    return changes, restart_policy


def update_resources(changes: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """linux.resources of the changed fields (specgen's checks and conversions)."""
    from cove.engine import spec_resources
    from cove.engine.create_options import CreateOptions
    from cove.engine.host_info import HostInfo

    options = CreateOptions(**changes)
    host = HostInfo.probe()
    resources: dict[str, Any] = {}
    for key, part in (("memory", spec_resources.memory(options, host, warnings)),
                      ("cpu", spec_resources.cpu(options, host, warnings)),
                      ("pids", spec_resources.pids(options)),
                      ("blockIO", spec_resources.block_io(options, host))):  # fmt: skip
        if part:
            resources[key] = part
    return resources


@routes.post("/containers/{id}/update")
async def update(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    changes, restart_policy = update_changes(await json_body(request, default={}))
    warnings: list[str] = []

    def action(s: Services) -> None:
        resources = update_resources(changes, warnings) if changes else {}
        s.containers.update(term, resources, changes, restart_policy=restart_policy)

    await call(request, action)
    return web.json_response({"Warnings": warnings})


@routes.post("/containers/{id}/wait")
async def wait(request: web.Request) -> web.StreamResponse:
    from cove.api.containers_wait import wait_response

    return await wait_response(request)


@routes.delete("/containers/{id}")
async def remove(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    if query_bool(request, "link"):
        raise BadParameter("legacy links are not supported by cove (?link)")
    force = query_bool(request, "force")
    volumes = query_bool(request, "v")

    def action(s: Services) -> None:
        if not force:
            record = s.containers.get(term)
            if record.status in RUNNING:  # dockerd's words (the engine's are its CLI's)
                what = {"paused": "Unpause and then stop"}.get(record.status, "Stop")
                raise Conflict(f"You cannot remove a {record.status} container {record.id}. "
                               f"{what} the container before attempting removal or force "
                               "remove")  # fmt: skip
        s.containers.remove(term, force=force, volumes=volumes)

    await call(request, action)
    return web.Response(status=204)


@routes.post("/containers/prune")
async def prune(request: web.Request) -> web.Response:
    from cove.engine.container_prune import check_prune_filters, prune_containers

    filters = request_filters(request)
    check_prune_filters(filters)
    until = until_of(filters)

    def action(s: Services) -> dict[str, Any]:
        deleted, reclaimed = prune_containers(s.root, filters, until)
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    return web.json_response(await engine_of(request).call(action))
