"""POST /containers/create's body (Config + HostConfig + NetworkingConfig) as the engine's
create options: the same `CreateOptions` + `RunSettings` the CLI's flags become
(`cove.cli.engine.create_flags`), so that the API and the CLI check values alike.

Pure translation: nothing here touches the engine. Fields the engine has no use for are
accepted at their default values (Docker's clients send every field). At another value
each is either refused (400 naming the field: it would change what the container is or
may do, and silently dropping it would mislead) or accepted with a warning in the
response's Warnings (hints that change nothing essential), as listed in `_REFUSED` and
`_WARNED`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cove.api.errors import BadParameter
from cove.engine.container_create import RunSettings
from cove.engine.create_options import CreateOptions, MountOption

Json = Mapping[str, Any]

# Docker's default network mode (the CLI sends "default"; the daemon reads it as bridge).
DEFAULT_NETWORKS = ("", "default", "bridge")
_PORT_KEY = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$")
_PROPAGATIONS = ("", "private", "rprivate", "shared", "rshared", "slave", "rslave")


@dataclass
class ApiRunSettings(RunSettings):
    """RunSettings plus what only the API sets (AttachStdin/out/err, StdinOnce), stored in
    the record's settings for inspect."""

    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data.pop("extra", None)
        data.update(self.extra)
        return data


@dataclass
class CreateRequest:
    image: str
    options: CreateOptions
    settings: ApiRunSettings
    runtime: str = "cove"
    warnings: list[str] = field(default_factory=list)
    console_size: tuple[int, int] | None = None  # HostConfig.ConsoleSize [height, width]


# --- reading JSON values strictly ----------------------------------------------------------


def _obj(value: object, name: str) -> Json:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadParameter(f"invalid {name}: want a JSON object")
    return value


