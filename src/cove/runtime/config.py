"""The OCI spec converted once into what the runtime acts on.

`ContainerConfig.from_spec` turns option strings into mount flags, namespace types into
clone flags and rlimit names into numbers, and rejects what cannot work, before anything
is created. The rest of the runtime reads only this.
"""

from __future__ import annotations

import os
import resource

from cove.errors import InvalidSpec
from cove.oci.data import Data
from cove.oci.resources import LinuxResources, check_known, parse_resources
from cove.oci.runtime_spec import Device, Hooks, IDMapping, Process, Spec, TimeOffset
from cove.runtime import capabilities
from cove.sys import constants as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.seccomp import SeccompProfile
    from cove.runtime.capabilities import CapabilitySets

# Mount options that set (True) or clear (False) a flag; anything else is fs data.
_MOUNT_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (False, c.MS_SYNCHRONOUS),
    "atime": (False, c.MS_NOATIME),
    "bind": (True, c.MS_BIND),
    "defaults": (True, 0),
    "dev": (False, c.MS_NODEV),
    "diratime": (False, c.MS_NODIRATIME),
    "dirsync": (True, c.MS_DIRSYNC),
    "exec": (False, c.MS_NOEXEC),
    "lazytime": (True, c.MS_LAZYTIME),
    "mand": (True, c.MS_MANDLOCK),
    "noatime": (True, c.MS_NOATIME),
    "nodev": (True, c.MS_NODEV),
    "nodiratime": (True, c.MS_NODIRATIME),
    "noexec": (True, c.MS_NOEXEC),
    "nolazytime": (False, c.MS_LAZYTIME),
    "nomand": (False, c.MS_MANDLOCK),
    "norelatime": (False, c.MS_RELATIME),
    "nostrictatime": (False, c.MS_STRICTATIME),
    "nosuid": (True, c.MS_NOSUID),
    "nosymfollow": (True, c.MS_NOSYMFOLLOW),
    "rbind": (True, c.MS_BIND | c.MS_REC),
    "relatime": (True, c.MS_RELATIME),
    "remount": (True, c.MS_REMOUNT),
    "ro": (True, c.MS_RDONLY),
    "rw": (False, c.MS_RDONLY),
    "silent": (True, c.MS_SILENT),
    "loud": (False, c.MS_SILENT),
    "strictatime": (True, c.MS_STRICTATIME),
    "suid": (False, c.MS_NOSUID),
    "sync": (True, c.MS_SYNCHRONOUS),
}

PROPAGATION_FLAGS: dict[str, int] = {
    "private": c.MS_PRIVATE,
    "rprivate": c.MS_PRIVATE | c.MS_REC,
    "shared": c.MS_SHARED,
    "rshared": c.MS_SHARED | c.MS_REC,
    "slave": c.MS_SLAVE,
    "rslave": c.MS_SLAVE | c.MS_REC,
    "unbindable": c.MS_UNBINDABLE,
    "runbindable": c.MS_UNBINDABLE | c.MS_REC,
}

# Options runc accepts that change nothing for the kernel mount call.
_IGNORED_OPTIONS = frozenset({"tmpcopyup", "nocopyup", "copyup", "private-label"})


def known_mount_options() -> set[str]:
    return set(_MOUNT_FLAGS) | set(_IGNORED_OPTIONS)


class MountEntry(Data):
    __slots__ = ("data", "destination", "flags", "fstype", "propagation", "source")

    def __init__(
        self,
        source: str,
        destination: str,
        fstype: str,
        flags: int,
        data: str,
        propagation: tuple[int, ...] = (),
    ) -> None:
        self.source = source
        self.destination = destination
        self.fstype = fstype
        self.flags = flags
        self.data = data
        self.propagation = propagation

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & c.MS_BIND)


class ProcessConfig(Data):
    __slots__ = (
        "additional_gids",
        "apparmor_profile",
        "args",
        "capabilities",
        "console_size",
        "cwd",
        "env",
        "gid",
        "no_new_privileges",
        "oom_score_adj",
        "rlimits",
        "selinux_label",
        "terminal",
        "uid",
        "umask",
    )

    def __init__(
        self,
        args: tuple[str, ...],
        env: tuple[str, ...],
        cwd: str,
        uid: int,
        gid: int,
        additional_gids: tuple[int, ...],
        umask: int | None,
        terminal: bool,
        console_size: tuple[int, int] | None,
        rlimits: tuple[tuple[int, int, int], ...],
        no_new_privileges: bool,
        oom_score_adj: int | None,
        capabilities: CapabilitySets | None = None,
        apparmor_profile: str = "",
        selinux_label: str = "",
    ) -> None:
        self.apparmor_profile = apparmor_profile
        self.selinux_label = selinux_label
        self.capabilities = capabilities
        self.args = args
        self.env = env
        self.cwd = cwd
        self.uid = uid
        self.gid = gid
        self.additional_gids = additional_gids
        self.umask = umask
        self.terminal = terminal
        self.console_size = console_size
        self.rlimits = rlimits
        self.no_new_privileges = no_new_privileges
        self.oom_score_adj = oom_score_adj


