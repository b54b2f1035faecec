"""GET /containers/json: Docker's summary of each container (`list_entry`, which
`/system/df` uses too), its filters (the engine's store knows most; network, volume,
health, publish, ... are matched here) and the sizes (`?size`, and inspect's)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from cove.api.containers_target import no_such_container
from cove.api.context import Services, engine_of
from cove.api.errors import BadParameter
from cove.api.query import query_bool, query_int, request_filters, unix_time
from cove.api.routing import Routes

if TYPE_CHECKING:
    from cove.engine.state import ContainerRecord

routes = Routes()

# Docker's list filters that the engine's store does not know (handled here)
_LOCAL_FILTERS = ("network", "volume", "health", "is-task", "isolation", "publish", "expose")
_STORE_FILTERS = ("id", "name", "status", "exited", "ancestor", "label", "runtime", "before",
                  "since")  # fmt: skip


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


def sizes(s: Services, record: ContainerRecord, images: dict[str, int]) -> dict[str, int]:
    """SizeRw and SizeRootFs of a container (`images`: image id -> size, a cache)."""
    from cove.engine.system_df import container_sizes

    return container_sizes(s.root, record, images)


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
                entry.update(sizes(s, record, images))
            result.append(entry)
            if 0 < limit <= len(result):
                break
        return result

    with no_such_container(",".join(filters.get("before", []) + filters.get("since", []))):
        found = await engine_of(request).call(action)
    return web.json_response(found)
