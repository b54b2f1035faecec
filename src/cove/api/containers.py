"""Container routes: create, list, inspect, top, changes, export, start, stop, restart,
kill, update, rename, pause, unpause, wait, delete, prune. (attach, logs, stats, resize are
`containers_streams`; exec and archive have their own modules.)

Translation only: the engine's ContainerService does the work, on a worker thread
(`Engine.call`). `wait` holds no thread: it follows the engine's event journal
(`containers_wait`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cove.api.containers_create import platform_of, translate
from cove.api.context import Services, engine_of
from cove.api.errors import BadParameter, Conflict, NotFound, NotModified
from cove.api.query import json_body, query_bool, query_int, request_filters, unix_time, until_of
from cove.api.routing import Routes
from cove.engine.state_names import NAME_PATTERN
from cove.errors import CoveError, InvalidArgument, NoSuchContainer, NoSuchImage

if TYPE_CHECKING:
    from cove.engine.state import ContainerRecord

routes = Routes()

RUNNING = ("running", "paused", "restarting")
# Docker's list filters that the engine's store does not know (handled here)
_LOCAL_FILTERS = ("network", "volume", "health", "is-task", "isolation", "publish", "expose")
_STORE_FILTERS = ("id", "name", "status", "exited", "ancestor", "label", "runtime", "before",
                  "since")  # fmt: skip


# --- request helpers -------------------------------------------------------------------------


@contextmanager
def no_such_container(term: str) -> Iterator[None]:
    """NoSuchContainer as Docker words it (clients print it)."""
    try:
        yield
    except NoSuchContainer:
        raise NotFound(f"No such container: {term}") from None


async def call(request: web.Request, action: Callable[[Services], Any]) -> Any:
    """Run `action` on a worker thread; an unknown container is Docker's 404."""
    with no_such_container(request.match_info.get("id", "")):
        return await engine_of(request).call(action)


def _familiar(image: str) -> str:
    """busybox -> busybox:latest (Docker's "No such image" names the tag)."""
    last = image.rsplit("/", 1)[-1]
    if "@" in image or ":" in last:
        return image
    return image + ":latest"


# --- create ------------------------------------------------------------------------------------


@routes.post("/containers/create")
async def create(request: web.Request) -> web.Response:
    name = request.query.get("name", "")
    wanted_os, wanted_arch = platform_of(request.query.get("platform", ""))
    if wanted_os and wanted_os != "linux":
        raise BadParameter(f"platform {request.query['platform']!r} is not supported: cove runs "
                           "linux containers")  # fmt: skip
    if name and not NAME_PATTERN.match(name):
        raise BadParameter(f"Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] "
                           "are allowed")  # fmt: skip
    body = await json_body(request)
    if body is None:
        raise BadParameter("Config cannot be empty in order to create a container")
    wanted = translate(body)
    warnings = list(wanted.warnings)

    def action(s: Services) -> str:
        if wanted_arch:
            found = s.images.inspect(wanted.image)
            if str(found.get("Architecture") or "") != wanted_arch:
                raise NotFound(
                    f"image with reference {wanted.image} was found but does not match the "
                    f"specified platform: wanted {request.query['platform']}, actual: "
                    f"{found.get('Os')}/{found.get('Architecture')}"
                )
        record = s.containers.create(wanted.image, wanted.options, wanted.settings, name=name,
                                     runtime=wanted.runtime, warn=warnings.append)  # fmt: skip
        return record.id

    try:
        container_id = await engine_of(request).call(action)
    except NoSuchImage:
        raise NotFound(f"No such image: {_familiar(wanted.image)}") from None
    except InvalidArgument as exc:
        if str(exc).startswith("no command specified"):  # specgen's words: dockerd's are these
            raise BadParameter("No command specified") from None
        raise
    return web.json_response({"Id": container_id, "Warnings": warnings}, status=201)


# --- reading -----------------------------------------------------------------------------------


