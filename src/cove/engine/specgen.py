"""Image config + `docker run` options -> an OCI runtime spec (config.json), as Docker
builds it.

`generate_spec(image_config, options, rootfs)` is a pure function of its inputs and of
what it reads: the image's own /etc/passwd and /etc/group under `rootfs`, the host devices
named by --device and friends, bind sources, a seccomp profile file, and the host facts
in `HostInfo` (probed when not given). It creates nothing.

Docker's defaults, written down here once:
- capabilities: the 14 of `DEFAULT_CAPABILITIES` in bounding, effective and permitted
  (no inheritable, no ambient), changed by --cap-add/--cap-drop; --privileged gives all;
- the default seccomp profile (`cove.engine.seccomp_default`), rendered for the
  container's capabilities; --privileged and seccomp=unconfined have none;
- masked and read-only /proc and /sys paths (none when privileged);
- mounts: /proc, /dev (tmpfs), /dev/pts, /sys (ro), /sys/fs/cgroup (ro), /dev/mqueue,
  /dev/shm (tmpfs, 64m); a private cgroup namespace only on a cgroup v2 host (Docker's
  "host" cgroupns mode on v1 and hybrid hosts);
- hostname: the short container id; env: PATH (unless the image sets it), HOSTNAME,
  TERM=xterm with a tty, HOME from the image's passwd;
- the device cgroup: deny all, allow the standard character devices and mknod;
- net.ipv4.ip_unprivileged_port_start=0 and ping_group_range in a private network
  namespace;
- rlimits: nofile 1048576, lowered to what the host allows (a warning says so).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cove.engine import seccomp_default, spec_namespaces, spec_resources
from cove.engine.create_options import CreateOptions, parse_signal
from cove.engine.host_dirs import HostDir
from cove.engine.host_info import HostInfo
from cove.engine.spec_mounts import _TMPFS_DEFAULTS as _TMPFS_DEFAULTS
from cove.engine.spec_mounts import _TMPFS_OPPOSITES as _TMPFS_OPPOSITES
from cove.engine.spec_mounts import _bind as _bind
from cove.engine.spec_mounts import _bind_source as _bind_source
from cove.engine.spec_mounts import _default_mounts as _default_mounts
from cove.engine.spec_mounts import _destination as _destination
from cove.engine.spec_mounts import _is_set as _is_set
from cove.engine.spec_mounts import _mount_flag as _mount_flag
from cove.engine.spec_mounts import _mounts as _mounts
from cove.engine.spec_mounts import _tmpfs as _tmpfs
from cove.engine.spec_mounts import _tmpfs_flag as _tmpfs_flag
from cove.engine.spec_mounts import _under as _under
from cove.engine.spec_mounts import _volume_flag as _volume_flag
from cove.engine.users import ExecUser, resolve_user
from cove.errors import InvalidArgument
from cove.image.image_config import ExecutionConfig, ImageConfig
from cove.runtime.capabilities import CAPABILITY_NAMES

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip
MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)  # fmt: skip
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
DEFAULT_SYSCTLS = {
    "net.ipv4.ip_unprivileged_port_start": "0",
    "net.ipv4.ping_group_range": "0 2147483647",
}
# On /dev (the runtime's tmpfs), as podman's /dev/init: a read-only root or an image whose
# /sbin is read-only host userland (bootstrap --from-host) has no room for it elsewhere.
INIT_PATH = "/dev/cove-init"
STOP_SIGNAL_ANNOTATION = "org.opencontainers.image.stopSignal"
# --network: these, a user network's name or id, or container:NAME (its namespace's path is
# `network_namespace`); bridge and user networks get a namespace of their own, as none does.
NETWORK_MODES = ("bridge", "none", "host")
_NETWORK_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
CONTAINER_NETWORK = "container:"

# Sysctls a container may set (they are per namespace): Docker's list.
_IPC_SYSCTLS = frozenset(
    "kernel.msgmax kernel.msgmnb kernel.msgmni kernel.sem kernel.shmall kernel.shmmax "
    "kernel.shmmni kernel.shm_rmid_forced".split()
)
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?")


@dataclass
class GeneratedSpec:
    """What `generate_spec` returns: the spec and what the engine still has to act on.

    `volumes`: the image's VOLUME paths that no mount covers (anonymous volumes: the engine
    creates them, and they are in the spec when it passed their folders). `init`: --init was
    asked for (when an init binary was given it is already in the spec as process.args[0]).
    """

    spec: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    stop_signal: str = "SIGTERM"
    init: bool = False
    user: ExecUser = field(default_factory=lambda: ExecUser(0, 0))
    volumes: list[str] = field(default_factory=list)


# The version engine specs claim: every runtime of --runtime must accept it (crun 1.8
# refuses versions it does not know, such as 1.2.0; all the fields used exist in 1.0.2).
ENGINE_SPEC_VERSION = "1.0.2"


def generate_spec(
    image_config: ImageConfig | ExecutionConfig | None,
    options: CreateOptions,
    rootfs: str,
    *,
    container_id: str = "",
    image_name: str = "",
    host: HostInfo | None = None,
    init_binary: str | None = None,
    cgroups_path: str | None = None,
    volumes: Mapping[str, str] | None = None,
    network_namespace: str = "",
    etc_dir: str = "",
    host_dirs: Sequence[HostDir] | None = None,
    joined_namespaces: Mapping[str, str] | None = None,
    shm_source: str = "",
) -> GeneratedSpec:
    """The OCI runtime spec for `docker run IMAGE` with `options` over `rootfs`. `volumes`:
    the host folders of the volumes the engine prepared, by volume name and, for anonymous
    volumes, by destination (`cove.engine.spec_mounts.volume_requests` lists them).
    `network_namespace`: with --network container:NAME, the path of NAME's namespace;
    `joined_namespaces` the same for --pid/--ipc container:NAME ({"pid": path});
    `shm_source`: the host folder bound at /dev/shm (`cove.engine.spec_namespaces`).
    `etc_dir`: the folder whose hosts, hostname and resolv.conf are bound over the image's
    /etc ones (as Docker does; see `cove.engine.network.hosts`). `host_dirs`: the image's
    host folders as the engine prepared them (`cove.engine.host_dirs`); without them, the
    read-only binds of the image's label."""
    if isinstance(image_config, ImageConfig):
        execution = image_config.config
    else:
        execution = image_config or ExecutionConfig()
    host = host or HostInfo.probe()
    image = image_name or "the image"
    warnings: list[str] = []

    network = options.network or "bridge"
    joined = network.startswith(CONTAINER_NETWORK)
    target = network[len(CONTAINER_NETWORK) :] if joined else network
    if network not in NETWORK_MODES and not _NETWORK_NAME_RE.fullmatch(target):
        raise InvalidArgument(
            f"invalid value '{network}' for flag --network: want bridge, host, none, a network's"
            " name or container:NAME"
        )

    spec_namespaces.check_modes(options)
    args = _process_args(execution, options, image)
    hostname = _hostname(options, container_id, network, host)
    user = resolve_user(rootfs, options.user or execution.user, image)
    env = _environment(execution, options, hostname, user)
    cwd = _workdir(execution, options)
    stop_signal = parse_signal(options.stop_signal or execution.stop_signal or "SIGTERM",
                               "--stop-signal")  # fmt: skip

    seccomp_setting, no_new_privileges, system_paths_unconfined = _security_opts(options, warnings)
    caps = _capabilities(options, host, warnings)
    privileged = options.privileged

    mounts, image_volumes = _mounts(execution, options, host, privileged, volumes, host_dirs)
    spec_namespaces.shm_mount(options, mounts, shm_source)
    if etc_dir:
        from cove.engine.network.hosts import mounts_for

        taken = {m["destination"] for m in mounts}
        mounts += [m for m in mounts_for(Path(etc_dir), options.read_only)
                   if m["destination"] not in taken]  # fmt: skip
    if options.init and init_binary:
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": init_binary,
                       "options": ["rbind", "ro", "rprivate"]})  # fmt: skip
        args = [INIT_PATH, "--", *args]

    resources: dict[str, Any] = {}
    device_nodes, device_rules = spec_resources.devices(options, host)
    resources["devices"] = (spec_resources.default_device_rules() + device_rules
                            + spec_resources.device_cgroup_rules(options))  # fmt: skip
    for key, part in (
        ("memory", spec_resources.memory(options, host, warnings)),
        ("cpu", spec_resources.cpu(options, host, warnings)),
        ("pids", spec_resources.pids(options)),
        ("blockIO", spec_resources.block_io(options, host)),
    ):
        if part:
            resources[key] = part

    namespaces = spec_namespaces.namespaces(options, network, network_namespace, host,
                                            joined_namespaces or {})  # fmt: skip
    linux: dict[str, Any] = {"namespaces": namespaces, "resources": resources}
    if device_nodes:
        linux["devices"] = device_nodes
    if cgroups_path is not None:
        linux["cgroupsPath"] = cgroups_path
    elif container_id:
        linux["cgroupsPath"] = f"{_cgroup_parent(options)}/{container_id}"
    sysctls = _sysctls(options, network)
    if sysctls:
        linux["sysctl"] = sysctls
    if privileged or system_paths_unconfined:
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
    else:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    if not privileged and seccomp_setting != "unconfined":
        if seccomp_setting is None:
            linux["seccomp"] = seccomp_default.default_profile(caps, host.machine, host.kernel)
        else:
            linux["seccomp"] = _seccomp_file(seccomp_setting, caps, host)

    process_user: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
    additional_gids = list(user.additional_gids)
    for gid in _group_add(rootfs, options.group_add, image):
        if gid not in additional_gids:
            additional_gids.append(gid)
    if additional_gids:
        process_user["additionalGids"] = additional_gids
    process: dict[str, Any] = {
        "terminal": options.tty,
        "user": process_user,
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": list(caps), "effective": list(caps),
                         "permitted": list(caps)},
        "rlimits": spec_resources.rlimits(options, host, warnings),
        "noNewPrivileges": no_new_privileges,
    }  # fmt: skip
    if options.oom_score_adj is not None:
        if not -1000 <= options.oom_score_adj <= 1000:
            raise InvalidArgument(f"invalid value '{options.oom_score_adj}' for flag "
                                  "--oom-score-adj: the range is -1000 to 1000")  # fmt: skip
        process["oomScoreAdj"] = options.oom_score_adj

    annotations = {**execution.labels, **options.labels, **options.annotations}
    annotations[STOP_SIGNAL_ANNOTATION] = stop_signal
    own_uts = spec_namespaces.mode_of(options, "uts") != "host"
    spec = {
        "ociVersion": ENGINE_SPEC_VERSION,
        "process": process,
        "root": {"path": rootfs, "readonly": options.read_only},
        **({"hostname": hostname} if own_uts else {}),
        **({"domainname": options.domainname} if options.domainname else {}),
        "mounts": mounts,
        "annotations": annotations,
        "linux": linux,
    }
    return GeneratedSpec(
        spec=spec,
        warnings=warnings,
        stop_signal=stop_signal,
        init=options.init,
        user=user,
        volumes=image_volumes,
    )


