"""`docker inspect` for a container: Docker 24's JSON shape built from cove's record, and
the STATUS column of `docker ps`.

Everything here is a pure function of its inputs and never raises on what a record holds:
an option value that no longer parses shows as Docker's zero value (0, "", null).
Where the inputs overlap, the most precise one wins: the engine's "*_resolved" keys in
`record.config`, then the OCI spec's process, then the create options over the image config.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from cove.engine.container_logs import NS, parse_timestamp
from cove.engine.create_options import DEFAULT_SHM_SIZE, parse_bytes, parse_mount
from cove.engine.state_records import ContainerRecord
from cove.errors import CoveError

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Docker prints for unset times
INIT_PATH = "/dev/cove-init"  # cove.engine.specgen.INIT_PATH (not imported: it is heavy)
DRIVER = "overlay"
_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")

Json = dict[str, Any]


# --- reading values leniently ----------------------------------------------------------------


def _int(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def _optional_int(value: object) -> int | None:
    return None if value is None or value == "" else _int(value)


def _size(value: object) -> int:
    """A size option ("512m", 1024, "-1") in bytes; 0 when unset or invalid."""
    if value is None or value == "" or isinstance(value, bool):
        return 0
    if str(value).strip() == "-1":
        return -1
    if not isinstance(value, (str, int)):
        return 0
    try:
        return parse_bytes(value, "")
    except CoveError:
        return 0


def _nano_cpus(value: object) -> int:
    """--cpus ("1.5") in nano-CPUs; 0 when unset or invalid."""
    if value is None or value == "" or isinstance(value, bool):
        return 0
    try:
        nano = round(float(str(value)) * 1e9)
    except (ValueError, OverflowError):
        return 0
    return nano if nano > 0 else 0


def _strings(value: object) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return []


def _string_map(value: object) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return {}


def _list_or_none(value: object) -> list[str] | None:
    items = _strings(value)
    return items or None


def _time(text: str) -> str:
    return text or ZERO_TIME


def _image_id(image_id: str) -> str:
    if not image_id or ":" in image_id:
        return image_id
    return "sha256:" + image_id


# --- the process: Path, Args and Config ------------------------------------------------------


def _image_exec(image_config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The execution part of an image config: `config` of an OCI image config, or the
    mapping itself when it already is that part."""
    if not isinstance(image_config, Mapping):
        return {}
    inner = image_config.get("config")
    if isinstance(inner, Mapping):
        return inner
    return image_config


def _spec_process(spec: Mapping[str, Any] | None) -> Mapping[str, Any]:
    process = spec.get("process") if isinstance(spec, Mapping) else None
    return process if isinstance(process, Mapping) else {}


def _entrypoint(options: Mapping[str, Any], image: Mapping[str, Any]) -> list[str] | None:
    if "entrypoint_resolved" in options:
        return _list_or_none(options["entrypoint_resolved"])
    if options.get("entrypoint") is not None:
        return _list_or_none(options["entrypoint"])
    return _list_or_none(image.get("Entrypoint"))


def _spec_args(options: Mapping[str, Any], process: Mapping[str, Any]) -> list[str] | None:
    """The spec's process.args without the init cove put in front (--init)."""
    if "args" not in process:
        return None
    args = _strings(process["args"])
    if options.get("init") and args[:1] == [INIT_PATH] and args[1:2] == ["--"]:
        return args[2:]
    return args


def _cmd(
    options: Mapping[str, Any],
    image: Mapping[str, Any],
    entrypoint: list[str] | None,
    args: list[str] | None,
) -> list[str] | None:
    """Docker's rules: arguments after the image replace its Cmd; --entrypoint drops it."""
    if "cmd_resolved" in options:
        return _list_or_none(options["cmd_resolved"])
    prefix = entrypoint or []
    if args is not None and args[: len(prefix)] == prefix:
        return args[len(prefix) :] or None
    if options.get("cmd"):
        return _strings(options["cmd"])
    if options.get("entrypoint") is not None:
        return None
    return _list_or_none(image.get("Cmd"))