def _spec(record: ContainerRecord) -> dict[str, Any] | None:
    from pathlib import Path

    if not record.bundle:
        return None
    try:
        loaded = json.loads((Path(record.bundle) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _health(s: Services, record: ContainerRecord) -> str:
    if record.status != "running" or not record.settings.get("healthcheck"):
        return ""
    from cove.engine.healthcheck import read_state

    state = read_state(s.containers.store.container_dir(record.id)) or {}
    return str(state.get("Status") or "starting")


def _list_ports(inspected: Mapping[str, Any]) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = []
    found = inspected["NetworkSettings"].get("Ports") or {}
    for key, bindings in found.items():
        port, _, protocol = str(key).partition("/")
        if not port.isdigit():
            continue
        if not bindings:
            ports.append({"PrivatePort": int(port), "Type": protocol or "tcp"})
            continue
        for binding in bindings:
            host_port = str(binding.get("HostPort") or "")
            entry: dict[str, Any] = {
                "IP": binding.get("HostIp") or "0.0.0.0",
                "PrivatePort": int(port),
                "Type": protocol or "tcp",
            }
            if host_port.isdigit():
                entry["PublicPort"] = int(host_port)
            ports.append(entry)
    return ports


def _sizes(s: Services, record: ContainerRecord, images: dict[str, int]) -> dict[str, int]:
    from cove.engine.system_df import container_size

    if record.image_id not in images:
        try:
            images[record.image_id] = int(s.images.inspect(record.image_id).get("Size") or 0)
        except (NoSuchImage, OSError):
            images[record.image_id] = 0
    rw = container_size(s.root, record.id)
    return {"SizeRw": rw, "SizeRootFs": rw + images[record.image_id]}


def list_entry(s: Services, record: ContainerRecord, *, health: str = "") -> dict[str, Any]:
    """One element of GET /containers/json (Docker's summary of a container)."""
    from cove.engine.container_inspect import inspect_container, status_text

    inspected: dict[str, Any] = dict(
        inspect_container(record, spec=_spec(record), log_path=record.log_path,
                          extra=record.settings)
    )  # fmt: skip
    command = " ".join([str(inspected["Path"]), *inspected["Args"]]).strip()
    networks = inspected["NetworkSettings"]["Networks"]
    return {
        "Id": record.id,
        "Names": ["/" + record.name],
        "Image": record.image_name,
        "ImageID": inspected["Image"],
        "Command": command,
        "Created": unix_time(record.created),
        "Ports": _list_ports(inspected) if record.status in ("running", "paused") else [],
        "Labels": inspected["Config"]["Labels"] or {},
        "State": record.status,
        "Status": status_text(record, health=health),
        "HostConfig": {"NetworkMode": inspected["HostConfig"]["NetworkMode"]},
        "NetworkSettings": {"Networks": networks},
        "Mounts": inspected["Mounts"],
    }


def _local_match(key: str, value: str, entry: Mapping[str, Any], health: str) -> bool:
    if key == "network":
        networks = entry["NetworkSettings"]["Networks"]
        return any(value in (name, data.get("NetworkID")) or
                   (len(value) >= 3 and str(data.get("NetworkID") or "").startswith(value))
                   for name, data in networks.items())  # fmt: skip
    if key == "volume":
        return any(value in (m.get("Name"), m.get("Destination"), m.get("Source"))
                   for m in entry["Mounts"])  # fmt: skip
    if key == "health":
        return (health or "none") == value
    if key == "is-task":
        return value.lower() in ("0", "false")
    if key == "isolation":
        return value in ("default", "")
    if key in ("publish", "expose"):
        port, _, protocol = value.partition("/")
        for item in entry["Ports"]:
            if str(item.get("PrivatePort")) == port and item.get("Type") == (protocol or "tcp"):
                if key == "expose" or "PublicPort" in item:
                    return True
            if key == "publish" and str(item.get("PublicPort")) == port:
                return True
        return False
    return True


@routes.get("/containers/json")
async def list_containers(request: web.Request) -> web.Response:
    filters = request_filters(request)
    show_all = query_bool(request, "all")
    limit = query_int(request, "limit", 0)
    with_size = query_bool(request, "size")
    for key in filters:
        if key not in _STORE_FILTERS and key not in _LOCAL_FILTERS:
            raise BadParameter(f"invalid filter '{key}'")
    if "status" in filters:
        filters["status"] = [v for v in filters["status"] if v != "removing"] or ["-none-"]
        for value in filters["status"]:
            if value not in ("created", "restarting", "running", "paused", "exited", "dead",
                             "-none-"):  # fmt: skip
                raise BadParameter(f"invalid filter 'status={value}'")
    if limit > 0 or filters.get("before") or filters.get("since"):
        show_all = True  # Docker: these look at stopped containers too
    store_filters = {k: v for k, v in filters.items() if k in _STORE_FILTERS}
    local = {k: v for k, v in filters.items() if k in _LOCAL_FILTERS and v}

    def action(s: Services) -> list[dict[str, Any]]:
        if store_filters.get("status") == ["-none-"]:
            return []
        records = s.containers.list(show_all, store_filters)
        result = []
        images: dict[str, int] = {}
        for record in records:
            health = _health(s, record)
            entry = list_entry(s, record, health=health)
            if not all(any(_local_match(k, v, entry, health) for v in values)
                       for k, values in local.items()):  # fmt: skip
                continue
            if with_size:
                entry.update(_sizes(s, record, images))
            result.append(entry)
            if 0 < limit <= len(result):
                break
        return result

    with no_such_container(",".join(filters.get("before", []) + filters.get("since", []))):
        found = await engine_of(request).call(action)
    return web.json_response(found)


@routes.get("/containers/{id}/json")
async def inspect(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    with_size = query_bool(request, "size")

    def action(s: Services) -> dict[str, Any]:
        record = s.containers.get(term)
        data = _docker_inspect(s.containers.inspect(record.id))
        data["Config"]["Env"] = _config_env(s, record, data["Config"]["Env"])
        if with_size:
            data.update(_sizes(s, s.containers.get(term), {}))
        return data

    return web.json_response(await call(request, action))


def _docker_inspect(document: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's inspect with what dockerd's has and the engine's lacks: Config.Env null
    when empty (Go's nil slice), HostConfig's Cgroup, CgroupnsMode (a private cgroup
    namespace on cgroup v2, as Docker's default) and ConsoleSize, and the short id among
    the Aliases of a user network (the engine's DNS answers it)."""
    data = dict(document)
    config = dict(data.get("Config") or {})
    config["Env"] = config.get("Env") or None
    data["Config"] = config
    host = dict(data.get("HostConfig") or {})
    host.setdefault("Cgroup", "")
    host.setdefault("CgroupnsMode", "private" if _cgroup_namespace() else "host")
    host.setdefault("ConsoleSize", [0, 0])
    data["HostConfig"] = host
    settings = dict(data.get("NetworkSettings") or {})
    networks = dict(settings.get("Networks") or {})
    short = str(data.get("Id") or "")[:12]
    for name, endpoint in networks.items():
        # a user network resolves the short id too: up to API 1.44, Aliases lists it
        if name not in ("bridge", "host", "none") and isinstance(endpoint, dict) and short:
            aliases = list(endpoint.get("Aliases") or [])
            networks[name] = {**endpoint, "Aliases": aliases + [short] * (short not in aliases)}
    if networks:
        data["NetworkSettings"] = {**settings, "Networks": networks}
    return data


def _config_env(s: Services, record: ContainerRecord, process_env: Any) -> list[str] | None:
    """Docker's Config.Env: the image's Env with the container's --env-file, then --env,
    merged in (not the process's environment, which the engine's inspect shows: PATH,
    HOSTNAME and HOME added); null when empty. The process's if the image is gone."""
    try:
        env = [str(e) for e in s.images.inspect(record.image_id)["Config"].get("Env") or []]
    except CoveError:
        return process_env or None
    for key in ("env_file", "env"):
        given = record.config.get(key)
        for entry in given if isinstance(given, list | tuple) else ():
            name = str(entry).split("=", 1)[0]  # replaced in place, else appended (Docker's)
            at = next((i for i, e in enumerate(env) if e.split("=", 1)[0] == name), None)
            if "=" not in str(entry):
                env = [e for e in env if e.split("=", 1)[0] != name]
            elif at is None:
                env.append(str(entry))
            else:
                env[at] = str(entry)
    return env or None


def _cgroup_namespace() -> bool:
    """The engine gives containers a private cgroup namespace on a cgroup v2 host only."""
    from pathlib import Path

    return Path("/sys/fs/cgroup/cgroup.controllers").exists()


@routes.get("/containers/{id}/top")
async def top(request: web.Request) -> web.Response:
    term = request.match_info["id"]
    ps_args = request.query.get("ps_args", "").split()

    def action(s: Services) -> dict[str, Any]:
        from cove.engine.container_top import top as container_top

        titles, rows = container_top(s.root, s.containers.get(term), ps_args)
        return {"Titles": titles, "Processes": rows}

    return web.json_response(await call(request, action))


_CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}


@routes.get("/containers/{id}/changes")
async def changes(request: web.Request) -> web.Response:
    term = request.match_info["id"]

    def action(s: Services) -> list[dict[str, Any]]:
        from cove.engine.container_diff import container_changes

        record = s.containers.get(term)
        return [{"Path": path, "Kind": _CHANGE_KINDS[kind]}
                for kind, path in container_changes(s.root, record.id, record.bundle)]  # fmt: skip

    return web.json_response(await call(request, action))


class _LoopWriter:
    """A file object for a worker thread whose writes go to the event loop in chunks, at
    most `slots` chunks in flight (backpressure)."""

    CHUNK = 256 * 1024

    def __init__(self, loop: asyncio.AbstractEventLoop, slots: int = 8) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.slots = threading.Semaphore(slots)
        self.buffer = bytearray()
        self.broken = False

    def write(self, data: bytes) -> int:
        if self.broken:
            raise BrokenPipeError("the client went away")
        self.buffer += data
        if len(self.buffer) >= self.CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            self._send(bytes(self.buffer))
            self.buffer.clear()

    def _send(self, chunk: bytes | None) -> None:
        self.slots.acquire()
        if self.broken and chunk is not None:
            raise BrokenPipeError("the client went away")
        self.loop.call_soon_threadsafe(self.queue.put_nowait, chunk)

    def close(self) -> None:
        """The end (a None chunk); called once, by the producer's wrapper."""
        self._send(None)

    def stop(self) -> None:
        """The reader gives up: unblock the writer for good."""
        self.broken = True
        for _ in range(64):
            self.slots.release()


@routes.get("/containers/{id}/export")
async def export(request: web.Request) -> web.StreamResponse:
    term = request.match_info["id"]
    record_id = await call(request, lambda s: s.containers.get(term).id)
    writer = _LoopWriter(asyncio.get_running_loop())

    def produce() -> None:
        from cove.engine.container_export import export as export_container

        try:
            export_container(engine_of(request).root, record_id, writer)  # type: ignore[arg-type]
            writer.flush()
        finally:
            writer.close()

    response = web.StreamResponse(status=200)
    response.content_type = "application/x-tar"
    await response.prepare(request)
    job = asyncio.ensure_future(engine_of(request).run(produce))
    try:
        while True:
            chunk = await writer.queue.get()
            writer.slots.release()
            if chunk is None:
                break
            await response.write(chunk)
        await job  # its error, if any, cuts the stream short (the status is sent)
        await response.write_eof()
    except BaseException:
        writer.stop()
        raise
    return response


# --- lifecycle --------------------------------------------------------------------------------


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
        except CoveError:
            if record.settings.get("auto_remove"):
                # Docker removes an AutoRemove container whose start failed (`docker run
                # --rm` waits for that removal before it reports the error)
                with contextlib.suppress(CoveError):
                    s.containers.remove(record.id, force=True, volumes=True)
            raise

    await call(request, action)
    return web.Response(status=204)


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
    filters = request_filters(request)
    for key in filters:
        if key not in ("until", "label", "label!"):
            raise BadParameter(f"invalid filter '{key}'")
    until = until_of(filters)

    def action(s: Services) -> dict[str, Any]:
        from cove.engine.state_records import _match_label
        from cove.engine.system_df import container_size
        from cove.errors import InvalidState

        deleted: list[str] = []
        reclaimed = 0
        for record in s.containers.list(True, {"label": filters.get("label", [])}):
            if record.status not in ("exited", "created", "dead"):
                continue
            if any(_match_label(record, value) for value in filters.get("label!", [])):
                continue
            if until is not None and unix_time(record.created) >= until:
                continue
            size = container_size(s.root, record.id)
            try:
                deleted.append(s.containers.remove(record.id))
            except (InvalidState, NoSuchContainer):
                continue
            reclaimed += size
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    return web.json_response(await engine_of(request).call(action))
