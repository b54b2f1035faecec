"""cove.runtime.config: the spec converted into flags, numbers and checked paths."""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cove.errors import InvalidSpec
from cove.oci.default_spec import default_spec
from cove.runtime.config import ContainerConfig, MountEntry, convert_mount
from cove.sys import constants as c

ConfigFactory = Callable[[dict[str, Any]], ContainerConfig]


def mount(
    options: tuple[str, ...],
    fstype: str = "tmpfs",
    source: str = "tmpfs",
    destination: str = "/mnt",
    bundle: str = "/nonexistent-bundle",
    index: int = 0,
) -> MountEntry:
    return convert_mount(source, destination, fstype, options, bundle, index)


# --- mount options ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "flags"),
    [
        ((), 0),
        (("defaults",), 0),
        (("ro",), c.MS_RDONLY),
        (("ro", "rw"), 0),
        (("rw", "ro"), c.MS_RDONLY),
        (("nosuid",), c.MS_NOSUID),
        (("nosuid", "suid"), 0),
        (("suid", "nosuid"), c.MS_NOSUID),
        (("nodev", "noexec", "nosuid"), c.MS_NODEV | c.MS_NOEXEC | c.MS_NOSUID),
        (("noexec", "exec"), 0),
        (("nodev", "dev"), 0),
        (("strictatime", "noatime", "relatime"), c.MS_STRICTATIME | c.MS_NOATIME | c.MS_RELATIME),
        (("noatime", "atime"), 0),
        (("sync", "async"), 0),
        (("sync", "dirsync"), c.MS_SYNCHRONOUS | c.MS_DIRSYNC),
        (("silent",), c.MS_SILENT),
        (("nosymfollow", "lazytime"), c.MS_NOSYMFOLLOW | c.MS_LAZYTIME),
    ],
)
def test_flags_set_and_cleared(options: tuple[str, ...], flags: int) -> None:
    entry = mount(options)
    assert entry.flags == flags
    assert entry.data == ""
    assert entry.propagation == ()


def test_unknown_options_become_data_in_order() -> None:
    entry = mount(("nosuid", "strictatime", "mode=755", "size=65536k", "newinstance"))
    assert entry.flags == c.MS_NOSUID | c.MS_STRICTATIME
    assert entry.data == "mode=755,size=65536k,newinstance"


def test_copyup_options_are_ignored() -> None:
    entry = mount(("tmpcopyup", "mode=1777", "nocopyup"))
    assert entry.data == "mode=1777"
    assert entry.flags == 0


def test_propagation_options_collected_in_order(tmp_path: Path) -> None:
    entry = mount(
        ("rbind", "rslave", "private", "runbindable", "shared"),
        fstype="none",
        source=str(tmp_path),
    )
    assert entry.flags == c.MS_BIND | c.MS_REC
    assert entry.propagation == (
        c.MS_SLAVE | c.MS_REC,
        c.MS_PRIVATE,
        c.MS_UNBINDABLE | c.MS_REC,
        c.MS_SHARED,
    )
    assert entry.data == ""


@pytest.mark.parametrize("option", ["idmap", "ridmap"])
def test_idmap_rejected(option: str) -> None:
    with pytest.raises(InvalidSpec, match=rf"^mounts\[3\]: option '{option}' is not supported"):
        mount(("nosuid", option), index=3)


def test_bind_and_rbind_options(tmp_path: Path) -> None:
    assert mount(("bind",), fstype="none", source=str(tmp_path)).flags == c.MS_BIND
    rbind = mount(("rbind", "ro"), fstype="none", source=str(tmp_path))
    assert rbind.flags == c.MS_BIND | c.MS_REC | c.MS_RDONLY
    assert rbind.is_bind


@pytest.mark.parametrize(
    ("fstype", "flags"), [("bind", c.MS_BIND), ("rbind", c.MS_BIND | c.MS_REC)]
)
def test_bind_type_without_bind_option(tmp_path: Path, fstype: str, flags: int) -> None:
    entry = mount(("ro",), fstype=fstype, source=str(tmp_path))
    assert entry.flags == flags | c.MS_RDONLY
    assert entry.fstype == fstype


def test_not_bind_without_bind_flag() -> None:
    entry = mount(("nosuid",))
    assert not entry.is_bind