# --- process -----------------------------------------------------------------------------


def _group_add(rootfs: str, groups: list[str], image: str) -> list[int]:
    """--group-add: gids, or group names looked up in the image's /etc/group."""
    from cove.engine.users import parse_group, read_image_file

    found: list[int] = []
    entries = None
    for group in groups:
        text = group.strip()
        if text.isdigit():
            found.append(int(text))
            continue
        if entries is None:
            content = read_image_file(rootfs, "/etc/group")
            entries = parse_group(content) if content is not None else []
        gid = next((entry.gid for entry in entries if entry.name == text), None)
        if gid is None:
            raise InvalidArgument(
                f"invalid value '{group}' for flag --group-add: unable to find group "
                f"{text!r} in {image}"
            )
        found.append(gid)
    return found


def _process_args(execution: ExecutionConfig, options: CreateOptions, image: str) -> list[str]:
    """Docker's rules: --entrypoint replaces the image's entrypoint and drops its Cmd;
    arguments after the image replace the Cmd."""
    if options.entrypoint is not None:
        entrypoint = list(options.entrypoint)
        cmd = list(options.cmd) if options.cmd else []
    else:
        entrypoint = list(execution.entrypoint or ())
        cmd = list(options.cmd) if options.cmd else list(execution.cmd or ())
    args = entrypoint + cmd
    if not args or not args[0]:
        raise InvalidArgument(f"no command specified: {image} has no Cmd or Entrypoint")
    return args


