"""The OCI runtime spec (config.json) as typed, immutable data.

`parse_spec` is the only place that reads config.json's JSON: everything after it works on
these dataclasses. Field names follow the spec, in Python's spelling.
"""

from __future__ import annotations

from cove.errors import InvalidSpec
from cove.oci import jsonc
from cove.oci.data import Data
from cove.oci.reader import Field, opt_bool, opt_int, opt_str, opt_strs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
DEVICE_TYPES = ("c", "b", "u", "p")
HOOK_NAMES = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


class User(Data):
    __slots__ = ("additional_gids", "gid", "uid", "umask")

    def __init__(
        self,
        uid: int = 0,
        gid: int = 0,
        umask: int | None = None,
        additional_gids: tuple[int, ...] = (),
    ) -> None:
        self.uid = uid
        self.gid = gid
        self.umask = umask
        self.additional_gids = additional_gids


class Rlimit(Data):
    __slots__ = ("hard", "soft", "type")

    def __init__(
        self,
        type: str,
        soft: int,
        hard: int,
    ) -> None:
        self.type = type
        self.soft = soft
        self.hard = hard


class Capabilities(Data):
    __slots__ = ("ambient", "bounding", "effective", "inheritable", "permitted")

    def __init__(
        self,
        bounding: tuple[str, ...] = (),
        effective: tuple[str, ...] = (),
        inheritable: tuple[str, ...] = (),
        permitted: tuple[str, ...] = (),
        ambient: tuple[str, ...] = (),
    ) -> None:
        self.bounding = bounding
        self.effective = effective
        self.inheritable = inheritable
        self.permitted = permitted
        self.ambient = ambient


class ConsoleSize(Data):
    __slots__ = ("height", "width")

    def __init__(
        self,
        height: int,
        width: int,
    ) -> None:
        self.height = height
        self.width = width


class Process(Data):
    __slots__ = (
        "apparmor_profile",
        "args",
        "capabilities",
        "console_size",
        "cwd",
        "env",
        "no_new_privileges",
        "oom_score_adj",
        "rlimits",
        "selinux_label",
        "terminal",
        "user",
    )

    def __init__(
        self,
        args: tuple[str, ...],
        cwd: str = "/",
        env: tuple[str, ...] = (),
        terminal: bool = False,
        console_size: ConsoleSize | None = None,
        user: User | None = None,
        capabilities: Capabilities | None = None,
        rlimits: tuple[Rlimit, ...] = (),
        no_new_privileges: bool = False,
        oom_score_adj: int | None = None,
        apparmor_profile: str = "",
        selinux_label: str = "",
    ) -> None:
        self.args = args
        self.cwd = cwd
        self.env = env
        self.terminal = terminal
        self.console_size = console_size
        self.user = User() if user is None else user
        self.capabilities = capabilities
        self.rlimits = rlimits
        self.no_new_privileges = no_new_privileges
        self.oom_score_adj = oom_score_adj
        self.apparmor_profile = apparmor_profile
        self.selinux_label = selinux_label


class Root(Data):
    __slots__ = ("path", "readonly")

    def __init__(
        self,
        path: str,
        readonly: bool = False,
    ) -> None:
        self.path = path
        self.readonly = readonly


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


class Mount(Data):
    __slots__ = ("destination", "options", "source", "type")

    def __init__(
        self,
        destination: str,
        type: str = "",
        source: str = "",
        options: tuple[str, ...] = (),
    ) -> None:
        self.destination = destination
        self.type = type
        self.source = source
        self.options = options


class Hook(Data):
    __slots__ = ("args", "env", "path", "timeout")

    def __init__(
        self,
        path: str,
        args: tuple[str, ...] = (),
        env: tuple[str, ...] = (),
        timeout: int | None = None,
    ) -> None:
        self.path = path
        self.args = args
        self.env = env
        self.timeout = timeout