def _merge_env(env: list[str], entries: Sequence[str]) -> None:
    for entry in entries:
        name = entry.split("=", 1)[0]
        env[:] = [e for e in env if e.split("=", 1)[0] != name]
        if "=" in entry:
            env.append(entry)


def _env(
    options: Mapping[str, Any], image: Mapping[str, Any], process: Mapping[str, Any]
) -> list[str]:
    if "env_resolved" in options:
        return _strings(options["env_resolved"])
    if "env" in process:
        return _strings(process["env"])
    env = _strings(image.get("Env"))
    _merge_env(env, _strings(options.get("env_file")))
    _merge_env(env, _strings(options.get("env")))
    return env


def _workdir(
    options: Mapping[str, Any], image: Mapping[str, Any], process: Mapping[str, Any]
) -> str:
    if "workdir_resolved" in options:
        return str(options["workdir_resolved"])
    if process.get("cwd"):
        return str(process["cwd"])
    return str(options.get("workdir") or image.get("WorkingDir") or "")


def _user(options: Mapping[str, Any], image: Mapping[str, Any], process: Mapping[str, Any]) -> str:
    if "user_resolved" in options:
        return str(options["user_resolved"])
    named = options.get("user") or image.get("User")
    if named:
        return str(named)
    ids = process.get("user")
    if isinstance(ids, Mapping) and (_int(ids.get("uid")) or _int(ids.get("gid"))):
        return f"{_int(ids.get('uid'))}:{_int(ids.get('gid'))}"
    return ""


def _hostname(record: ContainerRecord, spec: Mapping[str, Any] | None) -> str:
    if isinstance(spec, Mapping) and spec.get("hostname"):
        return str(spec["hostname"])
    return str(record.config.get("hostname") or record.id[:12])


def _attach(options: Mapping[str, Any], extra: Mapping[str, Any]) -> tuple[bool, bool, bool]:
    """(stdin, stdout, stderr): `docker run` in the foreground attaches stdout and stderr,
    and stdin with -i; `extra` says otherwise (for example for `run -d`)."""
    stdin = bool(extra.get("attach_stdin", options.get("interactive", False)))
    stdout = bool(extra.get("attach_stdout", True))
    stderr = bool(extra.get("attach_stderr", True))
    return stdin, stdout, stderr


def _config(
    record: ContainerRecord,
    spec: Mapping[str, Any] | None,
    image: Mapping[str, Any],
    extra: Mapping[str, Any],
) -> Json:
    options = record.config
    process = _spec_process(spec)
    entrypoint = _entrypoint(options, image)
    stdin, stdout, stderr = _attach(options, extra)
    interactive = bool(options.get("interactive"))
    volumes = image.get("Volumes")
    config: Json = {
        "Hostname": _hostname(record, spec),
        "Domainname": str(options.get("domainname") or ""),
        "User": _user(options, image, process),
        "AttachStdin": stdin,
        "AttachStdout": stdout,
        "AttachStderr": stderr,
        "Tty": bool(options.get("tty")),
        "OpenStdin": interactive,
        "StdinOnce": interactive and stdin,
        "Env": _env(options, image, process),
        "Cmd": _cmd(options, image, entrypoint, _spec_args(options, process)),
        "Image": record.image_name,
        "Volumes": dict(volumes) if isinstance(volumes, Mapping) and volumes else None,
        "WorkingDir": _workdir(options, image, process),
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": {**_string_map(image.get("Labels")), **_string_map(options.get("labels"))},
    }
    stop_signal = options.get("stop_signal") or image.get("StopSignal")
    if stop_signal:
        config["StopSignal"] = str(stop_signal)
    if extra.get("stop_timeout") is not None:
        config["StopTimeout"] = _int(extra["stop_timeout"])
    if isinstance(extra.get("healthcheck"), Mapping):
        config["Healthcheck"] = dict(extra["healthcheck"])
    return config


