"""cove.oci.runtime_spec: config.json -> typed data, and errors that name the field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cove.errors import InvalidSpec
from cove.oci.default_spec import MASKED_PATHS, READONLY_PATHS, default_spec
from cove.oci.runtime_spec import (
    Capabilities,
    ConsoleSize,
    Device,
    Hook,
    Hooks,
    IDMapping,
    Linux,
    Mount,
    Namespace,
    Process,
    Rlimit,
    Root,
    Spec,
    TimeOffset,
    User,
    load_process,
    load_spec,
    parse_spec,
)

CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")


def spec_error(data: Any) -> str:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(data)
    return str(info.value)


def minimal() -> dict[str, Any]:
    return {"ociVersion": "1.0.0", "root": {"path": "rootfs"}}


# --- a full runc-style config -------------------------------------------------------------


def test_full_default_config_gives_typed_values(spec_dict: dict[str, Any]) -> None:
    spec = parse_spec(spec_dict)
    assert isinstance(spec, Spec)
    assert spec.oci_version == "1.2.0"
    assert spec.root == Root(path="rootfs", readonly=True)
    assert spec.hostname == "cove"
    assert spec.domainname == ""
    assert spec.hooks == Hooks()
    assert spec.annotations == {}

    process = spec.process
    assert isinstance(process, Process)
    assert process.args == ("sh",)
    assert process.cwd == "/"
    assert process.terminal is True
    assert process.env == (
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TERM=xterm",
    )
    assert process.user == User(uid=0, gid=0, umask=None, additional_gids=())
    assert process.capabilities == Capabilities(
        bounding=CAPS, effective=CAPS, inheritable=(), permitted=CAPS, ambient=CAPS
    )
    assert process.rlimits == (Rlimit(type="RLIMIT_NOFILE", soft=1024, hard=1024),)
    assert process.no_new_privileges is True
    assert process.oom_score_adj is None
    assert process.console_size is None

    assert len(spec.mounts) == 7
    assert spec.mounts[0] == Mount(destination="/proc", type="proc", source="proc", options=())
    assert spec.mounts[1] == Mount(
        destination="/dev",
        type="tmpfs",
        source="tmpfs",
        options=("nosuid", "strictatime", "mode=755", "size=65536k"),
    )
    assert [m.destination for m in spec.mounts] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ]
    assert all(isinstance(m.options, tuple) for m in spec.mounts)

    linux = spec.linux
    assert isinstance(linux, Linux)
    assert linux.namespaces == tuple(
        Namespace(type=t) for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")
    )
    assert linux.namespace("uts") == Namespace(type="uts", path="")
    assert linux.namespace("user") is None
    assert linux.masked_paths == tuple(MASKED_PATHS)
    assert linux.readonly_paths == tuple(READONLY_PATHS)
    assert linux.resources == {"devices": [{"allow": False, "access": "rwm"}]}
    assert linux.uid_mappings == ()
    assert linux.rootfs_propagation == ""
    assert linux.seccomp is None


def test_rootless_default_config_gives_id_mappings() -> None:
    spec = parse_spec(default_spec(rootless=True))
    assert spec.linux.namespace("user") == Namespace(type="user")
    assert len(spec.linux.uid_mappings) == 1
    assert spec.linux.uid_mappings[0].container_id == 0
    assert spec.linux.uid_mappings[0].size == 1
    assert isinstance(spec.linux.gid_mappings[0], IDMapping)


def test_minimal_config_uses_defaults() -> None:
    spec = parse_spec(minimal())
    assert spec == Spec(oci_version="1.0.0", root=Root("rootfs"))
    assert spec.process is None
    assert spec.mounts == ()
    assert spec.linux == Linux()
    assert spec.hooks == Hooks()


def test_json_null_counts_as_absent() -> None:
    data = minimal() | {"process": None, "hostname": None, "linux": None, "mounts": None}
    assert parse_spec(data) == Spec(oci_version="1.0.0", root=Root("rootfs"))


def test_optional_sections_are_converted() -> None:
    data = minimal()
    data["annotations"] = {"org.example/key": "value"}
    data["process"] = {
        "args": ["/bin/app", "--flag"],
        "consoleSize": {"height": 24, "width": 80},
        "user": {"uid": 1000, "gid": 100, "umask": 0o22, "additionalGids": [5, 6]},
        "oomScoreAdj": -500,
        "apparmorProfile": "prof",
        "selinuxLabel": "label",
    }
    data["hooks"] = {
        "prestart": [{"path": "/bin/pre", "args": ["pre", "x"], "env": ["A=b"], "timeout": 3}],
        "createRuntime": [{"path": "/bin/cr"}],
        "createContainer": [{"path": "/bin/cc"}],
        "startContainer": [{"path": "/bin/sc"}],
        "poststart": [{"path": "/bin/ps1"}, {"path": "/bin/ps2"}],
        "poststop": [{"path": "/bin/stop"}],
    }
    data["linux"] = {
        "namespaces": [{"type": "network", "path": "/var/run/netns/x"}, {"type": "time"}],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 200000, "size": 10}],
        "devices": [
            {"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 0o666},
            {"type": "p", "path": "/dev/fifo"},
        ],
        "cgroupsPath": "/my/group",
        "rootfsPropagation": "rslave",
        "sysctl": {"net.ipv4.ip_forward": "1"},
        "timeOffsets": {"monotonic": {"secs": 5}, "boottime": {"nanosecs": 7}},
        "seccomp": {"defaultAction": "SCMP_ACT_ALLOW"},
        "mountLabel": "mlabel",
    }
    spec = parse_spec(data)
    assert spec.annotations == {"org.example/key": "value"}
    process = spec.process
    assert process is not None
    assert process.args == ("/bin/app", "--flag")
    assert process.console_size == ConsoleSize(height=24, width=80)
    assert process.user == User(uid=1000, gid=100, umask=0o22, additional_gids=(5, 6))
    assert process.oom_score_adj == -500
    assert process.capabilities is None
    assert (process.apparmor_profile, process.selinux_label) == ("prof", "label")

    hooks = spec.hooks
    assert hooks.prestart == (Hook("/bin/pre", args=("pre", "x"), env=("A=b",), timeout=3),)
    assert hooks.create_runtime == (Hook("/bin/cr"),)
    assert hooks.create_container == (Hook("/bin/cc"),)
    assert hooks.start_container == (Hook("/bin/sc"),)
    assert hooks.poststart == (Hook("/bin/ps1"), Hook("/bin/ps2"))
    assert hooks.poststop == (Hook("/bin/stop"),)

    linux = spec.linux
    assert linux.namespaces == (Namespace("network", "/var/run/netns/x"), Namespace("time"))
    assert linux.uid_mappings == (IDMapping(0, 100000, 65536),)
    assert linux.gid_mappings == (IDMapping(0, 200000, 10),)
    assert linux.devices == (
        Device("c", "/dev/fuse", major=10, minor=229, file_mode=0o666),
        Device("p", "/dev/fifo", major=0, minor=0),
    )
    assert linux.cgroups_path == "/my/group"
    assert linux.rootfs_propagation == "rslave"
    assert linux.sysctl == {"net.ipv4.ip_forward": "1"}
    assert linux.time_offsets == {
        "monotonic": TimeOffset(secs=5, nanosecs=0),
        "boottime": TimeOffset(secs=0, nanosecs=7),
    }
    assert linux.seccomp == {"defaultAction": "SCMP_ACT_ALLOW"}
    assert linux.mount_label == "mlabel"


def test_parse_does_not_modify_its_input(spec_dict: dict[str, Any]) -> None:
    before = copy.deepcopy(spec_dict)
    parse_spec(spec_dict)
    assert spec_dict == before


# --- ociVersion ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0.0", "1.0.2-dev", "1.2.0", "1.3.0"])
def test_ociversion_1x_accepted(version: str) -> None:
    assert parse_spec(minimal() | {"ociVersion": version}).oci_version == version


@pytest.mark.parametrize("version", ["2.0.0", "0.9.0", "10.0.0", "", "v1.0.0"])
def test_ociversion_other_than_1x_rejected(version: str) -> None:
    message = spec_error(minimal() | {"ociVersion": version})
    assert message.startswith("ociVersion: unsupported version")
    assert repr(version) in message


def test_ociversion_missing() -> None:
    data = minimal()
    del data["ociVersion"]
    assert spec_error(data) == "ociVersion: required field is missing"


# --- every validation error names the field path ------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutator that sets a dotted path (list indexes as numbers) in a config dict."""

    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[int(last) if isinstance(node, list) else last]

    return mutate


