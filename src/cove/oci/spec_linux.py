"""The `linux` section of the OCI runtime spec: the records (`Linux`, `Namespace`,
`IDMapping`, `Device`, `TimeOffset`) and `parse_linux`, which converts the section's
JSON and checks namespace types, device types, id mappings, propagation and clocks.
"""

from __future__ import annotations

from cove.errors import InvalidSpec
from cove.oci.data import Data
from cove.oci.reader import Field, opt_int, opt_str, opt_strs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
DEVICE_TYPES = ("c", "b", "u", "p")


class IDMapping(Data):
    __slots__ = ("container_id", "host_id", "size")

    def __init__(
        self,
        container_id: int,
        host_id: int,
        size: int,
    ) -> None:
        self.container_id = container_id
        self.host_id = host_id
        self.size = size


class Namespace(Data):
    __slots__ = ("path", "type")

    def __init__(
        self,
        type: str,
        path: str = "",
    ) -> None:
        self.type = type
        self.path = path


class Device(Data):
    __slots__ = ("file_mode", "gid", "major", "minor", "path", "type", "uid")

    def __init__(
        self,
        type: str,
        path: str,
        major: int = 0,
        minor: int = 0,
        file_mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        self.type = type
        self.path = path
        self.major = major
        self.minor = minor
        self.file_mode = file_mode
        self.uid = uid
        self.gid = gid


class TimeOffset(Data):
    __slots__ = ("nanosecs", "secs")

    def __init__(
        self,
        secs: int = 0,
        nanosecs: int = 0,
    ) -> None:
        self.secs = secs
        self.nanosecs = nanosecs


class Linux(Data):
    __slots__ = (
        "cgroups_path",
        "devices",
        "gid_mappings",
        "masked_paths",
        "mount_label",
        "namespaces",
        "readonly_paths",
        "resources",
        "rootfs_propagation",
        "seccomp",
        "sysctl",
        "time_offsets",
        "uid_mappings",
    )

    def __init__(
        self,
        namespaces: tuple[Namespace, ...] = (),
        uid_mappings: tuple[IDMapping, ...] = (),
        gid_mappings: tuple[IDMapping, ...] = (),
        devices: tuple[Device, ...] = (),
        cgroups_path: str = "",
        resources: dict[str, Any] | None = None,
        rootfs_propagation: str = "",
        masked_paths: tuple[str, ...] = (),
        readonly_paths: tuple[str, ...] = (),
        sysctl: dict[str, str] | None = None,
        seccomp: dict[str, Any] | None = None,
        time_offsets: dict[str, TimeOffset] | None = None,
        mount_label: str = "",
    ) -> None:
        self.namespaces = namespaces
        self.uid_mappings = uid_mappings
        self.gid_mappings = gid_mappings
        self.devices = devices
        self.cgroups_path = cgroups_path
        self.resources = {} if resources is None else resources
        self.rootfs_propagation = rootfs_propagation
        self.masked_paths = masked_paths
        self.readonly_paths = readonly_paths
        self.sysctl = {} if sysctl is None else sysctl
        self.seccomp = seccomp
        self.time_offsets = {} if time_offsets is None else time_offsets
        self.mount_label = mount_label

    def namespace(self, ns_type: str) -> Namespace | None:
        for namespace in self.namespaces:
            if namespace.type == ns_type:
                return namespace
        return None


def parse_linux(node: Field) -> Linux:
    namespaces = _namespaces(node.get("namespaces"))
    resources = node.get("resources")
    seccomp = node.get("seccomp")
    sysctl = node.get("sysctl")
    offsets = node.get("timeOffsets")
    return Linux(
        namespaces=namespaces,
        uid_mappings=_id_mappings(node.get("uidMappings")),
        gid_mappings=_id_mappings(node.get("gidMappings")),
        devices=_devices(node.get("devices")),
        cgroups_path=opt_str(node, "cgroupsPath"),
        resources={} if resources is None else dict(resources.obj().value),
        rootfs_propagation=_propagation(node),
        masked_paths=opt_strs(node, "maskedPaths"),
        readonly_paths=opt_strs(node, "readonlyPaths"),
        sysctl={} if sysctl is None else sysctl.str_map(),
        seccomp=None if seccomp is None else dict(seccomp.obj().value),
        time_offsets={} if offsets is None else _time_offsets(offsets),
        mount_label=opt_str(node, "mountLabel"),
    )


def _namespaces(node: Field | None) -> tuple[Namespace, ...]:
    if node is None:
        return ()
    seen: set[str] = set()
    namespaces = []
    for item in node.items():
        ns_type = item.need("type").as_str()
        if ns_type not in NAMESPACE_TYPES:
            raise item.need("type").fail(
                f"unknown namespace type {ns_type!r} (known: {', '.join(NAMESPACE_TYPES)})"
            )
        if ns_type in seen:
            raise item.fail(f"namespace {ns_type!r} is listed twice")
        seen.add(ns_type)
        path = opt_str(item, "path")
        if path and not path.startswith("/"):
            raise item.need("path").fail(f"must be an absolute path, got {path!r}")
        namespaces.append(Namespace(type=ns_type, path=path))
    return tuple(namespaces)


def _id_mappings(node: Field | None) -> tuple[IDMapping, ...]:
    if node is None:
        return ()
    mappings = []
    for item in node.items():
        size = item.need("size").as_int()
        if size <= 0:
            raise item.need("size").fail("must be positive")
        mappings.append(
            IDMapping(item.need("containerID").as_int(), item.need("hostID").as_int(), size)
        )
    return tuple(mappings)


def _devices(node: Field | None) -> tuple[Device, ...]:
    if node is None:
        return ()
    devices = []
    for item in node.items():
        dev_type = item.need("type").as_str()
        if dev_type not in DEVICE_TYPES:
            raise item.need("type").fail(f"unknown device type {dev_type!r} (c, b, u or p)")
        path = item.need("path").as_str()
        if not path.startswith("/dev/"):
            raise item.need("path").fail(f"device path must be under /dev, got {path!r}")
        devices.append(
            Device(
                type=dev_type,
                path=path,
                major=opt_int(item, "major", 0) or 0,
                minor=opt_int(item, "minor", 0) or 0,
                file_mode=opt_int(item, "fileMode"),
                uid=opt_int(item, "uid"),
                gid=opt_int(item, "gid"),
            )
        )
    return tuple(devices)


_PROPAGATIONS = (
    "",
    "private",
    "rprivate",
    "slave",
    "rslave",
    "shared",
    "rshared",
    "unbindable",
    "runbindable",
)


def _propagation(node: Field) -> str:
    value = opt_str(node, "rootfsPropagation")
    if value not in _PROPAGATIONS:
        raise node.need("rootfsPropagation").fail(f"unknown propagation {value!r}")
    return value


def _time_offsets(node: Field) -> dict[str, TimeOffset]:
    offsets = {}
    for clock in node.obj().value:
        if clock not in ("monotonic", "boottime"):
            raise InvalidSpec(f"linux.timeOffsets: unknown clock {clock!r}")
        entry = node.need(clock)
        offsets[clock] = TimeOffset(
            secs=opt_int(entry, "secs", 0) or 0, nanosecs=opt_int(entry, "nanosecs", 0) or 0
        )
    return offsets
