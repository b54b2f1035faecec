"""The `docker run`/`docker create` flags that shape a container's runtime spec, and the
parsers of their value syntaxes (sizes, `--mount`, `--ulimit`, ...).

`CreateOptions` holds values as the CLI (or the API) received them: strings where Docker
takes strings (`--memory 512m`, `--cpus 1.5`), already split lists where a flag repeats.
Checking and converting them is `cove.engine.specgen`'s job, so that the CLI and the
REST API give the same one-line errors. Every parser here raises `InvalidArgument` with
a message that names the flag and the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cove.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SHM_SIZE = 64 * 1024 * 1024


@dataclass
class MountOption:
    """One `--mount` (Docker's HostConfig.Mounts entry): type bind, tmpfs or volume (`source`
    a volume name, "" for an anonymous volume)."""

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    propagation: str = ""  # bind: rprivate (default), private, rshared, shared, rslave, slave
    nonrecursive: bool = False  # bind: "bind" instead of "rbind"
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None
    volume_nocopy: bool = False  # volume: do not copy the image's files into a new volume
    volume_driver: str = ""  # volume: only "local"
    volume_labels: dict[str, str] = field(default_factory=dict)  # volume-label=K=V, if created
    volume_options: dict[str, str] = field(default_factory=dict)  # volume-opt=K=V, if created


@dataclass
class CreateOptions:
    """The subset of `docker run/create` flags that affect the OCI spec.

    `entrypoint`: None keeps the image's; a list (even empty: `--entrypoint ""`) replaces
    it and, as in Docker, drops the image's Cmd unless `cmd` is given. `cmd`: None or []
    keeps the image's Cmd. `env`: "NAME=value" entries (a bare "NAME" unsets NAME);
    `env_file` entries come first, `env` overrides them. Sizes and CPU counts are strings
    as on the command line (`"512m"`, `"1.5"`); ints are accepted too.
    """

    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    env: list[str] = field(default_factory=list)
    env_file: list[str] = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    hostname: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    read_only: bool = False
    tmpfs: list[str] = field(default_factory=list)  # "/path[:opt,opt...]"
    volumes: list[str] = field(default_factory=list)  # -v "src:dst[:opts]", "name:dst", "dst"
    mounts: list[str | MountOption] = field(default_factory=list)  # --mount
    memory: str | int | None = None
    memory_swap: str | int | None = None
    memory_reservation: str | int | None = None
    oom_kill_disable: bool = False
    cpus: str | float | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset_cpus: str = ""
    cpuset_mems: str = ""
    pids_limit: int | None = None
    blkio_weight: int | None = None
    device_read_bps: list[str] = field(default_factory=list)  # "path:rate"
    device_write_bps: list[str] = field(default_factory=list)
    device_read_iops: list[str] = field(default_factory=list)
    device_write_iops: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)  # "/dev/x[:/dev/y][:rwm]"
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    privileged: bool = False
    security_opt: list[str] = field(default_factory=list)
    ulimits: list[str] = field(default_factory=list)  # "nofile=1024[:2048]"
    sysctls: dict[str, str] = field(default_factory=dict)
    shm_size: str | int | None = None
    stop_signal: str = ""
    init: bool = False
    tty: bool = False
    interactive: bool = False
    network: str = "bridge"  # bridge | NAME (a user network) | host | none | container:NAME
    publish: list[str] = field(default_factory=list)  # -p "[IP:][HOSTPORT:]PORT[/PROTO]"
    publish_all: bool = False  # -P: every EXPOSEd port on a free host port
    expose: list[str] = field(default_factory=list)  # --expose "PORT[-PORT][/PROTO]"
    ip: str = ""  # --ip (user networks only)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    add_hosts: list[str] = field(default_factory=list)  # --add-host "NAME:IP"
    network_aliases: list[str] = field(default_factory=list)
    # networks after the first (user networks only), {"network": NAME, "aliases": [...]}:
    # connected at every start, as `network connect` would (settings["connected"])
    connect: list[dict[str, Any]] = field(default_factory=list)
    group_add: list[str] = field(default_factory=list)  # --group-add: group names or gids
    domainname: str = ""  # the API's Config.Domainname (the UTS domain name)
    # namespaces: "" is the container's own; "host"; "container:NAME" (pid, ipc)
    pid: str = ""
    ipc: str = ""  # also "private", "shareable" (its own), "none" (no /dev/shm)
    uts: str = ""
    cgroupns: str = ""  # "" (Docker's default for the host), "private" or "host"
    cgroup_parent: str = ""  # the cgroup the container's goes under (default /cove)
    oom_score_adj: int | None = None
    memory_swappiness: int | None = None  # 0-100 (cgroup v1); None or -1: the kernel's
    cpu_rt_period: int | None = None  # microseconds (cgroup v1, CONFIG_RT_GROUP_SCHED)
    cpu_rt_runtime: int | None = None
    blkio_weight_device: list[str] = field(default_factory=list)  # "/dev/x:WEIGHT"
    device_cgroup_rules: list[str] = field(default_factory=list)  # "c 1:3 rwm"
    annotations: dict[str, str] = field(default_factory=dict)  # the OCI spec's
    volumes_from: list[str] = field(default_factory=list)  # "CONTAINER[:ro|:rw]"
    mac_address: str = ""  # the container's MAC on its first network


# --- sizes -------------------------------------------------------------------------------

_SIZE_RE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?(i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_bytes(value: str | int, flag: str) -> int:
    """Docker's RAMInBytes: "512m", "1.5g", "1024", "10kb" (binary units) -> bytes."""
    if isinstance(value, bool):
        raise InvalidArgument(f"invalid value {value!r} for flag {flag}: not a size")
    if isinstance(value, int):
        if value < 0:
            raise InvalidArgument(f"invalid value '{value}' for flag {flag}: negative size")
        return value
    text = value.strip()
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise InvalidArgument(
            f"invalid value '{value}' for flag {flag}: expected a size such as 512m or 1g"
        )
    number, unit, _suffix = match.groups()
    return int(float(number) * _UNITS[(unit or "").lower()])