def _str(value: object, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadParameter(f"invalid {name}: want a string")
    return value


def _bool(value: object, name: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise BadParameter(f"invalid {name}: want true or false")
    return value


def _int(value: object, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise BadParameter(f"invalid {name}: want an integer")
    return value


def _strings(value: object, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadParameter(f"invalid {name}: want a list of strings")
    return list(value)


def _str_slice(value: object, name: str) -> list[str] | None:
    """Docker's StrSlice: null, a string (one word) or a list of strings."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return _strings(value, name)


def _string_map(value: object, name: str) -> dict[str, str]:
    data = _obj(value, name)
    if not all(isinstance(v, str) for v in data.values()):
        raise BadParameter(f"invalid {name}: want an object of strings")
    return {str(k): str(v) for k, v in data.items()}


def _list(value: object, name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadParameter(f"invalid {name}: want a list")
    return value


# --- fields cove does not have -------------------------------------------------------------

# HostConfig fields refused at a non-default value: they change the container's isolation
# or resources, which cove cannot honour.
_REFUSED = {
    "Links": "legacy links are not supported: use a user-defined network",
    "Cgroup": "joining another container's cgroup is not supported",
    "DeviceRequests": "device requests (GPUs) are not supported",
    "MaskedPaths": "custom masked paths are not supported: use SecurityOpt systempaths=unconfined",
    "ReadonlyPaths": "custom read-only paths are not supported: use SecurityOpt "
    "systempaths=unconfined",
    "StorageOpt": "storage options are not supported",
    "Capabilities": "the Capabilities field is not supported: use CapAdd and CapDrop",
}
# HostConfig fields accepted at any value, with a warning when not at their default
# (Docker on Linux ignores the Windows ones with a warning too).
_WARNED = {
    "CpuCount": "CPU count is a Windows option: ignored",
    "CpuPercent": "CPU percent is a Windows option: ignored",
    "IOMaximumIOps": "IOMaximumIOps is a Windows option: ignored",
    "IOMaximumBandwidth": "IOMaximumBandwidth is a Windows option: ignored",
    "KernelMemory": "kernel memory limits are deprecated and ignored",
    "KernelMemoryTCP": "kernel TCP memory limits are deprecated and ignored",
}


def _is_default(value: object) -> bool:
    return value is None or value in ("", 0, False, [], {})


def _unsupported(host: Json, warnings: list[str]) -> None:
    for key, why in _REFUSED.items():
        value = host.get(key)
        if key in ("MaskedPaths", "ReadonlyPaths") and value is not None:
            raise BadParameter(f"HostConfig.{key} is not supported by cove: {why}")
        if not _is_default(value):
            raise BadParameter(f"HostConfig.{key} is not supported by cove: {why}")
    for key, why in _WARNED.items():
        if not _is_default(host.get(key)):
            warnings.append(f"HostConfig.{key}: {why}")
    for key, allowed in (("UsernsMode", ("", "host")),
                         ("Isolation", ("", "default")),
                         ("VolumeDriver", ("", "local"))):  # fmt: skip
        value = _str(host.get(key), f"HostConfig.{key}")
        if value not in allowed:
            raise BadParameter(
                f"HostConfig.{key} {value!r} is not supported by cove (supported: "
                + ", ".join(repr(a) for a in allowed if a)
                + ")"
            )


# --- pieces ----------------------------------------------------------------------------------


def port_key(key: str) -> tuple[str, str]:
    """ "80/tcp", "80", "8000-8010/udp" -> (ports, protocol)."""
    match = _PORT_KEY.match(key.strip())
    if match is None:
        raise BadParameter(f"invalid port {key!r}: want PORT[/PROTOCOL] such as 80/tcp")
    first, last, protocol = match.groups()
    return (f"{first}-{last}" if last else first), protocol or "tcp"


def publish_specs(bindings: object) -> list[str]:
    """HostConfig.PortBindings as `-p` values ("[IP:][HOSTPORT:]PORT/PROTO")."""
    result: list[str] = []
    for key, entries in _obj(bindings, "HostConfig.PortBindings").items():
        port, protocol = port_key(str(key))
        for entry in _list(entries, f"HostConfig.PortBindings[{key}]"):
            binding = _obj(entry, f"HostConfig.PortBindings[{key}]")
            host_ip = _str(binding.get("HostIp"), "HostIp")
            host_port = _str(binding.get("HostPort"), "HostPort")
            if ":" in host_ip:  # IPv6: the engine's parser says what it thinks of it
                host_ip = f"[{host_ip}]"
            if host_ip:
                result.append(f"{host_ip}:{host_port}:{port}/{protocol}")
            elif host_port:
                result.append(f"{host_port}:{port}/{protocol}")
            else:
                result.append(f"{port}/{protocol}")
    return result


def mount_option(entry: object, index: int) -> MountOption:
    """One HostConfig.Mounts entry; Docker's checks of which options go with which type."""
    name = f"HostConfig.Mounts[{index}]"
    data = _obj(entry, name)
    kind = _str(data.get("Type"), f"{name}.Type") or "volume"
    if kind not in ("bind", "volume", "tmpfs"):
        raise BadParameter(f"invalid {name}: mount type {kind!r} is not supported "
                           "(bind, volume, tmpfs)")  # fmt: skip
    target = _str(data.get("Target"), f"{name}.Target")
    if not target:
        raise BadParameter(f"invalid mount config: {name}.Target is required")
    source = _str(data.get("Source"), f"{name}.Source")
    mount = MountOption(type=kind, target=target, source=source,
                        read_only=_bool(data.get("ReadOnly"), f"{name}.ReadOnly"))  # fmt: skip
    for key, owner in (("BindOptions", "bind"), ("VolumeOptions", "volume"),
                       ("TmpfsOptions", "tmpfs")):  # fmt: skip
        if data.get(key) is not None and kind != owner:
            raise BadParameter(f"invalid mount config for type {kind!r}: field {key} must not "
                               "be specified")  # fmt: skip
    if kind == "bind":
        if not source:
            raise BadParameter(f"invalid mount config for type \"bind\": {name}.Source is "
                               "required")  # fmt: skip
        options = _obj(data.get("BindOptions"), f"{name}.BindOptions")
        propagation = _str(options.get("Propagation"), "BindOptions.Propagation")
        if propagation not in _PROPAGATIONS:
            raise BadParameter(f"invalid {name}.BindOptions.Propagation {propagation!r}")
        mount.propagation = propagation
        mount.nonrecursive = _bool(options.get("NonRecursive"), "BindOptions.NonRecursive")
    elif kind == "volume":
        options = _obj(data.get("VolumeOptions"), f"{name}.VolumeOptions")
        if _str(options.get("Subpath"), "VolumeOptions.Subpath"):
            raise BadParameter(f"{name}.VolumeOptions.Subpath is not supported by cove")
        mount.volume_nocopy = _bool(options.get("NoCopy"), "VolumeOptions.NoCopy")
        mount.volume_labels = _string_map(options.get("Labels"), "VolumeOptions.Labels")
        driver = _obj(options.get("DriverConfig"), "VolumeOptions.DriverConfig")
        mount.volume_driver = _str(driver.get("Name"), "DriverConfig.Name")
        mount.volume_options = _string_map(driver.get("Options"), "DriverConfig.Options")
    else:
        if source:
            raise BadParameter(f"invalid mount config for type \"tmpfs\": {name}.Source must "
                               "not be specified")  # fmt: skip
        options = _obj(data.get("TmpfsOptions"), f"{name}.TmpfsOptions")
        size = _int(options.get("SizeBytes"), "TmpfsOptions.SizeBytes")
        if size < 0:
            raise BadParameter(f"invalid {name}.TmpfsOptions.SizeBytes: negative")
        mount.tmpfs_size = size or None
        mode = _int(options.get("Mode"), "TmpfsOptions.Mode")
        mount.tmpfs_mode = mode or None
    return mount


def _entries(value: object, name: str) -> Iterator[tuple[str, Json]]:
    """The objects of the list `value` (the field `name`), each with its name in messages
    (`name[index]`), checked one at a time."""
    for index, entry in enumerate(_list(value, name)):
        where = f"{name}[{index}]"
        yield where, _obj(entry, where)


def _required(data: Json, key: str, label: str, where: str) -> str:
    """The string `data[key]` (`label.key` in messages), which must not be empty."""
    value = _str(data.get(key), f"{label}.{key}")
    if not value:
        raise BadParameter(f"invalid {where}: {key} is required")
    return value


def _ulimits(value: object) -> list[str]:
    result = []
    for where, data in _entries(value, "HostConfig.Ulimits"):
        name = _required(data, "Name", "Ulimits", where)
        soft = _int(data.get("Soft"), "Ulimits.Soft")
        hard = _int(data.get("Hard"), "Ulimits.Hard")
        result.append(f"{name}={soft}:{hard}")
    return result


def _devices(value: object) -> list[str]:
    result = []
    for where, data in _entries(value, "HostConfig.Devices"):
        host_path = _required(data, "PathOnHost", "Devices", where)
        inside = _str(data.get("PathInContainer"), "Devices.PathInContainer") or host_path
        access = _str(data.get("CgroupPermissions"), "Devices.CgroupPermissions") or "rwm"
        result.append(f"{host_path}:{inside}:{access}")
    return result


def _throttles(value: object, name: str) -> list[str]:
    result = []
    for where, data in _entries(value, name):
        path = _required(data, "Path", name, where)
        result.append(f"{path}:{_int(data.get('Rate'), f'{name}.Rate')}")
    return result


def _tmpfs(value: object) -> list[str]:
    return [f"{path}:{opts}" if opts else path
            for path, opts in _string_map(value, "HostConfig.Tmpfs").items()]  # fmt: skip


def _log_opts(value: object, warnings: list[str]) -> dict[str, str]:
    config = _obj(value, "HostConfig.LogConfig")
    kind = _str(config.get("Type"), "LogConfig.Type")
    opts = _string_map(config.get("Config"), "LogConfig.Config")
    if kind in ("", "json-file"):
        return opts
    if kind in ("local", "none"):
        warnings.append(f"HostConfig.LogConfig.Type {kind!r} is not supported: the container "
                        "logs with json-file")  # fmt: skip
        return {}
    raise BadParameter(f"HostConfig.LogConfig.Type {kind!r} is not supported by cove "
                       "(json-file only)")  # fmt: skip


def _size(value: object, name: str) -> int | None:
    """A byte count where 0 means unset (Docker's)."""
    number = _int(value, name)
    if number < -1:
        raise BadParameter(f"invalid {name}: {number}")
    return number or None


def _nano_cpus(value: object) -> str | None:
    nano = _int(value, "HostConfig.NanoCpus")
    if nano < 0:
        raise BadParameter(f"invalid HostConfig.NanoCpus: {nano}")
    return f"{nano / 1e9:.9g}" if nano else None


def _network(host: Json, networking: Json, config: Json, options: CreateOptions,
             warnings: list[str]) -> None:  # fmt: skip
    mode = _str(host.get("NetworkMode"), "HostConfig.NetworkMode")
    if _bool(config.get("NetworkDisabled"), "NetworkDisabled"):
        mode = "none"
    endpoints = _obj(networking.get("EndpointsConfig"), "NetworkingConfig.EndpointsConfig")
    named = [key for key in endpoints if key not in DEFAULT_NETWORKS]
    if mode in ("", "default") and named:
        mode = named[0]  # a create that names networks and no mode: the first of them
    mode = "bridge" if mode in ("", "default") else mode
    options.network = mode
    for key, value in endpoints.items():
        name = f"NetworkingConfig.EndpointsConfig[{key}]"
        endpoint = _obj(value, name)
        ipam = _obj(endpoint.get("IPAMConfig"), f"{name}.IPAMConfig")
        address = _str(ipam.get("IPv4Address"), f"{name}.IPAMConfig.IPv4Address")
        if _str(ipam.get("IPv6Address"), "IPv6Address"):
            raise BadParameter(f"{name}.IPAMConfig.IPv6Address is not supported by cove (IPv4 "
                               "only)")  # fmt: skip
        aliases = _strings(endpoint.get("Aliases"), f"{name}.Aliases")
        if key == mode or (mode == "bridge" and key in DEFAULT_NETWORKS):
            options.ip, options.network_aliases = address, aliases
        else:  # another network (API 1.44): connected at every start, as `network connect`
            if address:
                raise BadParameter(f"{name}.IPAMConfig.IPv4Address: cove gives a chosen "
                                   f"address on the first network only ({mode})")  # fmt: skip
            options.connect.append({"network": key, "aliases": aliases})
        if _strings(endpoint.get("Links"), f"{name}.Links"):
            raise BadParameter(f"{name}.Links is not supported by cove: legacy links")
        mac = _str(endpoint.get("MacAddress"), f"{name}.MacAddress")
        if mac and key != mode and not (mode == "bridge" and key in DEFAULT_NETWORKS):
            raise BadParameter(f"{name}.MacAddress: cove sets a MAC address on the first "
                               f"network only ({mode})")  # fmt: skip
        options.mac_address = mac or options.mac_address
    if not options.mac_address:
        options.mac_address = _str(config.get("MacAddress"), "MacAddress")  # (before 1.44)


def _optional_int(value: object, name: str) -> int | None:
    return None if value is None else _int(value, name)


def _weight_devices(value: object) -> list[str]:
    """BlkioWeightDevice [{"Path", "Weight"}] as --blkio-weight-device values."""
    found = []
    for index, entry in enumerate(_list(value, "HostConfig.BlkioWeightDevice")):
        item = _obj(entry, f"HostConfig.BlkioWeightDevice[{index}]")
        path = _str(item.get("Path"), f"HostConfig.BlkioWeightDevice[{index}].Path")
        weight = _int(item.get("Weight"), f"HostConfig.BlkioWeightDevice[{index}].Weight")
        found.append(f"{path}:{weight}")
    return found


# --- the whole body ---------------------------------------------------------------------------


def translate(body: object) -> CreateRequest:
    """The create body as the engine's options (BadParameter for what cannot be)."""
    config = _obj(body, "request body")
    host = _obj(config.get("HostConfig"), "HostConfig")
    networking = _obj(config.get("NetworkingConfig"), "NetworkingConfig")
    warnings: list[str] = []
    image = _str(config.get("Image"), "Image")
    if not image:
        raise BadParameter("no image given: Config.Image is required")
    _unsupported(host, warnings)

    entrypoint = _str_slice(config.get("Entrypoint"), "Entrypoint")
    if entrypoint == [""]:
        entrypoint = []  # --entrypoint "": no entrypoint at all
    labels = _string_map(config.get("Labels"), "Labels")
    volumes = _strings(host.get("Binds"), "HostConfig.Binds")
    listed = _list(host.get("Mounts"), "HostConfig.Mounts")
    mounts: list[str | MountOption] = [mount_option(e, i) for i, e in enumerate(listed)]
    tmpfs = _tmpfs(host.get("Tmpfs"))
    covered = {_bind_target(text) for text in volumes}
    covered |= {m.target for m in mounts if isinstance(m, MountOption)}
    covered |= {text.split(":", 1)[0] for text in tmpfs}
    # Config.Volumes declares mount points: an anonymous volume where nothing else is
    # mounted (docker-compose sends a named volume's target in both)
    volumes += [str(path) for path in _obj(config.get("Volumes"), "Volumes")
                if str(path).rstrip("/") not in covered and str(path) not in covered]  # fmt: skip
    pids_limit = host.get("PidsLimit")
    oom_kill_disable = host.get("OomKillDisable")
    init = host.get("Init")
    options = CreateOptions(
        cmd=_str_slice(config.get("Cmd"), "Cmd"),
        entrypoint=entrypoint,
        env=_strings(config.get("Env"), "Env"),
        workdir=_str(config.get("WorkingDir"), "WorkingDir"),
        user=_str(config.get("User"), "User"),
        hostname=_str(config.get("Hostname"), "Hostname"),
        domainname=_str(config.get("Domainname"), "Domainname"),
        labels=labels,
        read_only=_bool(host.get("ReadonlyRootfs"), "HostConfig.ReadonlyRootfs"),
        tmpfs=tmpfs,
        volumes=volumes,
        mounts=mounts,
        memory=_size(host.get("Memory"), "HostConfig.Memory"),
        memory_swap=_size(host.get("MemorySwap"), "HostConfig.MemorySwap"),
        memory_reservation=_size(host.get("MemoryReservation"), "HostConfig.MemoryReservation"),
        oom_kill_disable=_bool(oom_kill_disable, "HostConfig.OomKillDisable"),
        cpus=_nano_cpus(host.get("NanoCpus")),
        cpu_shares=_int(host.get("CpuShares"), "HostConfig.CpuShares") or None,
        cpu_quota=_int(host.get("CpuQuota"), "HostConfig.CpuQuota") or None,
        cpu_period=_int(host.get("CpuPeriod"), "HostConfig.CpuPeriod") or None,
        cpuset_cpus=_str(host.get("CpusetCpus"), "HostConfig.CpusetCpus"),
        cpuset_mems=_str(host.get("CpusetMems"), "HostConfig.CpusetMems"),
        pids_limit=_int(pids_limit, "HostConfig.PidsLimit") or None,
        blkio_weight=_int(host.get("BlkioWeight"), "HostConfig.BlkioWeight") or None,
        device_read_bps=_throttles(host.get("BlkioDeviceReadBps"), "HostConfig.BlkioDeviceReadBps"),
        device_write_bps=_throttles(host.get("BlkioDeviceWriteBps"),
                                    "HostConfig.BlkioDeviceWriteBps"),
        device_read_iops=_throttles(host.get("BlkioDeviceReadIOps"),
                                    "HostConfig.BlkioDeviceReadIOps"),
        device_write_iops=_throttles(host.get("BlkioDeviceWriteIOps"),
                                     "HostConfig.BlkioDeviceWriteIOps"),
        devices=_devices(host.get("Devices")),
        cap_add=_strings(host.get("CapAdd"), "HostConfig.CapAdd"),
        cap_drop=_strings(host.get("CapDrop"), "HostConfig.CapDrop"),
        privileged=_bool(host.get("Privileged"), "HostConfig.Privileged"),
        security_opt=_strings(host.get("SecurityOpt"), "HostConfig.SecurityOpt"),
        ulimits=_ulimits(host.get("Ulimits")),
        sysctls=_string_map(host.get("Sysctls"), "HostConfig.Sysctls"),
        shm_size=_size(host.get("ShmSize"), "HostConfig.ShmSize"),
        stop_signal=_str(config.get("StopSignal"), "StopSignal"),
        init=_bool(init, "HostConfig.Init"),
        tty=_bool(config.get("Tty"), "Tty"),
        interactive=_bool(config.get("OpenStdin"), "OpenStdin"),
        publish=publish_specs(host.get("PortBindings")),
        publish_all=_bool(host.get("PublishAllPorts"), "HostConfig.PublishAllPorts"),
        dns=_strings(host.get("Dns"), "HostConfig.Dns"),
        dns_search=_strings(host.get("DnsSearch"), "HostConfig.DnsSearch"),
        dns_options=_strings(host.get("DnsOptions"), "HostConfig.DnsOptions"),
        add_hosts=[_extra_host(h) for h in _strings(host.get("ExtraHosts"),
                                                     "HostConfig.ExtraHosts")],
        group_add=_strings(host.get("GroupAdd"), "HostConfig.GroupAdd"),
        pid=_str(host.get("PidMode"), "HostConfig.PidMode"),
        ipc=_str(host.get("IpcMode"), "HostConfig.IpcMode"),
        uts=_str(host.get("UTSMode"), "HostConfig.UTSMode"),
        cgroupns=_str(host.get("CgroupnsMode"), "HostConfig.CgroupnsMode"),
        cgroup_parent=_str(host.get("CgroupParent"), "HostConfig.CgroupParent"),
        oom_score_adj=_int(host.get("OomScoreAdj"), "HostConfig.OomScoreAdj") or None,
        memory_swappiness=_optional_int(host.get("MemorySwappiness"),
                                        "HostConfig.MemorySwappiness"),
        cpu_rt_period=_int(host.get("CpuRealtimePeriod"), "HostConfig.CpuRealtimePeriod") or None,
        cpu_rt_runtime=_int(host.get("CpuRealtimeRuntime"),
                            "HostConfig.CpuRealtimeRuntime") or None,
        blkio_weight_device=_weight_devices(host.get("BlkioWeightDevice")),
        device_cgroup_rules=_strings(host.get("DeviceCgroupRules"), "HostConfig.DeviceCgroupRules"),
        annotations=_string_map(host.get("Annotations"), "HostConfig.Annotations"),
        volumes_from=_strings(host.get("VolumesFrom"), "HostConfig.VolumesFrom"),
    )  # fmt: skip
    _network(host, networking, config, options, warnings)
    exposed = [port_key(str(key)) for key in _obj(config.get("ExposedPorts"), "ExposedPorts")]
    options.expose = [f"{port}/{protocol}" for port, protocol in exposed]  # (-P takes them too)

    stop_timeout = config.get("StopTimeout")
    settings = ApiRunSettings(
        auto_remove=_bool(host.get("AutoRemove"), "HostConfig.AutoRemove"),
        tty=options.tty,
        stdin=options.interactive,
        log_opts=_log_opts(host.get("LogConfig"), warnings),
        stop_timeout=None if stop_timeout is None else _int(stop_timeout, "StopTimeout"),
        restart_policy=_restart_policy(host.get("RestartPolicy")),
        healthcheck=_healthcheck(config.get("Healthcheck")),
        extra={
            "attach_stdin": _bool(config.get("AttachStdin"), "AttachStdin"),
            "attach_stdout": _bool(config.get("AttachStdout"), "AttachStdout"),
            "attach_stderr": _bool(config.get("AttachStderr"), "AttachStderr"),
            "stdin_once": _bool(config.get("StdinOnce"), "StdinOnce"),
        },
    )
    runtime = _str(host.get("Runtime"), "HostConfig.Runtime") or "cove"
    return CreateRequest(image, options, settings, runtime=runtime, warnings=warnings,
                         console_size=_console_size(host.get("ConsoleSize")))  # fmt: skip


def _console_size(value: object) -> tuple[int, int] | None:
    """HostConfig.ConsoleSize [height, width] (API 1.42+): the -t terminal's size from the
    start ([0, 0] or null: none, the client's resize sets it)."""
    if value is None:
        return None
    sizes = _list(value, "HostConfig.ConsoleSize")
    if len(sizes) != 2:
        raise BadParameter("invalid HostConfig.ConsoleSize: want [height, width]")
    height, width = (_int(v, "HostConfig.ConsoleSize") for v in sizes)
    if height < 0 or width < 0:
        raise BadParameter("invalid HostConfig.ConsoleSize: want [height, width]")
    return (height, width) if height and width else None


def _bind_target(text: str) -> str:
    """The container path of a Binds entry ("SRC:DST[:OPTS]", or "DST" alone)."""
    parts = text.split(":")
    target = parts[1] if len(parts) > 1 else parts[0]
    return target.rstrip("/") or "/"


def _extra_host(text: str) -> str:
    """ "name:ip" as the engine takes it; Docker 25's "name=ip" too."""
    name, sep, address = text.partition("=")
    if sep and ":" not in name:
        return f"{name}:{address}"
    return text


def _restart_policy(value: object) -> dict[str, Any] | None:
    policy = _obj(value, "HostConfig.RestartPolicy")
    if not policy:
        return None
    return {"Name": _str(policy.get("Name"), "RestartPolicy.Name"),
            "MaximumRetryCount": _int(policy.get("MaximumRetryCount"),
                                      "RestartPolicy.MaximumRetryCount")}  # fmt: skip


def _healthcheck(value: object) -> dict[str, Any] | None:
    check = _obj(value, "Healthcheck")
    return dict(check) if check else None


def platform_of(text: str) -> tuple[str, str]:
    """?platform=os[/arch[/variant]] -> (os, arch); "" parts when not given."""
    parts = text.strip().split("/")
    if not text.strip():
        return "", ""
    return parts[0].lower(), (parts[1].lower() if len(parts) > 1 else "")