def _path_args(record: ContainerRecord, spec: Mapping[str, Any] | None, config: Json) -> list[str]:
    """The command line the container runs: the spec's, else Entrypoint + Cmd."""
    args = _spec_args(record.config, _spec_process(spec))
    if args is None:
        args = (config["Entrypoint"] or []) + (config["Cmd"] or [])
    return args


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
        "FailingStreak": _int(state.get("FailingStreak")),
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
        "StartedAt": _time(record.started_at),
        "FinishedAt": _time(record.finished_at),
    }
    health = _health(extra)
    if health is not None:
        state["Health"] = health
    return state


# --- mounts --------------------------------------------------------------------------------------


def _volume_mount(text: str) -> Json | None:
    """-v SRC:DST[:OPTS] (SRC a host path) as a Mounts entry; None when it does not parse
    or names a volume (volumes come from the record's settings: `_volume_mounts`)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0].startswith("/") or not parts[1]:
        return None
    mode = parts[2] if len(parts) == 3 else ""
    flags = mode.split(",")
    propagation = next((f for f in flags if f in _PROPAGATIONS), "rprivate")
    return {
        "Type": "bind",
        "Source": parts[0],
        "Destination": parts[1],
        "Mode": mode,
        "RW": "ro" not in flags,
        "Propagation": propagation,
    }


def _mount_fields(item: object) -> Mapping[str, Any] | None:
    """A --mount value (its CSV text, or a MountOption as a dict) as a dict of its fields."""
    if isinstance(item, Mapping):
        return item
    if isinstance(item, str):
        try:
            mount = parse_mount(item)
        except CoveError:
            return None
        return vars(mount)
    return None


def _mount_mount(item: object) -> Json | None:
    fields = _mount_fields(item)
    if fields is None or fields.get("type") not in ("bind", "tmpfs"):
        return None
    bind = fields["type"] == "bind"
    return {
        "Type": fields["type"],
        "Source": str(fields.get("source") or "") if bind else "",
        "Destination": str(fields.get("target") or ""),
        "Mode": "",
        "RW": not fields.get("read_only"),
        "Propagation": str(fields.get("propagation") or "rprivate") if bind else "",
    }


def _volume_mounts(extra: Mapping[str, Any]) -> list[Json]:
    """The container's volumes (`settings["volumes"]`, see cove.engine.volumes)."""
    found = extra.get("volumes")
    result: list[Json] = []
    for entry in found if isinstance(found, list) else ():
        if isinstance(entry, Mapping) and entry.get("name"):
            result.append({
                "Type": "volume", "Name": str(entry["name"]),
                "Source": str(entry.get("source") or ""),
                "Destination": str(entry.get("destination") or ""), "Driver": "local",
                "Mode": str(entry.get("mode") or ""), "RW": bool(entry.get("rw", True)),
                "Propagation": "",
            })  # fmt: skip
    return result


