"""The OCI runtime spec (config.json) as typed, immutable data.

`parse_spec` is the only place that reads config.json's JSON: everything after it works on
these dataclasses. Field names follow the spec, in Python's spelling.

This module holds the top level (`Spec`, `Root`, `mounts`, `hooks`) and the loaders; the
`process` section lives in `cove.oci.spec_process`, the `linux` section in
`cove.oci.spec_linux`. Their records are re-exported here: `cove.oci.runtime_spec` is
the one name callers import the spec's types from.
"""

from __future__ import annotations

from cove.errors import InvalidSpec
from cove.oci import jsonc
from cove.oci.data import Data
from cove.oci.reader import Field, opt_bool, opt_int, opt_str, opt_strs
from cove.oci.spec_linux import (
    DEVICE_TYPES,
    NAMESPACE_TYPES,
    Device,
    IDMapping,
    Linux,
    Namespace,
    TimeOffset,
    parse_linux,
)
from cove.oci.spec_process import (
    Capabilities,
    ConsoleSize,
    Process,
    Rlimit,
    User,
    parse_process,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DEVICE_TYPES",
    "HOOK_NAMES",
    "NAMESPACE_TYPES",
    "Capabilities",
    "ConsoleSize",
    "Device",
    "Hook",
    "Hooks",
    "IDMapping",
    "Linux",
    "Mount",
    "Namespace",
    "Process",
    "Rlimit",
    "Root",
    "Spec",
    "TimeOffset",
    "User",
    "hook_list_to_json",
    "load_process",
    "load_spec",
    "parse_hook_list",
    "parse_spec",
]

HOOK_NAMES = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)


class Root(Data):
    __slots__ = ("path", "readonly")

    def __init__(
        self,
        path: str,
        readonly: bool = False,
    ) -> None:
        self.path = path
        self.readonly = readonly


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
    return parse_process(Field(_read_json(path), "process"))


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
        process=None if process is None else parse_process(process),
        hostname=opt_str(top, "hostname"),
        domainname=opt_str(top, "domainname"),
        mounts=_mounts(top.get("mounts")),
        hooks=Hooks() if hooks is None else _hooks(hooks),
        annotations={} if annotations is None else annotations.str_map(),
        linux=Linux() if linux is None else parse_linux(linux),
    )


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