def _cgroup_parent(options: CreateOptions) -> str:
    """--cgroup-parent (default /cove) as an absolute cgroup path, checked."""
    given = options.cgroup_parent.strip()
    if not given:
        return "/cove"
    parts = [part for part in given.split("/") if part]
    if not parts or any(part in (".", "..") for part in parts) or given.endswith(".slice"):
        raise InvalidArgument(f"invalid value '{given}' for flag --cgroup-parent: want a "
                              "cgroup path such as /batch or apps/web (systemd slices are not "
                              "supported: cove manages cgroupfs paths)")  # fmt: skip
    return "/" + "/".join(parts)


def _hostname(options: CreateOptions, container_id: str, network: str, host: HostInfo) -> str:
    if options.hostname:
        if not _HOSTNAME_RE.fullmatch(options.hostname):
            raise InvalidArgument(
                f"invalid value '{options.hostname}' for flag --hostname: not a valid hostname"
            )
        return options.hostname
    if network == "host" or spec_namespaces.mode_of(options, "uts") == "host":
        return host.hostname
    return container_id[:12] if container_id else "localhost"


def _env_name(entry: str, flag: str) -> str:
    name = entry.split("=", 1)[0]
    if not name or any(c.isspace() for c in name):
        raise InvalidArgument(f"invalid value '{entry}' for flag {flag}: invalid variable name")
    return name