def _mounts(options: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> list[Json]:
    """Mounts: -v binds, --mount binds, then volumes (Docker lists --tmpfs only in
    HostConfig.Tmpfs)."""
    found = [_volume_mount(v) for v in _strings(options.get("volumes"))]
    found += [_mount_mount(m) for m in options.get("mounts") or ()]
    return [m for m in found if m is not None] + _volume_mounts(extra or {})


def _host_mounts(options: Mapping[str, Any]) -> list[Json]:
    """HostConfig.Mounts: the --mount values in the API's shape."""
    result: list[Json] = []
    for item in options.get("mounts") or ():
        fields = _mount_fields(item)
        if fields is None:
            continue
        entry: Json = {"Type": fields.get("type", ""), "Target": fields.get("target", "")}
        if fields.get("source"):
            entry["Source"] = fields["source"]
        if fields.get("read_only"):
            entry["ReadOnly"] = True
        if fields.get("propagation"):
            entry["BindOptions"] = {"Propagation": fields["propagation"]}
        result.append(entry)
    return result


def _tmpfs(options: Mapping[str, Any]) -> dict[str, str]:
    result: dict[str, str] = {}
    for text in _strings(options.get("tmpfs")):
        path, _, mount_options = text.partition(":")
        result[path] = mount_options
    return result


# --- HostConfig ----------------------------------------------------------------------------------


def _ulimit(text: str) -> Json | None:
    name, sep, values = text.partition("=")
    if not sep or not name.strip():
        return None
    soft_text, colon, hard_text = values.partition(":")

    def limit(value: str) -> int:
        return -1 if value.strip() in ("-1", "unlimited") else _int(value)

    soft = limit(soft_text)
    return {"Name": name.strip().lower(), "Hard": limit(hard_text) if colon else soft, "Soft": soft}


def _ulimits(options: Mapping[str, Any]) -> list[Json] | None:
    found = [_ulimit(t) for t in _strings(options.get("ulimits"))]
    return [u for u in found if u is not None] or None


def _throttles(entries: object, sizes: bool) -> list[Json]:
    """--device-read-bps /dev/sda:1mb and friends as [{Path, Rate}]."""
    result: list[Json] = []
    for text in _strings(entries):
        path, _, rate = text.rpartition(":")
        if path:
            result.append({"Path": path, "Rate": _size(rate) if sizes else _int(rate)})
    return result


def _devices(options: Mapping[str, Any]) -> list[Json]:
    result: list[Json] = []
    for text in _strings(options.get("devices")):
        parts = text.split(":")
        source, inside, access = parts[0], parts[0], "rwm"
        if len(parts) == 2 and parts[1] and set(parts[1]) <= set("rwm"):
            access = parts[1]
        elif len(parts) >= 2:
            inside = parts[1]
            access = parts[2] if len(parts) > 2 else "rwm"
        result.append(
            {"PathOnHost": source, "PathInContainer": inside, "CgroupPermissions": access}
        )
    return result


def _log_config(extra: Mapping[str, Any]) -> Json:
    config: dict[str, str] = {}
    if extra.get("log_max_size"):
        config["max-size"] = str(extra["log_max_size"])
    if extra.get("log_max_file"):
        config["max-file"] = str(extra["log_max_file"])
    return {"Type": "json-file", "Config": config}


def _restart_policy(extra: Mapping[str, Any]) -> Json:
    policy = extra.get("restart_policy")
    if isinstance(policy, Mapping):
        return {
            "Name": str(policy.get("Name") or "no"),
            "MaximumRetryCount": _int(policy.get("MaximumRetryCount") or 0),
        }
    return {"Name": "no", "MaximumRetryCount": 0}


def _memory(options: Mapping[str, Any]) -> Json:
    memory = _size(options.get("memory"))
    swap = _size(options.get("memory_swap"))
    if memory > 0 and swap == 0:
        swap = 2 * memory  # the daemon's default: as much swap as memory
    shm = _size(options.get("shm_size")) or DEFAULT_SHM_SIZE
    return {
        "Memory": memory,
        "MemorySwap": swap,
        "MemoryReservation": _size(options.get("memory_reservation")),
        "MemorySwappiness": None,
        "OomKillDisable": bool(options.get("oom_kill_disable")),
        "ShmSize": shm,
    }


def _cpu(options: Mapping[str, Any]) -> Json:
    return {
        "NanoCpus": _nano_cpus(options.get("cpus")),
        "CpuShares": _int(options.get("cpu_shares") or 0),
        "CpuQuota": _int(options.get("cpu_quota") or 0),
        "CpuPeriod": _int(options.get("cpu_period") or 0),
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": str(options.get("cpuset_cpus") or ""),
        "CpusetMems": str(options.get("cpuset_mems") or ""),
        "CpuCount": 0,
        "CpuPercent": 0,
    }


def _block_io(options: Mapping[str, Any]) -> Json:
    return {
        "BlkioWeight": _int(options.get("blkio_weight") or 0),
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": _throttles(options.get("device_read_bps"), sizes=True),
        "BlkioDeviceWriteBps": _throttles(options.get("device_write_bps"), sizes=True),
        "BlkioDeviceReadIOps": _throttles(options.get("device_read_iops"), sizes=False),
        "BlkioDeviceWriteIOps": _throttles(options.get("device_write_iops"), sizes=False),
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
    }


def _system_paths(spec: Mapping[str, Any] | None) -> Json:
    linux = spec.get("linux") if isinstance(spec, Mapping) else None
    if not isinstance(linux, Mapping):
        return {}
    return {
        key: _strings(linux[name])
        for key, name in (("MaskedPaths", "maskedPaths"), ("ReadonlyPaths", "readonlyPaths"))
        if name in linux
    }


def _host_config(
    record: ContainerRecord, spec: Mapping[str, Any] | None, extra: Mapping[str, Any]
) -> Json:
    options = record.config
    host: Json = {
        "Binds": _list_or_none(options.get("volumes")),
        "ContainerIDFile": "",
        "LogConfig": _log_config(extra),
        "NetworkMode": str(options.get("network") or "none"),
        "PortBindings": _port_map(extra.get("port_bindings")),
        "RestartPolicy": _restart_policy(extra),
        "AutoRemove": bool(extra.get("auto_remove", False)),
        "VolumeDriver": "",
        "VolumesFrom": None,
        "CapAdd": _list_or_none(options.get("cap_add")),
        "CapDrop": _list_or_none(options.get("cap_drop")),
        "Dns": _strings(options.get("dns")),
        "DnsOptions": _strings(options.get("dns_options")),
        "DnsSearch": _strings(options.get("dns_search")),
        "ExtraHosts": _list_or_none(options.get("add_hosts")),
        "GroupAdd": _list_or_none(options.get("group_add")),
        "IpcMode": "private",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": bool(options.get("privileged")),
        "PublishAllPorts": bool(options.get("publish_all")),
        "ReadonlyRootfs": bool(options.get("read_only")),
        "SecurityOpt": _list_or_none(options.get("security_opt")),
        "Tmpfs": _tmpfs(options),
        "UTSMode": "",
        "UsernsMode": "",
        "Runtime": record.runtime,
        "Isolation": "",
        "CgroupParent": "",
        **_memory(options),
        **_cpu(options),
        **_block_io(options),
        "PidsLimit": _optional_int(options.get("pids_limit")),
        "Devices": _devices(options),
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "Ulimits": _ulimits(options),
        "Sysctls": _string_map(options.get("sysctls")),
        "Init": bool(options.get("init")),
        **_system_paths(spec),
    }
    mounts = _host_mounts(options)
    if mounts:
        host["Mounts"] = mounts
    return host


# --- networks ------------------------------------------------------------------------------------


def _endpoint() -> Json:
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": None,
        "NetworkID": "",
        "EndpointID": "",
        "Gateway": "",
        "IPAddress": "",
        "IPPrefixLen": 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": "",
        "DriverOpts": None,
    }


