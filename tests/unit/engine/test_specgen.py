"""specgen: image config + docker run options -> the OCI spec dict, checked field by field.

No root: the host is a fake `HostInfo` (hybrid cgroups, nofile hard limit 20000, no
CAP_SYS_RESOURCE, two CPUs) with a fake `stat` for devices and bind sources.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from cove.engine.create_options import CreateOptions, MountOption
from cove.engine.host_info import UNLIMITED, HostInfo
from cove.engine.spec_mounts import volume_requests
from cove.engine.specgen import (
    DEFAULT_CAPABILITIES,
    MASKED_PATHS,
    READONLY_PATHS,
    GeneratedSpec,
    generate_spec,
)
from cove.errors import InvalidArgument
from cove.image.bootstrap import HOST_BINDS_LABEL
from cove.image.digest import Digest
from cove.image.image_config import ExecutionConfig, ImageConfig
from cove.oci.runtime_spec import parse_spec
from cove.runtime.capabilities import CAPABILITY_NAMES

CID = "0123456789abcdef0123456789abcdef"
MiB = 1 << 20
ALL_BUT_SYS_RESOURCE = tuple(n for n in CAPABILITY_NAMES if n != "CAP_SYS_RESOURCE")


def _device(kind: int, major: int, minor: int, mode: int = 0o660) -> os.stat_result:
    return os.stat_result((kind | mode, 0, 0, 1, 0, 6, 0, 0, 0, 0),
                          {"st_rdev": os.makedev(major, minor)})  # fmt: skip


DEVICES = {
    "/dev/sda": _device(stat.S_IFBLK, 8, 0),
    "/dev/ttyUSB0": _device(stat.S_IFCHR, 188, 0, 0o666),
    "/dev/null": _device(stat.S_IFCHR, 1, 3, 0o666),
}


def fake_stat(path: str) -> os.stat_result:
    if path in DEVICES:
        return DEVICES[path]
    return os.stat(path)


def make_host(**changes: Any) -> HostInfo:
    host = HostInfo(
        cgroup_v2=False,
        rlimit_hard={"nofile": 20000, "nproc": 4096, "core": UNLIMITED},
        can_raise_rlimits=False,
        nr_open=1048576,
        capabilities=ALL_BUT_SYS_RESOURCE,
        cpus_online={0, 1},
        mems_online={0},
        swap_limit=True,
        kernel=(6, 1),
        machine="x86_64",
        hostname="thehost",
        stat=fake_stat,
        devices=lambda: [("/dev/sda", DEVICES["/dev/sda"]), ("/dev/null", DEVICES["/dev/null"])],
    )
    for key, value in changes.items():
        setattr(host, key, value)
    return host


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "alice:x:1000:1000:Alice:/home/alice:/bin/sh\n"
        "bob:x:1001:1001::/home/bob:/bin/sh\n"
    )
    (root / "etc" / "group").write_text(
        "root:x:0:\nalice:x:1000:\nbob:x:1001:\nstaff:x:50:alice,bob\naudio:x:29:alice\n"
    )
    return root


IMAGE = ExecutionConfig(cmd=("/bin/sh",), env=("PATH=/usr/bin:/bin", "LANG=C.UTF-8"))


def gen(
    rootfs: Path,
    options: CreateOptions | None = None,
    image: ExecutionConfig | ImageConfig | None = IMAGE,
    host: HostInfo | None = None,
    **kw: Any,
) -> GeneratedSpec:
    return generate_spec(
        image,
        options or CreateOptions(),
        str(rootfs),
        container_id=CID,
        image_name="test:1",
        host=host or make_host(),
        **kw,
    )


def spec(rootfs: Path, options: CreateOptions | None = None, **kw: Any) -> dict[str, Any]:
    return gen(rootfs, options, **kw).spec


def mount_at(data: dict[str, Any], destination: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in data["mounts"] if m["destination"] == destination]
    assert len(found) == 1, (destination, data["mounts"])
    return found[0]


def bad(rootfs: Path, options: CreateOptions, *words: str, **kw: Any) -> str:
    with pytest.raises(InvalidArgument) as info:
        gen(rootfs, options, **kw)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    return message


# --- defaults ------------------------------------------------------------------------------


def test_defaults_are_dockers(rootfs: Path) -> None:
    data = spec(rootfs)
    process = data["process"]
    assert process["args"] == ["/bin/sh"]
    assert process["cwd"] == "/"
    assert process["terminal"] is False
    assert process["user"] == {"uid": 0, "gid": 0}
    assert process["noNewPrivileges"] is False
    caps = process["capabilities"]
    assert set(caps) == {"bounding", "effective", "permitted"}
    for name in ("bounding", "effective", "permitted"):
        assert caps[name] == list(DEFAULT_CAPABILITIES)
    assert len(DEFAULT_CAPABILITIES) == 14
    assert data["hostname"] == CID[:12]
    assert data["root"] == {"path": str(rootfs), "readonly": False}
    linux = data["linux"]
    assert linux["maskedPaths"] == list(MASKED_PATHS)
    assert "/sys/devices/virtual/powercap" in linux["maskedPaths"]
    assert linux["readonlyPaths"] == list(READONLY_PATHS)
    assert linux["cgroupsPath"] == f"/cove/{CID}"
    assert linux["sysctl"] == {
        "net.ipv4.ip_unprivileged_port_start": "0",
        "net.ipv4.ping_group_range": "0 2147483647",
    }
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert set(linux["resources"]) == {"devices"}
    parse_spec(data)  # the runtime's own parser accepts it


def test_default_mounts(rootfs: Path) -> None:
    data = spec(rootfs)
    destinations = [m["destination"] for m in data["mounts"]]
    assert destinations == ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup",
                            "/dev/mqueue", "/dev/shm"]  # fmt: skip
    shm = mount_at(data, "/dev/shm")
    assert shm["type"] == "tmpfs"
    assert f"size={64 * MiB}" in shm["options"]
    assert "mode=1777" in shm["options"]
    assert "ro" in mount_at(data, "/sys")["options"]
    assert "ro" in mount_at(data, "/sys/fs/cgroup")["options"]
    assert mount_at(data, "/dev/mqueue")["type"] == "mqueue"
    assert "gid=5" in mount_at(data, "/dev/pts")["options"]


def test_namespaces_hybrid_host_has_no_cgroup_namespace(rootfs: Path) -> None:
    types = [ns["type"] for ns in spec(rootfs)["linux"]["namespaces"]]
    assert types == ["mount", "network", "uts", "pid", "ipc"]


def test_namespaces_v2_host_has_a_private_cgroup_namespace(rootfs: Path) -> None:
    data = spec(rootfs, host=make_host(cgroup_v2=True))
    assert {"type": "cgroup"} in data["linux"]["namespaces"]


def test_default_device_rules(rootfs: Path) -> None:
    rules = spec(rootfs)["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    allowed = {(r.get("type"), r.get("major"), r.get("minor"), r["access"]) for r in rules[1:]}
    for major, minor in ((1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)):
        assert ("c", major, minor, "rwm") in allowed
    assert ("c", None, None, "m") in allowed
    assert ("b", None, None, "m") in allowed
    assert ("c", 136, None, "rwm") in allowed
    assert all(r["allow"] for r in rules[1:])


def test_environment(rootfs: Path) -> None:
    env = spec(rootfs)["process"]["env"]
    assert env[0] == "PATH=/usr/bin:/bin"  # the image's PATH replaces the default in place
    assert env[1] == f"HOSTNAME={CID[:12]}"
    assert "LANG=C.UTF-8" in env
    assert "HOME=/root" in env
    assert not any(e.startswith("TERM=") for e in env)


def test_environment_default_path_and_tty(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(tty=True), image=ExecutionConfig(cmd=("sh",)))
    env = data["process"]["env"]
    assert env[0] == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert "TERM=xterm" in env
    assert data["process"]["terminal"] is True


def test_environment_options_override_image_and_env_file(rootfs: Path) -> None:
    options = CreateOptions(env_file=["A=file", "B=file"], env=["B=flag", "LANG", "HOME=/h"])
    env = spec(rootfs, options)["process"]["env"]
    assert "A=file" in env and "B=flag" in env
    assert not any(e.startswith("LANG") for e in env)  # a bare NAME unsets it
    assert [e for e in env if e.startswith("HOME=")] == ["HOME=/h"]


def test_environment_bad_name(rootfs: Path) -> None:
    bad(rootfs, CreateOptions(env=["=x"]), "--env", "'=x'")


def test_image_config_object_accepted(rootfs: Path) -> None:
    config = ImageConfig(architecture="amd64", os="linux", diff_ids=(Digest.of(b""),),
                         config=ExecutionConfig(cmd=("/bin/true",)))  # fmt: skip
    assert spec(rootfs, image=config)["process"]["args"] == ["/bin/true"]


# --- command ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "entrypoint, cmd, image_entry, image_cmd, expected",
    [
        (None, None, None, ("sh",), ["sh"]),
        (None, ["ls", "-l"], None, ("sh",), ["ls", "-l"]),
        (None, None, ("/ep",), ("a",), ["/ep", "a"]),
        (None, ["b"], ("/ep",), ("a",), ["/ep", "b"]),
        (["/new"], None, ("/ep",), ("a",), ["/new"]),  # the image's Cmd goes too
        (["/new"], ["x"], ("/ep",), ("a",), ["/new", "x"]),
        ([], ["ls"], ("/ep",), ("a",), ["ls"]),  # --entrypoint ""
        (None, [], None, ("sh",), ["sh"]),
    ],
)
def test_entrypoint_and_cmd(
    rootfs: Path,
    entrypoint: list[str] | None,
    cmd: list[str] | None,
    image_entry: tuple[str, ...] | None,
    image_cmd: tuple[str, ...],
    expected: list[str],
) -> None:
    image = ExecutionConfig(entrypoint=image_entry, cmd=image_cmd)
    data = spec(rootfs, CreateOptions(entrypoint=entrypoint, cmd=cmd), image=image)
    assert data["process"]["args"] == expected


def test_no_command(rootfs: Path) -> None:
    bad(rootfs, CreateOptions(), "no command specified", "test:1", image=ExecutionConfig())
    bad(rootfs, CreateOptions(entrypoint=[]), "no command", image=ExecutionConfig(cmd=("sh",)))


def test_workdir(rootfs: Path) -> None:
    image = ExecutionConfig(cmd=("sh",), working_dir="app/")
    assert spec(rootfs, image=image)["process"]["cwd"] == "/app"
    assert spec(rootfs, CreateOptions(workdir="/srv/x/"), image=image)["process"]["cwd"] == "/srv/x"
    bad(rootfs, CreateOptions(workdir="rel"), "--workdir", "'rel'", "absolute")


def test_hostname(rootfs: Path) -> None:
    assert spec(rootfs, CreateOptions(hostname="web-1"))["hostname"] == "web-1"
    assert "HOSTNAME=web-1" in spec(rootfs, CreateOptions(hostname="web-1"))["process"]["env"]
    bad(rootfs, CreateOptions(hostname="bad host"), "--hostname", "'bad host'")


def test_labels_become_annotations(rootfs: Path) -> None:
    image = ExecutionConfig(cmd=("sh",), labels={"a": "image", "b": "image"})
    data = spec(rootfs, CreateOptions(labels={"b": "flag", "c": "flag"}), image=image)
    annotations = data["annotations"]
    assert annotations["a"] == "image"
    assert annotations["b"] == "flag"
    assert annotations["c"] == "flag"


def test_stop_signal(rootfs: Path) -> None:
    assert gen(rootfs).stop_signal == "SIGTERM"
    image = ExecutionConfig(cmd=("sh",), stop_signal="SIGQUIT")
    assert gen(rootfs, image=image).stop_signal == "SIGQUIT"
    result = gen(rootfs, CreateOptions(stop_signal="9"), image=image)
    assert result.stop_signal == "SIGKILL"
    assert result.spec["annotations"]["org.opencontainers.image.stopSignal"] == "SIGKILL"
    assert gen(rootfs, CreateOptions(stop_signal="usr1")).stop_signal == "SIGUSR1"
    bad(rootfs, CreateOptions(stop_signal="SIGNOPE"), "--stop-signal", "'SIGNOPE'")


def test_init_flag_and_hook(rootfs: Path, tmp_path: Path) -> None:
    result = gen(rootfs, CreateOptions(init=True))
    assert result.init is True
    assert result.spec["process"]["args"] == ["/bin/sh"]
    binary = tmp_path / "cove-init"
    binary.write_text("")
    result = gen(rootfs, CreateOptions(init=True), init_binary=str(binary))
    assert result.spec["process"]["args"] == ["/dev/cove-init", "--", "/bin/sh"]
    init_mount = mount_at(result.spec, "/dev/cove-init")
    assert init_mount["source"] == str(binary)
    assert "ro" in init_mount["options"]


def test_tty_and_interactive(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(tty=True, interactive=True))
    assert data["process"]["terminal"] is True


# --- users -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "user, uid, gid, extra, home",
    [
        ("", 0, 0, None, "/root"),
        ("alice", 1000, 1000, [50, 29], "/home/alice"),
        ("1000", 1000, 1000, [50, 29], "/home/alice"),
        ("alice:staff", 1000, 50, None, "/home/alice"),
        ("alice:7", 1000, 7, None, "/home/alice"),
        ("4242", 4242, 0, None, "/"),
        ("4242:4343", 4242, 4343, None, "/"),
        ("bob", 1001, 1001, [50], "/home/bob"),
    ],
)
def test_user(
    rootfs: Path, user: str, uid: int, gid: int, extra: list[int] | None, home: str
) -> None:
    data = spec(rootfs, CreateOptions(user=user))
    expected: dict[str, Any] = {"uid": uid, "gid": gid}
    if extra:
        expected["additionalGids"] = extra
    assert data["process"]["user"] == expected
    assert f"HOME={home}" in data["process"]["env"]


def test_image_user_used_when_no_flag(rootfs: Path) -> None:
    image = ExecutionConfig(cmd=("sh",), user="bob")
    assert spec(rootfs, image=image)["process"]["user"]["uid"] == 1001
    assert spec(rootfs, CreateOptions(user="0"), image=image)["process"]["user"]["uid"] == 0


def test_unknown_user_and_group(rootfs: Path) -> None:
    message = bad(rootfs, CreateOptions(user="mallory"), "'mallory'", "test:1")
    assert "passwd" in message
    bad(rootfs, CreateOptions(user="alice:nogroup"), "'nogroup'", "test:1", "/etc/group")


def test_user_not_read_from_the_host(rootfs: Path, tmp_path: Path) -> None:
    # /etc/passwd is an absolute symlink: it means the image's own /etc/real-passwd
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "real-passwd").write_text("carol:x:77:77::/c:/bin/sh\n")
    (rootfs / "etc" / "passwd").symlink_to("/etc/real-passwd")
    assert spec(rootfs, CreateOptions(user="carol"))["process"]["user"]["uid"] == 77
    # a link climbing out of the rootfs is not followed: "root" of the host is not found
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to("../../../../../../../../etc/passwd")
    bad(rootfs, CreateOptions(user="root"), "'root'")
    assert spec(rootfs, CreateOptions(user="0"))["process"]["user"]["uid"] == 0


# --- capabilities -------------------------------------------------------------------------


def caps_of(rootfs: Path, options: CreateOptions, **kw: Any) -> list[str]:
    caps = spec(rootfs, options, **kw)["process"]["capabilities"]
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    result: list[str] = caps["bounding"]
    return result


def test_cap_add_and_drop(rootfs: Path) -> None:
    caps = caps_of(rootfs, CreateOptions(cap_add=["sys_admin", "CAP_NET_ADMIN"],
                                         cap_drop=["chown", "CAP_KILL"]))  # fmt: skip
    assert "CAP_SYS_ADMIN" in caps and "CAP_NET_ADMIN" in caps
    assert "CAP_CHOWN" not in caps and "CAP_KILL" not in caps
    assert len(caps) == 14


def test_cap_drop_all(rootfs: Path) -> None:
    assert caps_of(rootfs, CreateOptions(cap_drop=["ALL"])) == []
    assert caps_of(rootfs, CreateOptions(cap_drop=["all"], cap_add=["NET_RAW"])) == ["CAP_NET_RAW"]


def test_cap_add_all(rootfs: Path) -> None:
    caps = caps_of(rootfs, CreateOptions(cap_add=["ALL"], cap_drop=["MKNOD"]))
    assert caps == [n for n in ALL_BUT_SYS_RESOURCE if n != "CAP_MKNOD"]


def test_unknown_capability(rootfs: Path) -> None:
    bad(rootfs, CreateOptions(cap_add=["FLY"]), "--cap-add", "'FLY'", "unknown capability")
    bad(rootfs, CreateOptions(cap_drop=["CAP_NOPE"]), "--cap-drop", "'CAP_NOPE'")


def test_cap_the_engine_lacks(rootfs: Path) -> None:
    bad(rootfs, CreateOptions(cap_add=["SYS_RESOURCE"]), "--cap-add", "CAP_SYS_RESOURCE")
    result = gen(rootfs, host=make_host(capabilities=("CAP_CHOWN", "CAP_KILL")))
    assert result.spec["process"]["capabilities"]["bounding"] == ["CAP_CHOWN", "CAP_KILL"]
    assert any("CAP_MKNOD" in w for w in result.warnings)


def test_privileged(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(privileged=True, security_opt=["seccomp=/nope"]))
    assert data["process"]["capabilities"]["bounding"] == list(ALL_BUT_SYS_RESOURCE)
    linux = data["linux"]
    assert linux["maskedPaths"] == [] and linux["readonlyPaths"] == []
    assert "seccomp" not in linux
    assert {"allow": True, "access": "rwm"} in linux["resources"]["devices"]
    assert [d["path"] for d in linux["devices"]] == ["/dev/sda", "/dev/null"]
    assert linux["devices"][0]["type"] == "b" and linux["devices"][0]["major"] == 8
    assert "ro" not in mount_at(data, "/sys")["options"]
    assert "ro" not in mount_at(data, "/sys/fs/cgroup")["options"]


# --- security options ----------------------------------------------------------------------


def test_no_new_privileges(rootfs: Path) -> None:
    for value, expected in (
        ("no-new-privileges", True),
        ("no-new-privileges:true", True),
        ("no-new-privileges=true", True),
        ("no-new-privileges:false", False),
    ):
        data = spec(rootfs, CreateOptions(security_opt=[value]))  # fmt: skip
        assert data["process"]["noNewPrivileges"] is expected
    bad(rootfs, CreateOptions(security_opt=["no-new-privileges:maybe"]), "--security-opt")


def test_seccomp_unconfined(rootfs: Path) -> None:
    for value in ("seccomp=unconfined", "seccomp:unconfined"):
        assert "seccomp" not in spec(rootfs, CreateOptions(security_opt=[value]))["linux"]


def test_seccomp_file_in_dockers_format(rootfs: Path, tmp_path: Path) -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [{"architecture": "SCMP_ARCH_X86_64",
                     "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW",
             "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
             "includes": {"arches": ["amd64"]}},
            {"names": ["s390_x"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
            {"names": ["future"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "9.0"}},
        ],
    }  # fmt: skip
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    seccomp = spec(rootfs, CreateOptions(security_opt=[f"seccomp={path}"]))["linux"]["seccomp"]
    assert seccomp["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = [n for rule in seccomp["syscalls"] for n in rule["names"]]
    assert names == ["read", "write", "clone", "arch_prctl"]
    with_admin = spec(
        rootfs, CreateOptions(security_opt=[f"seccomp={path}"], cap_add=["SYS_ADMIN"])
    )
    names = [n for rule in with_admin["linux"]["seccomp"]["syscalls"] for n in rule["names"]]
    assert "mount" in names and "clone" not in names
    # the JSON text itself (what Docker's CLI sends)
    inline = spec(rootfs, CreateOptions(security_opt=["seccomp=" + json.dumps(profile)]))
    assert inline["linux"]["seccomp"] == seccomp


def test_seccomp_bad_file(rootfs: Path, tmp_path: Path) -> None:
    bad(rootfs, CreateOptions(security_opt=[f"seccomp={tmp_path}/missing.json"]), "missing.json")
    (tmp_path / "broken.json").write_text("{nope")
    bad(rootfs, CreateOptions(security_opt=[f"seccomp={tmp_path}/broken.json"]), "not JSON")
    (tmp_path / "empty.json").write_text("{}")
    bad(rootfs, CreateOptions(security_opt=[f"seccomp={tmp_path}/empty.json"]), "defaultAction")


def test_bad_security_opt(rootfs: Path) -> None:
    bad(rootfs, CreateOptions(security_opt=["bogus=1"]), "--security-opt", "'bogus=1'")


def test_label_and_apparmor_opts_are_ignored_with_a_warning(rootfs: Path) -> None:
    result = gen(rootfs, CreateOptions(security_opt=["label=disable", "apparmor=unconfined"]))
    assert len(result.warnings) == 2  # those two (the default nofile is clamped silently)


def test_systempaths_unconfined(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(security_opt=["systempaths=unconfined"]))
    assert data["linux"]["maskedPaths"] == [] and data["linux"]["readonlyPaths"] == []


# --- mounts ------------------------------------------------------------------------------


def test_read_only_root(rootfs: Path) -> None:
    assert spec(rootfs, CreateOptions(read_only=True))["root"]["readonly"] is True


def test_volume_binds(rootfs: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = spec(rootfs, CreateOptions(volumes=[f"{src}:/data", f"{src}/:/ro:ro,Z",
                                               f"{src}:/shared:rshared"]))  # fmt: skip
    expected = {"destination": "/data", "type": "bind", "source": str(src),
                "options": ["rbind", "rprivate"]}  # fmt: skip
    assert mount_at(data, "/data") == expected
    assert mount_at(data, "/ro")["options"] == ["rbind", "ro", "rprivate"]
    assert mount_at(data, "/shared")["options"] == ["rbind", "rshared"]


def test_volume_errors(rootfs: Path, tmp_path: Path) -> None:
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}/nope:/x"]), "--volume", "does not exist")
    bad(rootfs, CreateOptions(volumes=["named:/x"]), "--volume", "'named' was not prepared")
    bad(rootfs, CreateOptions(volumes=["/x"]), "--volume", "'/x' was not prepared")
    bad(rootfs, CreateOptions(volumes=["./rel:/x"]), "--volume", "absolute host path")
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}:/x:nocopy"]), "--volume", "'nocopy'")
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}:rel"]), "--volume", "absolute")
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}:/"]), "--volume", "over /")
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}:/x:bogus"]), "--volume", "'bogus'")
    bad(rootfs, CreateOptions(volumes=[f"{tmp_path}:/x", f"{tmp_path}:/x/"]), "duplicate", "/x")


def test_mount_flag(rootfs: Path, tmp_path: Path) -> None:
    options = CreateOptions(mounts=[
        f"type=bind,source={tmp_path},target=/b,readonly,bind-propagation=rslave",
        f"type=bind,src={tmp_path},dst=/nr,bind-nonrecursive",
        "type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770",
        MountOption(type="bind", source=str(tmp_path), target="/obj"),
    ])  # fmt: skip
    data = spec(rootfs, options)
    assert mount_at(data, "/b")["options"] == ["rbind", "ro", "rslave"]
    assert mount_at(data, "/nr")["options"] == ["bind", "rprivate"]
    tmpfs = mount_at(data, "/t")
    assert tmpfs["type"] == "tmpfs"
    assert f"size={MiB}" in tmpfs["options"] and "mode=1770" in tmpfs["options"]
    assert mount_at(data, "/obj")["source"] == str(tmp_path)


def test_mount_flag_errors(rootfs: Path, tmp_path: Path) -> None:
    bad(rootfs, CreateOptions(mounts=["type=volume,source=v,target=/x"]), "--mount", "prepared")
    bad(rootfs, CreateOptions(mounts=["type=bind,target=/x"]), "--mount", "source")
    bad(rootfs, CreateOptions(mounts=[f"type=bind,source={tmp_path}/no,target=/x"]),
        "--mount", "does not exist")  # fmt: skip
    bad(rootfs, CreateOptions(mounts=["type=tmpfs,target=/x,colour=red"]), "'colour'")
    bad(rootfs, CreateOptions(mounts=["type=nfs,target=/x"]), "unknown type")


def test_tmpfs_flag(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(tmpfs=["/run", "/exec:exec,size=2m,mode=755"]))
    assert mount_at(data, "/run") == {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
                                      "options": ["nosuid", "nodev", "noexec"]}  # fmt: skip
    assert mount_at(data, "/exec")["options"] == ["nosuid", "nodev", "exec", "size=2m", "mode=755"]
    bad(rootfs, CreateOptions(tmpfs=["run"]), "--tmpfs", "absolute")
    bad(rootfs, CreateOptions(tmpfs=["/x:size=lots"]), "--tmpfs size", "'lots'")


def test_user_mount_replaces_a_default(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(tmpfs=["/dev/shm:size=1g"]))
    shm = mount_at(data, "/dev/shm")
    assert shm["source"] == "tmpfs" and "size=1g" in shm["options"]


def test_mounts_sorted_parents_first(rootfs: Path, tmp_path: Path) -> None:
    data = spec(rootfs, CreateOptions(volumes=[f"{tmp_path}:/a/b/c", f"{tmp_path}:/a"]))
    destinations = [m["destination"] for m in data["mounts"]]
    assert destinations.index("/a") < destinations.index("/a/b/c")


def test_shm_size(rootfs: Path) -> None:
    shm = mount_at(spec(rootfs, CreateOptions(shm_size="128m")), "/dev/shm")
    assert f"size={128 * MiB}" in shm["options"]
    bad(rootfs, CreateOptions(shm_size="big"), "--shm-size", "'big'")
    bad(rootfs, CreateOptions(shm_size="0b"), "--shm-size")


def test_image_host_binds(rootfs: Path) -> None:
    label = json.dumps([{"source": "/usr", "destination": "/usr"},
                        {"source": "/var/lib", "destination": "/var/lib"}])  # fmt: skip
    image = ExecutionConfig(cmd=("sh",), labels={HOST_BINDS_LABEL: label})
    data = spec(rootfs, image=image)
    assert data["mounts"][0] == {"destination": "/usr", "type": "bind", "source": "/usr",
                                 "options": ["rbind", "ro", "rprivate"]}  # fmt: skip
    assert mount_at(data, "/var/lib")["options"] == ["rbind", "ro", "rprivate"]


def test_image_volumes_left_for_the_engine(rootfs: Path, tmp_path: Path) -> None:
    image = ExecutionConfig(cmd=("sh",), volumes=("/data", "/cache/"))
    result = gen(rootfs, CreateOptions(volumes=[f"{tmp_path}:/data"]), image=image)
    assert result.volumes == ["/cache"]
    assert all(m["destination"] != "/cache" for m in result.spec["mounts"])


def test_volumes_prepared_by_the_engine(rootfs: Path, tmp_path: Path) -> None:
    image = ExecutionConfig(cmd=("sh",), volumes=("/cache", "/data"))
    options = CreateOptions(
        volumes=["named:/n:ro,nocopy", "/anon", f"{tmp_path}:/data"],
        mounts=["type=volume,source=other,target=/o,readonly", "type=volume,target=/m"],
    )
    folders = {key: f"/v/{key.strip('/')}" for key in ("named", "/anon", "other", "/m", "/cache")}
    result = gen(rootfs, options, image=image, volumes=folders)
    data = result.spec
    assert mount_at(data, "/n") == {"destination": "/n", "type": "bind", "source": "/v/named",
                                    "options": ["rbind", "ro", "rprivate"]}  # fmt: skip
    assert mount_at(data, "/anon")["source"] == "/v/anon"
    assert mount_at(data, "/o")["options"] == ["rbind", "ro", "rprivate"]
    assert mount_at(data, "/m")["source"] == "/v/m"
    cache = mount_at(data, "/cache")
    assert (cache["source"], cache["options"]) == ("/v/cache", ["rbind", "rprivate"])
    assert mount_at(data, "/data")["source"] == str(tmp_path)
    assert result.volumes == ["/cache"]


def test_volume_requests(tmp_path: Path) -> None:
    image = ExecutionConfig(cmd=("sh",), volumes=("/cache/", "/data", "/t", "/cache", "/"))
    options = CreateOptions(
        volumes=["named:/n:ro,nocopy", "/anon/", f"{tmp_path}:/data"],
        mounts=["type=volume,source=other,target=/o,volume-label=k=v,volume-opt=type=tmpfs,"
                "volume-opt=device=tmpfs", "type=volume,target=/m,volume-nocopy"],
        tmpfs=["/t:size=1m"],
    )  # fmt: skip
    found = volume_requests(image, options)
    assert [(r.key, r.destination, r.read_only, r.nocopy) for r in found] == [
        ("named", "/n", True, True), ("/anon", "/anon", False, False),
        ("other", "/o", False, False), ("/m", "/m", False, True),
        ("/cache", "/cache", False, False),
    ]  # fmt: skip
    assert found[0].mode == "ro,nocopy" and found[2].labels == {"k": "v"}
    assert found[2].options == {"type": "tmpfs", "device": "tmpfs"}
    for text in ("bad$name:/x", "a:/x", "-dash:/x"):
        with pytest.raises(InvalidArgument, match="invalid volume name"):
            volume_requests(image, CreateOptions(volumes=[text]))
    with pytest.raises(InvalidArgument, match="invalid volume name"):
        volume_requests(image, CreateOptions(mounts=["type=volume,source=a/b,target=/x"]))


# --- resources ---------------------------------------------------------------------------


def test_memory(rootfs: Path) -> None:
    memory = spec(rootfs, CreateOptions(memory="512m"))["linux"]["resources"]["memory"]
    assert memory == {"limit": 512 * MiB, "swap": 1024 * MiB}  # Docker: swap = 2 x memory
    options = CreateOptions(memory="1g", memory_swap="1.5g", memory_reservation="256m",
                            oom_kill_disable=True)  # fmt: skip
    memory = spec(rootfs, options)["linux"]["resources"]["memory"]
    assert memory == {"limit": 1 << 30, "swap": 3 << 29, "reservation": 256 * MiB,
                      "disableOOMKiller": True}  # fmt: skip
    memory = spec(rootfs, CreateOptions(memory=64 * MiB, memory_swap="-1"))
    assert memory["linux"]["resources"]["memory"]["swap"] == -1


def test_memory_without_swap_accounting(rootfs: Path) -> None:
    host = make_host(swap_limit=False)
    result = gen(rootfs, CreateOptions(memory="64m", memory_swap="128m"), host=host)
    assert result.spec["linux"]["resources"]["memory"] == {"limit": 64 * MiB}
    assert any("swap" in w for w in result.warnings)


@pytest.mark.parametrize(
    "options, words",
    [
        (CreateOptions(memory="5x"), ("--memory", "'5x'")),
        (CreateOptions(memory="4m"), ("--memory", "6MB")),
        (CreateOptions(memory_swap="1g"), ("--memory-swap", "--memory")),
        (CreateOptions(memory="1g", memory_swap="512m"), ("--memory-swap", "'512m'")),
        (CreateOptions(memory="64m", memory_reservation="128m"), ("--memory-reservation",)),
        (CreateOptions(memory_reservation="1k"), ("--memory-reservation", "6MB")),
        (CreateOptions(cpus="-1"), ("--cpus", "'-1'")),
        (CreateOptions(cpus="lots"), ("--cpus", "'lots'")),
        (CreateOptions(cpus="3"), ("--cpus", "2 CPUs")),
        (CreateOptions(cpus="0.001"), ("--cpus",)),
        (CreateOptions(cpus="1", cpu_quota=50000), ("--cpus", "--cpu-quota")),
        (CreateOptions(cpu_period=10), ("--cpu-period", "'10'")),
        (CreateOptions(cpu_quota=10), ("--cpu-quota", "'10'")),
        (CreateOptions(cpu_shares=-5), ("--cpu-shares",)),
        (CreateOptions(cpuset_cpus="0-3"), ("--cpuset-cpus", "'0-3'", "not available")),
        (CreateOptions(cpuset_cpus="a"), ("--cpuset-cpus", "'a'")),
        (CreateOptions(cpuset_mems="1"), ("--cpuset-mems", "'1'")),
        (CreateOptions(blkio_weight=5), ("--blkio-weight", "'5'")),
        (CreateOptions(device_read_bps=["/dev/sda"]), ("--device-read-bps",)),
        (CreateOptions(device_read_bps=["/dev/nope:1mb"]), ("--device-read-bps", "/dev/nope")),
        (CreateOptions(device_write_bps=["/dev/null:1mb"]), ("--device-write-bps", "block")),
        (
            CreateOptions(device_read_iops=["/dev/sda:fast"]),
            ("--device-read-iops", "'/dev/sda:fast'"),
        ),
        (CreateOptions(ulimits=["bogus=1"]), ("--ulimit", "'bogus=1'", "unknown")),
        (CreateOptions(ulimits=["nofile=10:5"]), ("--ulimit", "soft")),
        (CreateOptions(ulimits=["nofile"]), ("--ulimit",)),
        (CreateOptions(ulimits=["nproc=x"]), ("--ulimit", "'x'")),
        (CreateOptions(sysctls={"vm.swappiness": "1"}), ("--sysctl", "vm.swappiness")),
        (CreateOptions(sysctls={"kernel.hostname": "x"}), ("--sysctl", "--hostname")),
        (CreateOptions(network="host", sysctls={"net.ipv4.ip_forward": "1"}), ("--sysctl", "host")),
        (CreateOptions(network="no such/name"), ("--network", "'no such/name'")),
        (CreateOptions(devices=["/dev/nope"]), ("--device", "/dev/nope")),
        (CreateOptions(devices=["/dev/null:/x:rwz"]), ("--device", "permissions")),
        (CreateOptions(devices=["dev/null"]), ("--device", "absolute")),
    ],
)
def test_bad_values(rootfs: Path, options: CreateOptions, words: tuple[str, ...]) -> None:
    bad(rootfs, options, *words)


def test_cpus(rootfs: Path) -> None:
    cpu = spec(rootfs, CreateOptions(cpus="1.5"))["linux"]["resources"]["cpu"]
    assert cpu == {"quota": 150000, "period": 100000}
    options = CreateOptions(cpu_shares=512, cpu_quota=20000, cpu_period=50000,
                            cpuset_cpus="0-1", cpuset_mems="0")  # fmt: skip
    cpu = spec(rootfs, options)["linux"]["resources"]["cpu"]
    assert cpu == {"shares": 512, "quota": 20000, "period": 50000, "cpus": "0-1", "mems": "0"}
    assert "cpu" not in spec(rootfs, CreateOptions(cpus="0"))["linux"]["resources"]


def test_cpu_shares_clamped_with_a_warning(rootfs: Path) -> None:
    result = gen(rootfs, CreateOptions(cpu_shares=1))
    assert result.spec["linux"]["resources"]["cpu"]["shares"] == 2
    assert any("--cpu-shares" in w for w in result.warnings)


def test_pids_limit(rootfs: Path) -> None:
    assert spec(rootfs, CreateOptions(pids_limit=100))["linux"]["resources"]["pids"] == {
        "limit": 100
    }
    assert spec(rootfs, CreateOptions(pids_limit=-1))["linux"]["resources"]["pids"] == {"limit": -1}
    assert "pids" not in spec(rootfs, CreateOptions(pids_limit=0))["linux"]["resources"]


def test_block_io(rootfs: Path) -> None:
    options = CreateOptions(blkio_weight=300, device_read_bps=["/dev/sda:1mb"],
                            device_write_bps=["/dev/sda:2m"], device_read_iops=["/dev/sda:100"],
                            device_write_iops=["/dev/sda:200"])  # fmt: skip
    block_io = spec(rootfs, options)["linux"]["resources"]["blockIO"]
    assert block_io == {
        "weight": 300,
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": MiB}],
        "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2 * MiB}],
        "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
        "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 200}],
    }


def test_devices(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(devices=["/dev/ttyUSB0", "/dev/sda:/dev/xvda:r",
                                               "/dev/null:rw"]))  # fmt: skip
    nodes = data["linux"]["devices"]
    assert nodes[0] == {"path": "/dev/ttyUSB0", "type": "c", "major": 188, "minor": 0,
                        "fileMode": 0o666, "uid": 0, "gid": 6}  # fmt: skip
    assert nodes[1]["path"] == "/dev/xvda" and nodes[1]["type"] == "b"
    assert nodes[2]["path"] == "/dev/null"
    rules = data["linux"]["resources"]["devices"]
    assert {"allow": True, "type": "c", "major": 188, "minor": 0, "access": "rwm"} in rules
    assert {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"} in rules
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"} in rules


def test_rlimits_default_nofile_clamped(rootfs: Path) -> None:
    result = gen(rootfs)
    assert result.spec["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000}
    ]
    assert result.warnings == []  # a default is clamped without a word


def test_rlimits_explicit_ulimit_clamped_with_a_warning(rootfs: Path) -> None:
    result = gen(rootfs, CreateOptions(ulimits=["nofile=100000"]))
    assert {"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000} in result.spec["process"][
        "rlimits"
    ]
    assert len(result.warnings) == 1
    assert "--ulimit" in result.warnings[0] and "CAP_SYS_RESOURCE" in result.warnings[0]


def test_rlimits_not_clamped_with_cap_sys_resource(rootfs: Path) -> None:
    result = gen(rootfs, host=make_host(can_raise_rlimits=True))
    assert result.spec["process"]["rlimits"][0]["hard"] == 1048576
    assert result.warnings == []


def test_ulimits(rootfs: Path) -> None:
    options = CreateOptions(ulimits=["nofile=1024:4096", "nproc=100000", "core=-1", "LOCKS=5"])
    result = gen(rootfs, options)
    limits = {r["type"]: (r["soft"], r["hard"]) for r in result.spec["process"]["rlimits"]}
    assert limits["RLIMIT_NOFILE"] == (1024, 4096)
    assert limits["RLIMIT_NPROC"] == (4096, 4096)  # clamped to the host's hard 4096
    assert limits["RLIMIT_CORE"] == (UNLIMITED, UNLIMITED)  # the host allows unlimited
    assert limits["RLIMIT_LOCKS"] == (5, 5)
    assert [w for w in result.warnings if "nproc" in w]
    assert not [w for w in result.warnings if "nofile" in w]


def test_sysctls(rootfs: Path) -> None:
    options = CreateOptions(sysctls={"kernel.shmmax": "1000", "fs.mqueue.msg_max": "20",
                                     "net.ipv4.ip_unprivileged_port_start": "1024",
                                     "kernel.domainname": "example"})  # fmt: skip
    sysctls = spec(rootfs, options)["linux"]["sysctl"]
    assert sysctls["kernel.shmmax"] == "1000"
    assert sysctls["fs.mqueue.msg_max"] == "20"
    assert sysctls["net.ipv4.ip_unprivileged_port_start"] == "1024"
    assert sysctls["net.ipv4.ping_group_range"] == "0 2147483647"


def test_network_host(rootfs: Path) -> None:
    data = spec(rootfs, CreateOptions(network="host"))
    assert {"type": "network"} not in data["linux"]["namespaces"]
    assert data["hostname"] == "thehost"
    assert "sysctl" not in data["linux"]


def test_network_none(rootfs: Path) -> None:
    assert {"type": "network"} in spec(rootfs, CreateOptions(network="none"))["linux"]["namespaces"]


def test_everything_parses_with_the_runtime_parser(rootfs: Path, tmp_path: Path) -> None:
    options = CreateOptions(
        user="alice", memory="1g", memory_swap="2g", memory_reservation="512m",
        oom_kill_disable=True, cpus="1", cpu_shares=100, cpuset_cpus="0", cpuset_mems="0",
        pids_limit=10, blkio_weight=500, device_read_bps=["/dev/sda:1mb"],
        devices=["/dev/ttyUSB0"], cap_add=["NET_ADMIN"], ulimits=["nproc=10:20"],
        sysctls={"kernel.sem": "1 2 3 4"}, tmpfs=["/run"], volumes=[f"{tmp_path}:/h:ro"],
        read_only=True, tty=True, security_opt=["no-new-privileges"],
    )  # fmt: skip
    parse_spec(spec(rootfs, options))


def test_default_seccomp_profile_is_rendered_for_the_caps(rootfs: Path) -> None:
    seccomp = spec(rootfs)["linux"]["seccomp"]
    assert seccomp["defaultErrnoRet"] == errno.EPERM
    names = {n for rule in seccomp["syscalls"] for n in rule["names"]}
    assert "chroot" in names  # CAP_SYS_CHROOT is a default capability
    assert "mount" not in names and "unshare" not in names
    admin = spec(rootfs, CreateOptions(cap_add=["SYS_ADMIN"]))["linux"]["seccomp"]
    names = {n for rule in admin["syscalls"] for n in rule["names"]}
    assert "mount" in names and "unshare" in names