def _append(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path.split("."):
            node = node[int(part)] if isinstance(node, list) else node[part]
        node.append(value)

    return mutate


ERROR_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("version not a string", _set("ociVersion", 1), "ociVersion: expected a string, got a number"),
    ("root missing", _delete("root"), "root: required field is missing"),
    ("root not object", _set("root", "rootfs"), "root: expected an object, got a string"),
    ("root path missing", _delete("root.path"), "root.path: required field is missing"),
    ("root readonly not bool", _set("root.readonly", "yes"), "root.readonly: expected true"),
    ("args missing", _delete("process.args"), "process.args: required field is missing"),
    ("args empty", _set("process.args", []), "process.args: must name at least the program"),
    ("args not list", _set("process.args", "sh"), "process.args: expected an array, got a str"),
    (
        "args not strings",
        _set("process.args", ["sh", 1]),
        "process.args[1]: expected a string, got a number",
    ),
    ("relative cwd", _set("process.cwd", "tmp"), "process.cwd: must be an absolute path"),
    (
        "env without =",
        _append("process.env", "NOEQUALS"),
        "process.env[2]: expected KEY=VALUE, got 'NOEQUALS'",
    ),
    (
        "bool for uid",
        _set("process.user.uid", True),
        "process.user.uid: expected an integer, got a boolean",
    ),
    (
        "float for gid",
        _set("process.user.gid", 1.0),
        "process.user.gid: expected an integer, got a number",
    ),
    ("negative gid", _set("process.user.gid", -1), "process.user.gid: out of range: -1"),
    ("uid -1 as u32", _set("process.user.uid", 2**32 - 1), "process.user.uid: out of range"),
    (
        "additional gid not int",
        _set("process.user.additionalGids", ["wheel"]),
        "process.user.additionalGids[0]: expected an integer, got a string",
    ),
    (
        "terminal not bool",
        _set("process.terminal", 1),
        "process.terminal: expected true or false, got a number",
    ),
    (
        "rlimit soft > hard",
        _set("process.rlimits.0.soft", 2048),
        "process.rlimits[0]: RLIMIT_NOFILE: soft limit 2048 exceeds hard limit 1024",
    ),
    (
        "negative rlimit",
        _set("process.rlimits.0.hard", -1),
        "process.rlimits[0]: RLIMIT_NOFILE: limits must not be negative",
    ),
    (
        "rlimit type missing",
        _delete("process.rlimits.0.type"),
        "process.rlimits[0].type: required field is missing",
    ),
    (
        "console size incomplete",
        _set("process.consoleSize", {"height": 10}),
        "process.consoleSize.width: required field is missing",
    ),
    (
        "capabilities not list",
        _set("process.capabilities.bounding", "CAP_KILL"),
        "process.capabilities.bounding: expected an array, got a string",
    ),
    (
        "oomScoreAdj float",
        _set("process.oomScoreAdj", 1.5),
        "process.oomScoreAdj: expected an integer, got a number",
    ),
    ("hostname not str", _set("hostname", 5), "hostname: expected a string, got a number"),
    ("mounts not list", _set("mounts", {}), "mounts: expected an array, got an object"),
    (
        "mount destination relative",
        _set("mounts.1.destination", "dev"),
        "mounts[1].destination: must be an absolute path, got 'dev'",
    ),
    (
        "mount destination missing",
        _delete("mounts.0.destination"),
        "mounts[0].destination: required field is missing",
    ),
    (
        "mount options not list",
        _set("mounts.3.options", "ro"),
        "mounts[3].options: expected an array, got a string",
    ),
    ("linux not object", _set("linux", []), "linux: expected an object, got an array"),
    (
        "unknown namespace",
        _set("linux.namespaces.0.type", "bogus"),
        "linux.namespaces[0].type: unknown namespace type 'bogus'",
    ),
    (
        "duplicate namespace",
        _append("linux.namespaces", {"type": "pid"}),
        "linux.namespaces[6]: namespace 'pid' is listed twice",
    ),
    (
        "relative namespace path",
        _set("linux.namespaces.1.path", "run/netns/x"),
        "linux.namespaces[1].path: must be an absolute path, got 'run/netns/x'",
    ),
    (
        "mapping size zero",
        _set("linux.uidMappings", [{"containerID": 0, "hostID": 1, "size": 0}]),
        "linux.uidMappings[0].size: must be positive",
    ),
    (
        "mapping hostID missing",
        _set("linux.gidMappings", [{"containerID": 0, "size": 1}]),
        "linux.gidMappings[0].hostID: required field is missing",
    ),
    (
        "unknown device type",
        _set("linux.devices", [{"type": "x", "path": "/dev/x"}]),
        "linux.devices[0].type: unknown device type 'x'",
    ),
    (
        "device outside /dev",
        _set("linux.devices", [{"type": "c", "path": "/tmp/null"}]),
        "linux.devices[0].path: device path must be under /dev, got '/tmp/null'",
    ),
    (
        "device major not int",
        _set("linux.devices", [{"type": "c", "path": "/dev/x", "major": "1"}]),
        "linux.devices[0].major: expected an integer, got a string",
    ),
    (
        "bad rootfsPropagation",
        _set("linux.rootfsPropagation", "sideways"),
        "linux.rootfsPropagation: unknown propagation 'sideways'",
    ),
    (
        "resources not object",
        _set("linux.resources", []),
        "linux.resources: expected an object, got an array",
    ),
    (
        "sysctl value not str",
        _set("linux.sysctl", {"net.ipv4.ip_forward": 1}),
        "linux.sysctl.net.ipv4.ip_forward: expected a string, got a number",
    ),
    (
        "unknown time offset clock",
        _set("linux.timeOffsets", {"realtime": {"secs": 1}}),
        "linux.timeOffsets: unknown clock 'realtime'",
    ),
    (
        "annotation value not str",
        _set("annotations", {"a": 1}),
        "annotations.a: expected a string, got a number",
    ),
    (
        "hook path relative",
        _set("hooks", {"prestart": [{"path": "bin/hook"}]}),
        "hooks.prestart[0].path: must be an absolute path, got 'bin/hook'",
    ),
    (
        "hook timeout zero",
        _set("hooks", {"poststop": [{"path": "/bin/hook", "timeout": 0}]}),
        "hooks.poststop[0].timeout: must be a positive number of seconds",
    ),
    (
        "hook timeout negative",
        _set("hooks", {"createRuntime": [{"path": "/h"}, {"path": "/h", "timeout": -5}]}),
        "hooks.createRuntime[1].timeout: must be a positive number of seconds",
    ),
    (
        "hook timeout bool",
        _set("hooks", {"poststart": [{"path": "/h", "timeout": True}]}),
        "hooks.poststart[0].timeout: expected an integer, got a boolean",
    ),
    (
        "hooks not list",
        _set("hooks", {"prestart": {"path": "/h"}}),
        "hooks.prestart: expected an array, got an object",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(mutate, expected, id=name) for name, mutate, expected in ERROR_CASES],
)
def test_validation_error_names_field(
    spec_dict: dict[str, Any], mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    mutate(spec_dict)
    message = spec_error(spec_dict)
    assert message.startswith(expected), message


@pytest.mark.parametrize("top", [[], "config", 42, None])
def test_top_level_must_be_an_object(top: Any) -> None:
    assert "expected an object" in spec_error(top)


def test_uid_just_below_u32_max_is_accepted(spec_dict: dict[str, Any]) -> None:
    spec_dict["process"]["user"]["uid"] = 2**32 - 2
    spec = parse_spec(spec_dict)
    assert spec.process is not None
    assert spec.process.user.uid == 2**32 - 2


@pytest.mark.parametrize("value", ["", "private", "rprivate", "rshared", "runbindable", "slave"])
def test_known_rootfs_propagations_accepted(spec_dict: dict[str, Any], value: str) -> None:
    spec_dict["linux"]["rootfsPropagation"] = value
    assert parse_spec(spec_dict).linux.rootfs_propagation == value


# --- load_spec and load_process -----------------------------------------------------------


def test_load_spec_reads_a_file(tmp_path: Path, spec_dict: dict[str, Any]) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(spec_dict, indent="\t"))
    assert load_spec(str(path)) == parse_spec(spec_dict)