def _port_map(entries: object) -> Json:
    """settings' port bindings -> Docker's {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    (HostPort "" for a port picked at start)."""
    found: dict[str, list[Json]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping) or not entry.get("container_port"):
            continue
        key = f"{entry['container_port']}/{entry.get('protocol') or 'tcp'}"
        port = _int(entry.get("host_port"))
        found.setdefault(key, []).append(
            {"HostIp": str(entry.get("host_ip") or ""), "HostPort": str(port) if port else ""}
        )
    return dict(found)


def _ports(extra: Mapping[str, Any]) -> Json:
    """NetworkSettings.Ports of a running container: where each published port listens."""
    found = _port_map(extra.get("ports"))
    for bindings in found.values():
        for binding in bindings:
            binding["HostIp"] = binding["HostIp"] or "0.0.0.0"
    return found


def _connected(endpoint: Mapping[str, Any], options: Mapping[str, Any], primary: bool) -> Json:
    data = _endpoint()
    aliases = _strings(endpoint.get("aliases"))
    ip = str(options.get("ip") or "") if primary else ""
    data.update({
        "IPAMConfig": {"IPv4Address": ip} if ip else None,
        "Aliases": aliases or None,
        "NetworkID": str(endpoint.get("network_id") or ""),
        "EndpointID": str(endpoint.get("endpoint_id") or ""),
        "Gateway": str(endpoint.get("gateway") or ""),
        "IPAddress": str(endpoint.get("ip") or ""),
        "IPPrefixLen": _int(endpoint.get("prefixlen")),
        "MacAddress": str(endpoint.get("mac") or ""),
    })  # fmt: skip
    return data