class Hooks(Data):
    __slots__ = (
        "create_container",
        "create_runtime",
        "poststart",
        "poststop",
        "prestart",
        "start_container",
    )

    def __init__(
        self,
        prestart: tuple[Hook, ...] = (),
        create_runtime: tuple[Hook, ...] = (),
        create_container: tuple[Hook, ...] = (),
        start_container: tuple[Hook, ...] = (),
        poststart: tuple[Hook, ...] = (),
        poststop: tuple[Hook, ...] = (),
    ) -> None:
        self.prestart = prestart
        self.create_runtime = create_runtime
        self.create_container = create_container
        self.start_container = start_container
        self.poststart = poststart
        self.poststop = poststop


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


class Spec(Data):
    __slots__ = (
        "annotations",
        "domainname",
        "hooks",
        "hostname",
        "linux",
        "mounts",
        "oci_version",
        "process",
        "root",
    )

    def __init__(
        self,
        oci_version: str,
        root: Root,
        process: Process | None = None,
        hostname: str = "",
        domainname: str = "",
        mounts: tuple[Mount, ...] = (),
        hooks: Hooks | None = None,
        annotations: dict[str, str] | None = None,
        linux: Linux | None = None,
    ) -> None:
        self.oci_version = oci_version
        self.root = root
        self.process = process
        self.hostname = hostname
        self.domainname = domainname
        self.mounts = mounts
        self.hooks = Hooks() if hooks is None else hooks
        self.annotations = {} if annotations is None else annotations
        self.linux = Linux() if linux is None else linux