def parse_signal(value: str, flag: str) -> str:
    """A signal name ("SIGTERM", "term") or number ("15") -> its name "SIGTERM"."""
    import signal

    text = value.strip()
    if text.isdigit():
        try:
            return signal.Signals(int(text)).name
        except ValueError:
            raise InvalidArgument(
                f"invalid value '{value}' for flag {flag}: no such signal"
            ) from None
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN") or name.startswith("SIGRTMAX"):
        return name  # SIGRTMIN+3 and the like: kill(1) knows them, signal.Signals does not
    if name not in signal.Signals.__members__:
        raise InvalidArgument(f"invalid value '{value}' for flag {flag}: no such signal")
    return name


# --- --mount -------------------------------------------------------------------------------

_TRUE = ("", "1", "true", "yes")
_FALSE = ("0", "false", "no")
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


def _flag_bool(key: str, value: str | None, text: str) -> bool:
    if value is None or value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise InvalidArgument(f"invalid value {text!r} for flag --mount: {key} must be true or false")


def parse_mount(text: str) -> MountOption:
    """`--mount type=bind,source=/a,target=/b,readonly` (CSV of key[=value]) -> MountOption."""
    kind = "volume"  # Docker's default type
    fields: dict[str, str | None] = {}
    repeated: dict[str, dict[str, str]] = {"volume-label": {}, "volume-opt": {}}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, raw = item.partition("=")
        key = name.strip().lower()
        if key in repeated:
            inner, _, inner_value = raw.strip().partition("=")
            if not sep or not inner:
                raise InvalidArgument(
                    f"invalid value {text!r} for flag --mount: {key} takes KEY=VALUE"
                )
            repeated[key][inner] = inner_value
            fields.setdefault(key, None)
            continue
        fields[key] = raw.strip() if sep else None
    if "type" in fields:
        kind = fields.pop("type") or ""
    mount = MountOption(type=kind, target="")
    for key, value in fields.items():
        if key in ("source", "src"):
            mount.source = value or ""
        elif key in ("target", "destination", "dst"):
            mount.target = value or ""
        elif key in ("readonly", "ro"):
            mount.read_only = _flag_bool(key, value, text)
        elif key == "bind-propagation":
            if value not in PROPAGATIONS:
                raise InvalidArgument(
                    f"invalid value {text!r} for flag --mount: bind-propagation must be one of "
                    + ", ".join(PROPAGATIONS)
                )
            mount.propagation = value or ""
        elif key == "bind-nonrecursive":
            mount.nonrecursive = _flag_bool(key, value, text)
        elif key == "tmpfs-size":
            mount.tmpfs_size = parse_bytes(value or "", "--mount tmpfs-size")
        elif key == "tmpfs-mode":
            try:
                mount.tmpfs_mode = int(value or "", 8)
            except ValueError:
                raise InvalidArgument(
                    f"invalid value {text!r} for flag --mount: tmpfs-mode must be octal"
                ) from None
        elif key == "volume-nocopy":
            mount.volume_nocopy = _flag_bool(key, value, text)
        elif key == "volume-driver":
            mount.volume_driver = value or ""
        elif key == "volume-label":
            mount.volume_labels = repeated[key]
        elif key == "volume-opt":
            mount.volume_options = repeated[key]
        elif key == "consistency":
            continue  # Docker Desktop's hint; nothing to do on Linux
        else:
            raise InvalidArgument(f"invalid value {text!r} for flag --mount: unknown key {key!r}")
    if mount.type not in ("bind", "tmpfs", "volume"):
        raise InvalidArgument(f"invalid value {text!r} for flag --mount: unknown type {kind!r}")
    for prefix, kind_for in (("bind-", "bind"), ("tmpfs-", "tmpfs"), ("volume-", "volume")):
        extra = [key for key in fields if key.startswith(prefix)]
        if extra and mount.type != kind_for:
            raise InvalidArgument(
                f"invalid value {text!r} for flag --mount: {extra[0]} cannot be used with"
                f" type={mount.type}"
            )
    if not mount.target:
        raise InvalidArgument(f"invalid value {text!r} for flag --mount: target is required")
    if mount.type == "bind" and not mount.source:
        raise InvalidArgument(f"invalid value {text!r} for flag --mount: source is required")
    if mount.type == "tmpfs" and mount.source:
        raise InvalidArgument(f"invalid value {text!r} for flag --mount: tmpfs takes no source")
    return mount