class ContainerConfig(Data):
    __slots__ = (
        "annotations",
        "bundle",
        "cgroups_path",
        "devices",
        "domainname",
        "gid_mappings",
        "hooks",
        "hostname",
        "id",
        "join_namespaces",
        "masked_paths",
        "mount_label",
        "mounts",
        "new_namespaces",
        "process",
        "readonly_paths",
        "readonly_root",
        "resources",
        "rootfs",
        "rootfs_propagation",
        "seccomp",
        "sysctl",
        "time_offsets",
        "uid_mappings",
    )

    def __init__(
        self,
        id: str,
        bundle: str,
        rootfs: str,
        readonly_root: bool,
        process: ProcessConfig,
        hostname: str,
        domainname: str,
        mounts: tuple[MountEntry, ...],
        new_namespaces: int,
        join_namespaces: dict[str, str],
        uid_mappings: tuple[IDMapping, ...],
        gid_mappings: tuple[IDMapping, ...],
        devices: tuple[Device, ...],
        rootfs_propagation: int,
        masked_paths: tuple[str, ...],
        readonly_paths: tuple[str, ...],
        sysctl: dict[str, str],
        time_offsets: dict[str, TimeOffset],
        cgroups_path: str,
        resources: LinuxResources | None = None,
        mount_label: str = "",
        seccomp: SeccompProfile | None = None,
        hooks: Hooks | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        self.id = id
        self.bundle = bundle
        self.rootfs = rootfs
        self.readonly_root = readonly_root
        self.process = process
        self.hostname = hostname
        self.domainname = domainname
        self.mounts = mounts
        # Namespaces to create (clone flags OR-ed) and to join (type -> path).
        self.new_namespaces = new_namespaces
        self.join_namespaces = join_namespaces
        self.uid_mappings = uid_mappings
        self.gid_mappings = gid_mappings
        self.devices = devices
        self.rootfs_propagation = rootfs_propagation
        self.masked_paths = masked_paths
        self.readonly_paths = readonly_paths
        self.sysctl = sysctl
        self.time_offsets = time_offsets
        self.cgroups_path = cgroups_path
        self.resources = LinuxResources() if resources is None else resources
        self.mount_label = mount_label
        self.seccomp = seccomp
        self.hooks = Hooks() if hooks is None else hooks
        self.annotations = {} if annotations is None else annotations

    @property
    def has_user_namespace(self) -> bool:
        return bool(self.new_namespaces & c.CLONE_NEWUSER) or "user" in self.join_namespaces

    @property
    def mounts_dev(self) -> bool:
        return any(m.destination.rstrip("/") == "/dev" for m in self.mounts)

    @classmethod
    def from_spec(cls, spec: Spec, container_id: str, bundle: str) -> ContainerConfig:
        if spec.process is None:
            raise InvalidSpec("process: required to create a container")
        rootfs = spec.root.path
        if not os.path.isabs(rootfs):
            rootfs = os.path.join(bundle, rootfs)
        rootfs = os.path.realpath(rootfs)
        if not os.path.isdir(rootfs):
            raise InvalidSpec(f"root.path: rootfs {rootfs!r} does not exist or is not a directory")
        new_flags, joins = _namespaces(spec)
        if spec.hostname and not new_flags & c.CLONE_NEWUTS and "uts" not in joins:
            raise InvalidSpec("hostname: setting it needs a new uts namespace")
        if (spec.linux.uid_mappings or spec.linux.gid_mappings) and not (
            new_flags & c.CLONE_NEWUSER
        ):
            raise InvalidSpec("linux.uidMappings: id mappings need a new user namespace")
        if new_flags & c.CLONE_NEWUSER and not (
            spec.linux.uid_mappings and spec.linux.gid_mappings
        ):
            raise InvalidSpec(
                "linux.uidMappings: a new user namespace needs uidMappings and gidMappings"
            )
        if spec.linux.time_offsets and not new_flags & c.CLONE_NEWTIME:
            raise InvalidSpec("linux.timeOffsets: offsets need a new time namespace")
        return cls(
            id=container_id,
            bundle=bundle,
            rootfs=rootfs,
            readonly_root=spec.root.readonly,
            process=convert_process(spec.process),
            hostname=spec.hostname,
            domainname=spec.domainname,
            mounts=tuple(
                convert_mount(m.source, m.destination, m.type, m.options, bundle, index)
                for index, m in enumerate(spec.mounts)
            ),
            new_namespaces=new_flags,
            join_namespaces=joins,
            uid_mappings=spec.linux.uid_mappings,
            gid_mappings=spec.linux.gid_mappings,
            devices=spec.linux.devices,
            rootfs_propagation=PROPAGATION_FLAGS.get(
                spec.linux.rootfs_propagation, c.MS_PRIVATE | c.MS_REC
            ),
            masked_paths=spec.linux.masked_paths,
            readonly_paths=spec.linux.readonly_paths,
            sysctl=spec.linux.sysctl,
            time_offsets=spec.linux.time_offsets,
            cgroups_path=spec.linux.cgroups_path,
            resources=_resources(spec.linux.resources),
            mount_label=spec.linux.mount_label,
            seccomp=_seccomp(spec.linux.seccomp),
            hooks=spec.hooks,
            annotations=spec.annotations,
        )


def _seccomp(raw: dict[str, Any] | None) -> SeccompProfile | None:
    if raw is None:
        return None
    from cove.oci.seccomp import parse_seccomp  # only containers with a profile pay for it

    return parse_seccomp(raw)


def _resources(raw: dict[str, Any]) -> LinuxResources:
    check_known(raw)
    return parse_resources(raw)


def _namespaces(spec: Spec) -> tuple[int, dict[str, str]]:
    new_flags = 0
    joins: dict[str, str] = {}
    for namespace in spec.linux.namespaces:
        flag, _ = c.NAMESPACES[namespace.type]
        if namespace.path:
            if not os.path.exists(namespace.path):
                raise InvalidSpec(
                    f"linux.namespaces: {namespace.type} namespace path "
                    f"{namespace.path!r} does not exist"
                )
            joins[namespace.type] = namespace.path
        else:
            new_flags |= flag
    if not new_flags & c.CLONE_NEWNS and "mount" not in joins:
        # Without a private mount namespace the container's mounts would land on the host.
        raise InvalidSpec("linux.namespaces: a mount namespace is required")
    return new_flags, joins


def convert_process(process: Process) -> ProcessConfig:
    rlimits = []
    for limit in process.rlimits:
        number = getattr(resource, limit.type, None)
        if not limit.type.startswith("RLIMIT_") or not isinstance(number, int):
            raise InvalidSpec(f"process.rlimits: unknown rlimit type {limit.type!r}")
        rlimits.append((number, limit.soft, limit.hard))
    if process.user.umask is not None and not 0 <= process.user.umask <= 0o777:
        raise InvalidSpec(f"process.user.umask: out of range: {process.user.umask:#o}")
    if process.oom_score_adj is not None and not -1000 <= process.oom_score_adj <= 1000:
        raise InvalidSpec(f"process.oomScoreAdj: {process.oom_score_adj} is outside -1000..1000")
    size = process.console_size
    return ProcessConfig(
        args=process.args,
        env=process.env,
        cwd=process.cwd,
        uid=process.user.uid,
        gid=process.user.gid,
        additional_gids=process.user.additional_gids,
        umask=process.user.umask,
        terminal=process.terminal,
        console_size=None if size is None else (size.height, size.width),
        rlimits=tuple(rlimits),
        no_new_privileges=process.no_new_privileges,
        oom_score_adj=process.oom_score_adj,
        apparmor_profile=process.apparmor_profile,
        selinux_label=process.selinux_label,
        capabilities=None
        if process.capabilities is None
        else capabilities.clamp_to_available(
            capabilities.convert(process.capabilities), capabilities.own_bounding_set()
        ),
    )


def convert_mount(
    source: str,
    destination: str,
    fstype: str,
    options: tuple[str, ...],
    bundle: str,
    index: int,
) -> MountEntry:
    flags = 0
    propagation: list[int] = []
    data: list[str] = []
    for option in options:
        known = _MOUNT_FLAGS.get(option)
        if known is not None:
            sets, flag = known
            flags = flags | flag if sets else flags & ~flag
        elif option in PROPAGATION_FLAGS:
            propagation.append(PROPAGATION_FLAGS[option])
        elif option in ("idmap", "ridmap"):
            raise InvalidSpec(f"mounts[{index}]: option {option!r} is not supported yet")
        elif option not in _IGNORED_OPTIONS:
            data.append(option)
    if fstype in ("bind", "rbind") and not flags & c.MS_BIND:
        flags |= c.MS_BIND | (c.MS_REC if fstype == "rbind" else 0)
    if flags & c.MS_BIND:
        if not source:
            raise InvalidSpec(f"mounts[{index}]: bind mount of {destination!r} has no source")
        if not os.path.isabs(source):
            source = os.path.join(bundle, source)
        if not os.path.exists(source):
            raise InvalidSpec(f"mounts[{index}]: bind mount source {source!r} does not exist")
    elif not fstype:
        raise InvalidSpec(f"mounts[{index}]: mount of {destination!r} has no type")
    return MountEntry(
        source=source,
        destination=destination,
        fstype=fstype,
        flags=flags,
        data=",".join(data),
        propagation=tuple(propagation),
    )