def load_spec(path: str) -> Spec:
    """Read and convert a config.json file."""
    return parse_spec(_read_json(path))


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as json_file:
            raw = json_file.read()
    except FileNotFoundError:
        raise InvalidSpec(f"{path}: no such file") from None
    except OSError as exc:
        raise InvalidSpec(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return jsonc.loads(raw)
    except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError
        raise InvalidSpec(f"{path}: malformed JSON: {exc}") from None


def load_process(path: str) -> Process:
    """Read a process.json (`exec --process`): the spec's `process` object alone."""
    return _process(Field(_read_json(path), "process"))


def parse_spec(data: Any) -> Spec:
    top = Field(data, "").obj()
    version = top.need("ociVersion").as_str()
    if not version.startswith("1."):
        raise InvalidSpec(f"ociVersion: unsupported version {version!r} (cove accepts 1.x)")
    root = top.get("root")
    if root is None:
        raise InvalidSpec("root: required field is missing")
    process = top.get("process")
    hooks = top.get("hooks")
    annotations = top.get("annotations")
    linux = top.get("linux")
    return Spec(
        oci_version=version,
        root=Root(path=root.need("path").as_str(), readonly=opt_bool(root, "readonly")),
        process=None if process is None else _process(process),
        hostname=opt_str(top, "hostname"),
        domainname=opt_str(top, "domainname"),
        mounts=_mounts(top.get("mounts")),
        hooks=Hooks() if hooks is None else _hooks(hooks),
        annotations={} if annotations is None else annotations.str_map(),
        linux=Linux() if linux is None else _linux(linux),
    )


def _process(node: Field) -> Process:
    args = node.need("args").strs()
    if not args:
        raise node.need("args").fail("must name at least the program to run")
    cwd = opt_str(node, "cwd", "/")
    if not cwd.startswith("/"):
        raise node.need("cwd").fail(f"must be an absolute path, got {cwd!r}")
    env = opt_strs(node, "env")
    for index, entry in enumerate(env):
        if "=" not in entry:
            raise InvalidSpec(f"process.env[{index}]: expected KEY=VALUE, got {entry!r}")
    user = node.get("user")
    console = node.get("consoleSize")
    caps = node.get("capabilities")
    rlimits = node.get("rlimits")
    return Process(
        args=args,
        cwd=cwd,
        env=env,
        terminal=opt_bool(node, "terminal"),
        console_size=None
        if console is None
        else ConsoleSize(console.need("height").as_int(), console.need("width").as_int()),
        user=User() if user is None else _user(user),
        capabilities=None if caps is None else _capabilities(caps),
        rlimits=() if rlimits is None else tuple(_rlimit(item) for item in rlimits.items()),
        no_new_privileges=opt_bool(node, "noNewPrivileges"),
        oom_score_adj=opt_int(node, "oomScoreAdj"),
        apparmor_profile=opt_str(node, "apparmorProfile"),
        selinux_label=opt_str(node, "selinuxLabel"),
    )


def _user(node: Field) -> User:
    gids = node.get("additionalGids")
    return User(
        uid=_id_value(node, "uid"),
        gid=_id_value(node, "gid"),
        umask=opt_int(node, "umask"),
        additional_gids=() if gids is None else gids.ints(),
    )


def _id_value(node: Field, key: str) -> int:
    child = node.get(key)
    if child is None:
        return 0
    value = child.as_int()
    if not 0 <= value < 2**32 - 1:
        raise child.fail(f"out of range: {value}")
    return value


def _capabilities(node: Field) -> Capabilities:
    return Capabilities(
        bounding=opt_strs(node, "bounding"),
        effective=opt_strs(node, "effective"),
        inheritable=opt_strs(node, "inheritable"),
        permitted=opt_strs(node, "permitted"),
        ambient=opt_strs(node, "ambient"),
    )


def _rlimit(node: Field) -> Rlimit:
    rtype = node.need("type").as_str()
    soft, hard = node.need("soft").as_int(), node.need("hard").as_int()
    if soft < 0 or hard < 0:
        raise node.fail(f"{rtype}: limits must not be negative")
    if soft > hard:
        raise node.fail(f"{rtype}: soft limit {soft} exceeds hard limit {hard}")
    return Rlimit(type=rtype, soft=soft, hard=hard)


def _mounts(node: Field | None) -> tuple[Mount, ...]:
    if node is None:
        return ()
    mounts = []
    for item in node.items():
        destination = item.need("destination").as_str()
        if not destination.startswith("/"):
            raise item.need("destination").fail(f"must be an absolute path, got {destination!r}")
        mounts.append(
            Mount(
                destination=destination,
                type=opt_str(item, "type"),
                source=opt_str(item, "source"),
                options=opt_strs(item, "options"),
            )
        )
    return tuple(mounts)


def parse_hook_list(data: Any, path: str) -> tuple[Hook, ...]:
    """A list of hooks as config.json writes them (the record keeps post* hooks so)."""
    return _hooks(Field({"poststop": data}, path.rsplit(".", 1)[0])).poststop


def hook_list_to_json(hooks: tuple[Hook, ...]) -> list[dict[str, Any]]:
    documents = []
    for hook in hooks:
        document: dict[str, Any] = {"path": hook.path, "args": list(hook.args)}
        if hook.env:
            document["env"] = list(hook.env)
        if hook.timeout is not None:
            document["timeout"] = hook.timeout
        documents.append(document)
    return documents


def _hooks(node: Field) -> Hooks:
    found: dict[str, tuple[Hook, ...]] = {}
    for name in HOOK_NAMES:
        child = node.get(name)
        if child is None:
            continue
        hooks = []
        for item in child.items():
            path = item.need("path").as_str()
            if not path.startswith("/"):
                raise item.need("path").fail(f"must be an absolute path, got {path!r}")
            timeout = opt_int(item, "timeout")
            if timeout is not None and timeout <= 0:
                raise item.need("timeout").fail("must be a positive number of seconds")
            hooks.append(
                Hook(
                    path=path,
                    args=opt_strs(item, "args"),
                    env=opt_strs(item, "env"),
                    timeout=timeout,
                )
            )
        found[name] = tuple(hooks)
    return Hooks(
        prestart=found.get("prestart", ()),
        create_runtime=found.get("createRuntime", ()),
        create_container=found.get("createContainer", ()),
        start_container=found.get("startContainer", ()),
        poststart=found.get("poststart", ()),
        poststop=found.get("poststop", ()),
    )


def _linux(node: Field) -> Linux:
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
