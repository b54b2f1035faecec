"""`docker inspect` for a container: Docker 24's JSON shape built from cove's record.

Everything here is a pure function of its inputs and never raises on what a record holds:
an option value that no longer parses shows as Docker's zero value (0, "", null).
Where the inputs overlap, the most precise one wins: the engine's "*_resolved" keys in
`record.config`, then the OCI spec's process, then the create options over the image config.

The document's parts: Config, Path and Args in `container_inspect_config`, HostConfig and
Mounts in `container_inspect_host`, NetworkSettings in `container_inspect_network`, the
lenient readers of values in `container_inspect_values`; State and the rest here. The
STATUS column of `docker ps` is `cove.engine.container_status` (re-exported here).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cove.engine.container_inspect_config import config as _config
from cove.engine.container_inspect_config import image_exec, path_args
from cove.engine.container_inspect_host import host_config, mounts
from cove.engine.container_inspect_network import network_settings
from cove.engine.container_inspect_values import as_int, time_or_zero
from cove.engine.container_status import status_text as status_text
from cove.engine.state_records import ContainerRecord

DRIVER = "overlay"

Json = dict[str, Any]


def _image_id(image_id: str) -> str:
    if not image_id or ":" in image_id:
        return image_id
    return "sha256:" + image_id


# --- State -------------------------------------------------------------------------------------


def _health(extra: Mapping[str, Any]) -> Json | None:
    """State.Health: present when the container has a healthcheck (extra "healthcheck")."""
    if not isinstance(extra.get("healthcheck"), Mapping):
        return None
    state = extra.get("health")
    state = state if isinstance(state, Mapping) else {}
    log = state.get("Log")
    return {
        "Status": str(state.get("Status") or "starting"),
        "FailingStreak": as_int(state.get("FailingStreak")),
        "Log": [dict(entry) for entry in log if isinstance(entry, Mapping)]
        if isinstance(log, list)
        else [],
    }


def _state(record: ContainerRecord, extra: Mapping[str, Any]) -> Json:
    # Docker counts a restarting container as running (with no pid)
    running = record.status in ("running", "paused", "restarting")
    state: Json = {
        "Status": record.status,
        "Running": running,
        "Paused": record.status == "paused",
        "Restarting": record.status == "restarting",
        "OOMKilled": bool(record.oom_killed),
        "Dead": record.status == "dead",
        "Pid": record.pid if record.status in ("running", "paused") else 0,
        "ExitCode": record.exit_code,
        "Error": str(extra.get("error") or ""),
        "StartedAt": time_or_zero(record.started_at),
        "FinishedAt": time_or_zero(record.finished_at),
    }
    health = _health(extra)
    if health is not None:
        state["Health"] = health
    return state


# --- the document --------------------------------------------------------------------------------


def _graph_driver(record: ContainerRecord, extra: Mapping[str, Any]) -> Json:
    graph = extra.get("graph")
    data: dict[str, str] | None = None
    if isinstance(graph, Mapping):
        keys = ("LowerDir", "MergedDir", "UpperDir", "WorkDir")
        data = {key: str(graph[key]) for key in keys if graph.get(key)}
    elif record.rootfs:
        data = {"MergedDir": record.rootfs}
    return {"Data": data or None, "Name": DRIVER}


def _files(record: ContainerRecord, log_path: str) -> Json:
    """Docker keeps these files next to the log: `<containers>/<id>/resolv.conf`, ..."""
    folder = os.path.dirname(log_path) or os.path.dirname(record.bundle)
    if not folder:
        return {"ResolvConfPath": "", "HostnamePath": "", "HostsPath": ""}
    return {
        "ResolvConfPath": os.path.join(folder, "resolv.conf"),
        "HostnamePath": os.path.join(folder, "hostname"),
        "HostsPath": os.path.join(folder, "hosts"),
    }


def inspect_container(
    record: ContainerRecord,
    *,
    spec: Mapping[str, Any] | None,
    log_path: str,
    image_config: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, object]:
    """One element of `docker inspect CONTAINER`'s list, as Docker 24 prints it.

    `spec`: the container's OCI spec (config.json) when it has one; `image_config`: the
    image's config (OCI image config, or just its "config" part); `extra`: what the record
    does not hold (auto_remove, log_max_size, log_max_file, stop_timeout, error,
    restart_policy, graph, attach_stdin/attach_stdout/attach_stderr, volumes).
    """
    more: Mapping[str, Any] = extra or {}
    image = image_exec(image_config)
    config = _config(record, spec, image, more)
    args = path_args(record, spec, config)
    return {
        "Id": record.id,
        "Created": time_or_zero(record.created),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": _state(record, more),
        "Image": _image_id(record.image_id),
        **_files(record, log_path),
        "LogPath": log_path,
        "Name": "/" + record.name,
        "RestartCount": record.restart_count,
        "Driver": DRIVER,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config(record, spec, more),
        "GraphDriver": _graph_driver(record, more),
        "Mounts": mounts(record.config, more),
        "Config": config,
        "NetworkSettings": network_settings(record.config, more),
    }