def test_load_spec_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    with pytest.raises(InvalidSpec) as info:
        load_spec(str(path))
    assert str(info.value) == f"{path}: no such file"


def test_load_spec_unreadable(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec) as info:
        load_spec(str(tmp_path))  # a directory
    assert str(info.value).startswith(f"{tmp_path}: cannot read:")


@pytest.mark.parametrize(
    "text", ['{"ociVersion": "1.0.0",', "{'a': 1}", "", '{"a": 1} trailing', "nul"]
)
def test_load_spec_malformed_json(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(InvalidSpec) as info:
        load_spec(str(path))
    assert str(info.value).startswith(f"{path}: malformed JSON:")


def test_load_spec_invalid_utf8_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"ociVersion": "\xff"}')
    with pytest.raises(InvalidSpec, match=r"malformed JSON"):
        load_spec(str(path))


@pytest.mark.parametrize("text", ["[]", '"text"', "3", "null"])
def test_load_spec_non_object_top_level(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(InvalidSpec, match=r"expected an object"):
        load_spec(str(path))


def test_load_spec_non_object_top_level_message_names_something(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text("[]")
    with pytest.raises(InvalidSpec) as info:
        load_spec(str(path))
    assert not str(info.value).startswith(":")


def test_load_spec_validation_error_propagates(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"ociVersion": "1.0.0"}))
    with pytest.raises(InvalidSpec, match=r"^root: required field is missing$"):
        load_spec(str(path))


def test_load_process(tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["ls", "-l"], "cwd": "/tmp", "env": ["A=1"]}))
    assert load_process(str(path)) == Process(args=("ls", "-l"), cwd="/tmp", env=("A=1",))


def test_load_process_errors_name_process_fields(tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"args": ["ls"], "cwd": "relative"}))
    with pytest.raises(InvalidSpec, match=r"^process\.cwd: must be an absolute path"):
        load_process(str(path))
    path.write_text(json.dumps({"args": []}))
    with pytest.raises(InvalidSpec, match=r"^process\.args: must name"):
        load_process(str(path))


def test_load_process_missing_and_malformed(tmp_path: Path) -> None:
    path = tmp_path / "process.json"
    with pytest.raises(InvalidSpec, match=r"no such file"):
        load_process(str(path))
    path.write_text("{")
    with pytest.raises(InvalidSpec, match=r"malformed JSON"):
        load_process(str(path))
