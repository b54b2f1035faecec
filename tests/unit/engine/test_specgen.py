"""specgen: image config + docker run options -> the OCI spec dict, checked field by field:
the defaults, the command and environment, users; that every option parses with the
runtime's parser. Capabilities and security options, mounts, resources and networks are in
`test_specgen_security.py`, `test_specgen_mounts.py`, `test_specgen_resources.py`.

No root: the host is a fake `HostInfo` (`specgen_helpers.make_host`).
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from cove.engine.create_options import CreateOptions
from cove.engine.specgen import DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS
from cove.image.digest import Digest
from cove.image.image_config import ExecutionConfig, ImageConfig
from cove.oci.runtime_spec import parse_spec
from tests.unit.engine.specgen_helpers import CID, MiB, bad, gen, make_host, mount_at, spec
from tests.unit.engine.specgen_helpers import rootfs as rootfs

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


# --- the whole spec ---------------------------------------------------------------------


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