def test_relative_bind_source_is_under_the_bundle(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    entry = mount(("bind",), fstype="none", source="data", bundle=str(tmp_path))
    assert entry.source == str(tmp_path / "data")


def test_absolute_bind_source_kept(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    entry = mount(("bind",), fstype="", source=str(tmp_path / "file"), bundle="/elsewhere")
    assert entry.source == str(tmp_path / "file")


def test_missing_bind_source(tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec) as info:
        mount(("rbind",), fstype="none", source="nope", bundle=str(tmp_path), index=2)
    assert str(info.value) == (
        f"mounts[2]: bind mount source {str(tmp_path / 'nope')!r} does not exist"
    )


def test_bind_without_source() -> None:
    with pytest.raises(InvalidSpec, match=r"^mounts\[1\]: bind mount of '/mnt' has no source"):
        mount(("bind",), fstype="none", source="", index=1)


def test_mount_without_type() -> None:
    with pytest.raises(InvalidSpec, match=r"^mounts\[4\]: mount of '/x' has no type"):
        mount(("nosuid",), fstype="", source="something", destination="/x", index=4)


def test_destination_kept_as_written() -> None:
    # resolve_in_root interprets it later, inside the rootfs (and refuses climbing '..')
    assert mount((), destination="/a//b/./c/../d/").destination == "/a//b/./c/../d/"


# --- from_spec ----------------------------------------------------------------------------


def test_default_spec_converts(make_config: ConfigFactory, unit_bundle: Path) -> None:
    config = make_config(default_spec())
    assert config.id == "ct"
    assert config.bundle == str(unit_bundle)
    assert config.rootfs == os.path.realpath(unit_bundle / "rootfs")
    assert config.readonly_root is True
    assert config.hostname == "cove"
    assert config.new_namespaces == (
        c.CLONE_NEWPID
        | c.CLONE_NEWNET
        | c.CLONE_NEWIPC
        | c.CLONE_NEWUTS
        | c.CLONE_NEWNS
        | c.CLONE_NEWCGROUP
    )
    assert config.join_namespaces == {}
    assert not config.has_user_namespace
    assert config.mounts_dev
    assert config.rootfs_propagation == c.MS_PRIVATE | c.MS_REC
    assert [m.destination for m in config.mounts][:3] == ["/proc", "/dev", "/dev/pts"]
    sys_mount = config.mounts[5]
    assert sys_mount.fstype == "sysfs"
    assert sys_mount.flags == c.MS_NOSUID | c.MS_NOEXEC | c.MS_NODEV | c.MS_RDONLY
    devpts = config.mounts[2]
    assert devpts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"
    process = config.process
    assert process.args == ("sh",)
    assert (process.uid, process.gid) == (0, 0)
    assert process.terminal is True
    assert process.rlimits == ((resource.RLIMIT_NOFILE, 1024, 1024),)
    assert process.no_new_privileges is True
    assert process.umask is None
    assert config.masked_paths[0] == "/proc/acpi"
    assert config.readonly_paths[-1] == "/proc/sysrq-trigger"


def test_rootless_default_spec_converts(make_config: ConfigFactory) -> None:
    config = make_config(default_spec(rootless=True))
    assert config.has_user_namespace
    assert config.new_namespaces & c.CLONE_NEWUSER
    assert not config.new_namespaces & c.CLONE_NEWNET
    assert config.uid_mappings[0].host_id == os.getuid()
    sys_mount = config.mounts[5]
    assert sys_mount.source == "/sys"
    assert sys_mount.flags == (
        c.MS_BIND | c.MS_REC | c.MS_NOSUID | c.MS_NOEXEC | c.MS_NODEV | c.MS_RDONLY
    )


def test_process_required(make_config: ConfigFactory, spec_dict: dict[str, Any]) -> None:
    del spec_dict["process"]
    with pytest.raises(InvalidSpec, match=r"^process: required"):
        make_config(spec_dict)


def test_rootfs_missing(make_config: ConfigFactory, spec_dict: dict[str, Any]) -> None:
    spec_dict["root"]["path"] = "no-such-rootfs"
    with pytest.raises(InvalidSpec, match=r"^root\.path: rootfs .*no-such-rootfs.* does not exist"):
        make_config(spec_dict)


def test_rootfs_is_a_file(
    make_config: ConfigFactory, spec_dict: dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    spec_dict["root"]["path"] = str(tmp_path / "file")
    with pytest.raises(InvalidSpec, match=r"^root\.path:"):
        make_config(spec_dict)


def test_absolute_and_symlinked_rootfs(
    make_config: ConfigFactory, spec_dict: dict[str, Any], tmp_path: Path
) -> None:
    real = tmp_path / "real-rootfs"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    spec_dict["root"]["path"] = str(tmp_path / "link")
    assert make_config(spec_dict).rootfs == os.path.realpath(real)


def test_namespace_with_path_is_joined(
    make_config: ConfigFactory, spec_dict: dict[str, Any], tmp_path: Path
) -> None:
    netns = tmp_path / "netns"
    netns.write_text("")
    spec_dict["linux"]["namespaces"][1] = {"type": "network", "path": str(netns)}
    config = make_config(spec_dict)
    assert config.join_namespaces == {"network": str(netns)}
    assert not config.new_namespaces & c.CLONE_NEWNET
    assert config.new_namespaces & c.CLONE_NEWPID


def test_namespace_path_must_exist(
    make_config: ConfigFactory, spec_dict: dict[str, Any], tmp_path: Path
) -> None:
    spec_dict["linux"]["namespaces"][1] = {"type": "network", "path": str(tmp_path / "gone")}
    with pytest.raises(InvalidSpec, match=r"^linux\.namespaces: network namespace path .*gone"):
        make_config(spec_dict)


def test_mount_namespace_required(make_config: ConfigFactory, spec_dict: dict[str, Any]) -> None:
    spec_dict["linux"]["namespaces"] = [
        ns for ns in spec_dict["linux"]["namespaces"] if ns["type"] != "mount"
    ]
    with pytest.raises(InvalidSpec, match=r"^linux\.namespaces: a mount namespace is required"):
        make_config(spec_dict)


def test_joined_mount_namespace_suffices(
    make_config: ConfigFactory, spec_dict: dict[str, Any], tmp_path: Path
) -> None:
    mntns = tmp_path / "mnt"
    mntns.write_text("")
    for ns in spec_dict["linux"]["namespaces"]:
        if ns["type"] == "mount":
            ns["path"] = str(mntns)
    config = make_config(spec_dict)
    assert config.join_namespaces == {"mount": str(mntns)}
    assert not config.new_namespaces & c.CLONE_NEWNS


def test_hostname_needs_uts(make_config: ConfigFactory, spec_dict: dict[str, Any]) -> None:
    spec_dict["linux"]["namespaces"] = [
        ns for ns in spec_dict["linux"]["namespaces"] if ns["type"] != "uts"
    ]
    with pytest.raises(InvalidSpec, match=r"^hostname: setting it needs a new uts namespace"):
        make_config(spec_dict)
    spec_dict["hostname"] = ""
    assert make_config(spec_dict).hostname == ""


def test_id_mappings_need_user_namespace(
    make_config: ConfigFactory, spec_dict: dict[str, Any]
) -> None:
    spec_dict["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 1000, "size": 1}]
    with pytest.raises(InvalidSpec, match=r"^linux\.uidMappings: id mappings need a new user"):
        make_config(spec_dict)


@pytest.mark.parametrize("keep", [(), ("uidMappings",), ("gidMappings",)])
def test_user_namespace_needs_both_mappings(
    make_config: ConfigFactory, keep: tuple[str, ...]
) -> None:
    data = default_spec(rootless=True)
    for key in ("uidMappings", "gidMappings"):
        if key not in keep:
            del data["linux"][key]
    with pytest.raises(InvalidSpec, match=r"a new user namespace needs uidMappings and gidMapp"):
        make_config(data)


def test_time_offsets_need_time_namespace(
    make_config: ConfigFactory, spec_dict: dict[str, Any]
) -> None:
    spec_dict["linux"]["timeOffsets"] = {"monotonic": {"secs": 1}}
    with pytest.raises(InvalidSpec, match=r"^linux\.timeOffsets: offsets need a new time"):
        make_config(spec_dict)
    spec_dict["linux"]["namespaces"].append({"type": "time"})
    config = make_config(spec_dict)
    assert config.new_namespaces & c.CLONE_NEWTIME
    assert config.time_offsets["monotonic"].secs == 1


def test_rlimit_names_become_numbers(make_config: ConfigFactory, spec_dict: dict[str, Any]) -> None:
    spec_dict["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_NPROC", "soft": 5, "hard": 5},
    ]
    assert make_config(spec_dict).process.rlimits == (
        (resource.RLIMIT_NOFILE, 10, 20),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_NPROC, 5, 5),
    )


@pytest.mark.parametrize("name", ["RLIMIT_BOGUS", "NOFILE", "RLIM_INFINITY", "rlimit_nofile"])
def test_unknown_rlimit_rejected(
    make_config: ConfigFactory, spec_dict: dict[str, Any], name: str
) -> None:
    spec_dict["process"]["rlimits"] = [{"type": name, "soft": 1, "hard": 1}]
    with pytest.raises(InvalidSpec, match=rf"^process\.rlimits: unknown rlimit type '{name}'"):
        make_config(spec_dict)


@pytest.mark.parametrize(("umask", "ok"), [(0, True), (0o777, True), (0o1000, False), (-1, False)])
def test_umask_range(
    make_config: ConfigFactory, spec_dict: dict[str, Any], umask: int, ok: bool
) -> None:
    spec_dict["process"]["user"]["umask"] = umask
    if ok:
        assert make_config(spec_dict).process.umask == umask
    else:
        with pytest.raises(InvalidSpec, match=r"^process\.user\.umask: out of range"):
            make_config(spec_dict)


@pytest.mark.parametrize(
    ("score", "ok"), [(-1000, True), (0, True), (1000, True), (1001, False), (-1001, False)]
)
def test_oom_score_adj_range(
    make_config: ConfigFactory, spec_dict: dict[str, Any], score: int, ok: bool
) -> None:
    spec_dict["process"]["oomScoreAdj"] = score
    if ok:
        assert make_config(spec_dict).process.oom_score_adj == score
    else:
        with pytest.raises(InvalidSpec, match=rf"^process\.oomScoreAdj: {score} is outside"):
            make_config(spec_dict)


@pytest.mark.parametrize(
    ("value", "flags"),
    [
        ("", c.MS_PRIVATE | c.MS_REC),
        ("private", c.MS_PRIVATE),
        ("rprivate", c.MS_PRIVATE | c.MS_REC),
        ("rslave", c.MS_SLAVE | c.MS_REC),
        ("shared", c.MS_SHARED),
        ("runbindable", c.MS_UNBINDABLE | c.MS_REC),
    ],
)
def test_rootfs_propagation(
    make_config: ConfigFactory, spec_dict: dict[str, Any], value: str, flags: int
) -> None:
    if value:
        spec_dict["linux"]["rootfsPropagation"] = value
    assert make_config(spec_dict).rootfs_propagation == flags


def test_process_fields_carried(make_config: ConfigFactory, spec_dict: dict[str, Any]) -> None:
    spec_dict["process"]["consoleSize"] = {"height": 40, "width": 120}
    spec_dict["process"]["user"] = {"uid": 7, "gid": 8, "additionalGids": [9, 10], "umask": 0o27}
    spec_dict["process"]["cwd"] = "/work"
    process = make_config(spec_dict).process
    assert process.console_size == (40, 120)
    assert (process.uid, process.gid, process.additional_gids) == (7, 8, (9, 10))
    assert process.umask == 0o27
    assert process.cwd == "/work"


def test_mount_errors_carry_the_spec_index(
    make_config: ConfigFactory, spec_dict: dict[str, Any]
) -> None:
    spec_dict["mounts"].append(
        {"destination": "/data", "type": "none", "source": "missing", "options": ["rbind"]}
    )
    with pytest.raises(InvalidSpec, match=r"^mounts\[7\]: bind mount source"):
        make_config(spec_dict)


def test_mounts_dev_only_with_a_dev_mount(
    make_config: ConfigFactory, spec_dict: dict[str, Any]
) -> None:
    spec_dict["mounts"] = [m for m in spec_dict["mounts"] if m["destination"] != "/dev"]
    assert not make_config(spec_dict).mounts_dev
    spec_dict["mounts"].append({"destination": "/dev/", "type": "tmpfs", "source": "tmpfs"})
    assert make_config(spec_dict).mounts_dev
