"""specgen: capabilities (--cap-add/--cap-drop, --privileged) and security options
(no-new-privileges, seccomp, systempaths) in the OCI spec.
"""

from __future__ import annotations

import json
from pathlib import Path

from cove.engine.create_options import CreateOptions
from tests.unit.engine.specgen_helpers import (
    ALL_BUT_SYS_RESOURCE,
    bad,
    caps_of,
    gen,
    make_host,
    mount_at,
    spec,
)
from tests.unit.engine.specgen_helpers import rootfs as rootfs

# --- capabilities -------------------------------------------------------------------------


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