def _merge_env(env: list[str], entries: list[str] | tuple[str, ...], flag: str) -> None:
    """Docker's ReplaceOrAppendEnvValues: NAME=value replaces or appends; a bare NAME
    removes NAME."""
    for entry in entries:
        name = _env_name(entry, flag)
        index = next((i for i, e in enumerate(env) if e.split("=", 1)[0] == name), None)
        if "=" not in entry:
            if index is not None:
                del env[index]
            continue
        if index is None:
            env.append(entry)
        else:
            env[index] = entry


def _environment(
    execution: ExecutionConfig, options: CreateOptions, hostname: str, user: ExecUser
) -> list[str]:
    env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if options.tty:
        env.append("TERM=xterm")
    _merge_env(env, execution.env, "Env (image)")
    _merge_env(env, options.env_file, "--env-file")
    _merge_env(env, options.env, "--env")
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home or '/'}")
    return env


def _workdir(execution: ExecutionConfig, options: CreateOptions) -> str:
    if options.workdir:
        if not options.workdir.startswith("/"):
            raise InvalidArgument(
                f"invalid value '{options.workdir}' for flag --workdir: it must be an absolute path"
            )
        return posixpath.normpath(options.workdir)
    if execution.working_dir:
        return posixpath.normpath("/" + execution.working_dir.lstrip("/"))
    return "/"


# --- security ----------------------------------------------------------------------------


