"""`docker inspect`'s HostConfig of a container and its Mounts
(`cove.engine.container_inspect`): the create options as Docker's daemon reports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cove.engine.container_inspect_network import port_map
from cove.engine.container_inspect_values import (
    as_int,
    list_or_none,
    nano_cpus,
    optional_int,
    size,
    string_map,
    strings,
)
from cove.engine.create_options import DEFAULT_SHM_SIZE, parse_mount
from cove.engine.state_records import ContainerRecord
from cove.errors import CoveError

_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")

Json = dict[str, Any]


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


def mounts(options: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> list[Json]:
    """Mounts: -v binds, --mount binds, then volumes (Docker lists --tmpfs only in
    HostConfig.Tmpfs)."""
    found = [_volume_mount(v) for v in strings(options.get("volumes"))]
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
    for text in strings(options.get("tmpfs")):
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
        return -1 if value.strip() in ("-1", "unlimited") else as_int(value)

    soft = limit(soft_text)
    return {"Name": name.strip().lower(), "Hard": limit(hard_text) if colon else soft, "Soft": soft}


def _ulimits(options: Mapping[str, Any]) -> list[Json] | None:
    found = [_ulimit(t) for t in strings(options.get("ulimits"))]
    return [u for u in found if u is not None] or None


def _throttles(entries: object, sizes: bool) -> list[Json]:
    """--device-read-bps /dev/sda:1mb and friends as [{Path, Rate}]."""
    result: list[Json] = []
    for text in strings(entries):
        path, _, rate = text.rpartition(":")
        if path:
            result.append({"Path": path, "Rate": size(rate) if sizes else as_int(rate)})
    return result


def _devices(options: Mapping[str, Any]) -> list[Json]:
    result: list[Json] = []
    for text in strings(options.get("devices")):
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
            "MaximumRetryCount": as_int(policy.get("MaximumRetryCount") or 0),
        }
    return {"Name": "no", "MaximumRetryCount": 0}


def _memory(options: Mapping[str, Any]) -> Json:
    memory = size(options.get("memory"))
    swap = size(options.get("memory_swap"))
    if memory > 0 and swap == 0:
        swap = 2 * memory  # the daemon's default: as much swap as memory
    shm = size(options.get("shm_size")) or DEFAULT_SHM_SIZE
    return {
        "Memory": memory,
        "MemorySwap": swap,
        "MemoryReservation": size(options.get("memory_reservation")),
        "MemorySwappiness": optional_int(options.get("memory_swappiness")),
        "OomKillDisable": bool(options.get("oom_kill_disable")),
        "ShmSize": shm,
    }


def _cpu(options: Mapping[str, Any]) -> Json:
    return {
        "NanoCpus": nano_cpus(options.get("cpus")),
        "CpuShares": as_int(options.get("cpu_shares") or 0),
        "CpuQuota": as_int(options.get("cpu_quota") or 0),
        "CpuPeriod": as_int(options.get("cpu_period") or 0),
        "CpuRealtimePeriod": as_int(options.get("cpu_rt_period") or 0),
        "CpuRealtimeRuntime": as_int(options.get("cpu_rt_runtime") or 0),
        "CpusetCpus": str(options.get("cpuset_cpus") or ""),
        "CpusetMems": str(options.get("cpuset_mems") or ""),
        "CpuCount": 0,
        "CpuPercent": 0,
    }


def _block_io(options: Mapping[str, Any]) -> Json:
    return {
        "BlkioWeight": as_int(options.get("blkio_weight") or 0),
        "BlkioWeightDevice": _weight_devices(options.get("blkio_weight_device")),
        "BlkioDeviceReadBps": _throttles(options.get("device_read_bps"), sizes=True),
        "BlkioDeviceWriteBps": _throttles(options.get("device_write_bps"), sizes=True),
        "BlkioDeviceReadIOps": _throttles(options.get("device_read_iops"), sizes=False),
        "BlkioDeviceWriteIOps": _throttles(options.get("device_write_iops"), sizes=False),
        "IOMaximumIOps": 0,
        "IOMaximumBandwidth": 0,
    }


def _annotations(options: Mapping[str, Any]) -> Json:
    given = string_map(options.get("annotations"))
    return {"Annotations": given} if given else {}


def _weight_devices(value: object) -> list[Json]:
    found: list[Json] = []
    for text in strings(value):
        path, _, weight = text.rpartition(":")
        found.append({"Path": path, "Weight": as_int(weight or 0)})
    return found


def _system_paths(spec: Mapping[str, Any] | None) -> Json:
    linux = spec.get("linux") if isinstance(spec, Mapping) else None
    if not isinstance(linux, Mapping):
        return {}
    return {
        key: strings(linux[name])
        for key, name in (("MaskedPaths", "maskedPaths"), ("ReadonlyPaths", "readonlyPaths"))
        if name in linux
    }


def host_config(
    record: ContainerRecord, spec: Mapping[str, Any] | None, extra: Mapping[str, Any]
) -> Json:
    options = record.config
    host: Json = {
        "Binds": list_or_none(options.get("volumes")),
        "ContainerIDFile": "",
        "LogConfig": _log_config(extra),
        "NetworkMode": str(options.get("network") or "none"),
        "PortBindings": port_map(extra.get("port_bindings")),
        "RestartPolicy": _restart_policy(extra),
        "AutoRemove": bool(extra.get("auto_remove", False)),
        "VolumeDriver": "",
        "VolumesFrom": list_or_none(options.get("volumes_from")),
        "CapAdd": list_or_none(options.get("cap_add")),
        "CapDrop": list_or_none(options.get("cap_drop")),
        "Dns": strings(options.get("dns")),
        "DnsOptions": strings(options.get("dns_options")),
        "DnsSearch": strings(options.get("dns_search")),
        "ExtraHosts": list_or_none(options.get("add_hosts")),
        "GroupAdd": list_or_none(options.get("group_add")),
        "IpcMode": str(options.get("ipc") or "private"),
        "Links": None,
        "OomScoreAdj": as_int(options.get("oom_score_adj") or 0),
        "PidMode": str(options.get("pid") or ""),
        "Privileged": bool(options.get("privileged")),
        "PublishAllPorts": bool(options.get("publish_all")),
        "ReadonlyRootfs": bool(options.get("read_only")),
        "SecurityOpt": list_or_none(options.get("security_opt")),
        "Tmpfs": _tmpfs(options),
        "UTSMode": str(options.get("uts") or ""),
        "UsernsMode": "",
        "Runtime": record.runtime,
        "Isolation": "",
        "CgroupParent": str(options.get("cgroup_parent") or ""),
        **({"CgroupnsMode": str(options["cgroupns"])} if options.get("cgroupns") else {}),
        **_memory(options),
        **_cpu(options),
        **_block_io(options),
        "PidsLimit": optional_int(options.get("pids_limit")),
        "Devices": _devices(options),
        "DeviceCgroupRules": list_or_none(options.get("device_cgroup_rules")),
        "DeviceRequests": None,
        "Ulimits": _ulimits(options),
        "Sysctls": string_map(options.get("sysctls")),
        "Init": bool(options.get("init")),
        **_annotations(options),
        **_system_paths(spec),
    }
    host_mounts = _host_mounts(options)
    if host_mounts:
        host["Mounts"] = host_mounts
    return host