def _network_settings(options: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Json:
    """Docker's NetworkSettings: the endpoints of a running container (settings["networks"]),
    else its network mode with empty ones; the top-level address fields for the default
    network "bridge", as Docker has them."""
    mode = str(options.get("network") or "none")
    more = extra or {}
    endpoints = [e for e in more.get("networks") or [] if isinstance(e, Mapping)]
    networks: Json = {mode: _endpoint()}
    if endpoints:
        networks = {str(e.get("name")): _connected(e, options, index == 0)
                    for index, e in enumerate(endpoints)}  # fmt: skip
    default = networks.get("bridge") if mode == "bridge" else None
    top = {key: default[key] if default else "" for key in
           ("EndpointID", "Gateway", "IPAddress", "MacAddress")}  # fmt: skip
    return {
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": _ports(more) if endpoints else {},
        "SandboxKey": "",
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": top["EndpointID"],
        "Gateway": top["Gateway"],
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top["IPAddress"],
        "IPPrefixLen": default["IPPrefixLen"] if default else 0,
        "IPv6Gateway": "",
        "MacAddress": top["MacAddress"],
        "Networks": networks,
    }


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
    image = _image_exec(image_config)
    config = _config(record, spec, image, more)
    args = _path_args(record, spec, config)
    return {
        "Id": record.id,
        "Created": _time(record.created),
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
        "HostConfig": _host_config(record, spec, more),
        "GraphDriver": _graph_driver(record, more),
        "Mounts": _mounts(record.config, more),
        "Config": config,
        "NetworkSettings": _network_settings(record.config, more),
    }


# --- docker ps STATUS ----------------------------------------------------------------------------


def human_duration(duration_ns: int) -> str:
    """Go's units.HumanDuration: "Less than a second", "About a minute", "3 hours", ..."""
    seconds = int(duration_ns / NS)
    if seconds < 1:
        return "Less than a second"
    if seconds == 1:
        return "1 second"
    if seconds < 60:
        return f"{seconds} seconds"
    minutes = int(duration_ns / (60 * NS))
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(duration_ns / (3600 * NS) + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{int(duration_ns / (3600 * NS)) // (24 * 365)} years"


def _since(stamp: str, now_ns: int) -> str:
    """How long ago `stamp` was ("" or unreadable: just now)."""
    when = parse_timestamp(stamp) if stamp else None
    return human_duration(now_ns - (now_ns if when is None else when))


def status_text(record: ContainerRecord, now_ns: int | None = None, health: str = "") -> str:
    """The STATUS column of `docker ps`: "Created", "Up 5 seconds", "Up 3 minutes (Paused)",
    "Up 1 minute (healthy)" (`health`: State.Health.Status), "Restarting (1) 2 seconds ago",
    "Exited (0) 2 hours ago", "Dead"."""
    now = time.time_ns() if now_ns is None else now_ns
    if record.status == "running":
        if health:
            shown = "health: starting" if health == "starting" else health
            return f"Up {_since(record.started_at, now)} ({shown})"
        return f"Up {_since(record.started_at, now)}"
    if record.status == "restarting":
        return f"Restarting ({record.exit_code}) {_since(record.finished_at, now)} ago"
    if record.status == "paused":
        return f"Up {_since(record.started_at, now)} (Paused)"
    if record.status == "dead":
        return "Dead"
    if record.status == "exited":
        if not record.finished_at:
            return f"Exited ({record.exit_code})"
        return f"Exited ({record.exit_code}) {_since(record.finished_at, now)} ago"
    return "Created"