def _security_opts(options: CreateOptions, warnings: list[str]) -> tuple[str | None, bool, bool]:
    """(seccomp: None = default, "unconfined" or a file/JSON, no_new_privileges,
    systempaths=unconfined)."""
    seccomp: str | None = None
    no_new_privileges = False
    system_paths = False
    for text in options.security_opt:
        key, sep, value = text.partition("=")
        if not sep:
            key, sep, value = text.partition(":")
        key = key.strip().lower()
        if key == "seccomp" and value:
            seccomp = "unconfined" if value == "unconfined" else value
        elif key == "no-new-privileges":
            if not sep or value.lower() in ("true", "1", "yes"):
                no_new_privileges = True
            elif value.lower() in ("false", "0", "no"):
                no_new_privileges = False
            else:
                raise InvalidArgument(
                    f"invalid value '{text}' for flag --security-opt: "
                    "no-new-privileges takes true or false"
                )
        elif key == "systempaths" and value == "unconfined":
            system_paths = True
        elif key in ("label", "apparmor") and value:
            warnings.append(f"--security-opt {text}: cove has no SELinux/AppArmor support; ignored")
        else:
            raise InvalidArgument(
                f"invalid value '{text}' for flag --security-opt: expected seccomp=FILE|unconfined"
                " or no-new-privileges[=true|false]"
            )
    return seccomp, no_new_privileges, system_paths


def _cap_name(name: str, flag: str) -> str:
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    full = upper if upper.startswith("CAP_") else "CAP_" + upper
    if full not in CAPABILITY_NAMES:
        raise InvalidArgument(f"invalid value '{name}' for flag {flag}: unknown capability")
    return full


def _capabilities(options: CreateOptions, host: HostInfo, warnings: list[str]) -> list[str]:
    """Docker's rules: defaults + add - drop; drop ALL keeps only what is added; add ALL
    gives everything but what is dropped; --privileged gives everything."""
    adds = [_cap_name(n, "--cap-add") for n in options.cap_add]
    drops = [_cap_name(n, "--cap-drop") for n in options.cap_drop]
    available = [name for name in CAPABILITY_NAMES if name in host.capabilities]
    if options.privileged:
        return available
    if "ALL" in drops:
        caps = [name for name in adds if name != "ALL"]
        if "ALL" in adds:
            caps = list(available)
    elif "ALL" in adds:
        caps = [name for name in available if name not in drops]
    else:
        caps = [name for name in DEFAULT_CAPABILITIES if name not in drops]
        caps += [name for name in adds if name not in caps and name not in drops]
    result = []
    for name in caps:
        if name in result:
            continue
        if name not in host.capabilities:
            if name in adds:
                raise InvalidArgument(
                    f"invalid value '{name.removeprefix('CAP_')}' for flag --cap-add: the engine"
                    f" itself lacks {name}, so it cannot give it to a container"
                )
            warnings.append(f"{name} left out: the engine itself lacks it")
            continue
        result.append(name)
    return result


def _seccomp_file(setting: str, caps: list[str], host: HostInfo) -> dict[str, Any]:
    """--security-opt seccomp=FILE (or the JSON text, which is what Docker's CLI sends)."""
    if setting.lstrip().startswith("{"):
        text, source = setting, "<json>"
    else:
        source = setting
        try:
            with open(setting) as file:
                text = file.read()
        except OSError as exc:
            raise InvalidArgument(
                f"invalid value 'seccomp={setting}' for flag --security-opt: "
                f"cannot read it: {exc.strerror or exc}"
            ) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(
            f"invalid value 'seccomp={source}' for flag --security-opt: not JSON: {exc}"
        ) from None
    return seccomp_default.render_file_profile(data, caps, source, host.machine, host.kernel)


def _sysctls(options: CreateOptions, network: str) -> dict[str, str]:
    shared = network == "host" or network.startswith(CONTAINER_NETWORK)
    out = dict(DEFAULT_SYSCTLS) if not shared else {}
    for name, value in options.sysctls.items():
        text = f"{name}={value}"
        if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
            pass
        elif name.startswith("net."):
            if shared:
                raise InvalidArgument(
                    f"invalid value '{text}' for flag --sysctl: net.* sysctls cannot be set with"
                    f" --network {network} (they would change the host or another container)"
                )
        elif name == "kernel.domainname":
            pass
        elif name == "kernel.hostname":
            raise InvalidArgument(
                f"invalid value '{text}' for flag --sysctl: use --hostname to set the hostname"
            )
        else:
            raise InvalidArgument(
                f"invalid value '{text}' for flag --sysctl: {name} is not namespaced, a "
                "container may not set it"
            )
        out[name] = str(value)
    return out
