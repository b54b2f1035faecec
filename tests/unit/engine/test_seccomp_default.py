"""seccomp_default: Docker's default profile as data, rendered per capabilities and host."""

from __future__ import annotations

import errno
from typing import Any

from cove.engine.seccomp_default import (
    ALWAYS_ALLOWED,
    CAPABILITY_RULES,
    default_profile,
    go_arch,
    kernel_version,
    render_file_profile,
)
from cove.oci.seccomp import parse_seccomp

DEFAULT_CAPS = ["CAP_CHOWN", "CAP_SYS_CHROOT", "CAP_KILL"]


def rules_for(profile: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [rule for rule in profile["syscalls"] if name in rule["names"]]


def names(profile: dict[str, Any]) -> set[str]:
    return {n for rule in profile["syscalls"] for n in rule["names"]}


def test_shape_and_default_action() -> None:
    profile = default_profile(DEFAULT_CAPS, "x86_64", (6, 1))
    assert profile["defaultAction"] == "SCMP_ACT_ERRNO"
    assert profile["defaultErrnoRet"] == errno.EPERM
    assert profile["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    parse_seccomp(profile)  # the runtime's parser accepts it
    assert len(ALWAYS_ALLOWED) > 300 and len(set(ALWAYS_ALLOWED)) == len(ALWAYS_ALLOWED)


def test_blocked_without_capabilities() -> None:
    allowed = names(default_profile(DEFAULT_CAPS, "x86_64", (6, 1)))
    for call in ("keyctl", "add_key", "request_key", "mount", "umount2", "unshare", "setns",
                 "pivot_root", "reboot", "init_module", "bpf", "perf_event_open", "syslog",
                 "open_by_handle_at", "clock_settime", "acct", "swapon", "kexec_load",
                 "userfaultfd", "io_uring_setup"):  # fmt: skip
        assert call not in allowed, call
    for call in ("read", "execve", "chroot", "ptrace", "arch_prctl", "socketcall"):
        assert call in allowed, call


def test_argument_rules() -> None:
    profile = default_profile(DEFAULT_CAPS, "x86_64", (6, 1))
    values = sorted(r["args"][0]["value"] for r in rules_for(profile, "personality"))
    assert values == [0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF]
    socket = [(r["args"][0]["op"], r["args"][0]["value"]) for r in rules_for(profile, "socket")]
    assert socket == [("SCMP_CMP_LT", 38), ("SCMP_CMP_EQ", 39), ("SCMP_CMP_GT", 40)]
    (clone,) = rules_for(profile, "clone")
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0,
                              "op": "SCMP_CMP_MASKED_EQ"}]  # fmt: skip
    (clone3,) = rules_for(profile, "clone3")
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == errno.ENOSYS


def test_sys_admin_opens_namespaces_and_plain_clone() -> None:
    profile = default_profile([*DEFAULT_CAPS, "CAP_SYS_ADMIN"], "x86_64", (6, 1))
    allowed = names(profile)
    assert {"mount", "unshare", "setns", "umount2"} <= allowed
    assert [r.get("args") for r in rules_for(profile, "clone")] == [None]
    assert all(r["action"] == "SCMP_ACT_ALLOW" for r in rules_for(profile, "clone3"))


def test_capability_rules() -> None:
    for cap, calls in CAPABILITY_RULES.items():
        allowed = names(default_profile([cap], "x86_64", (6, 1)))
        assert set(calls) <= allowed, cap


def test_architectures() -> None:
    arm = default_profile(DEFAULT_CAPS, "aarch64", (6, 1))
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in names(arm) and "cacheflush" in names(arm)
    s390 = default_profile(DEFAULT_CAPS, "s390x", (6, 1))
    assert [r["args"][0]["index"] for r in rules_for(s390, "clone")] == [1]
    assert go_arch("x86_64") == "amd64"


def test_old_kernel_has_no_ptrace() -> None:
    assert "ptrace" not in names(default_profile(DEFAULT_CAPS, "x86_64", (4, 4)))
    assert "ptrace" in names(default_profile(["CAP_SYS_PTRACE"], "x86_64", (4, 4)))


def test_kernel_version() -> None:
    assert kernel_version("6.1.0-18-amd64") == (6, 1)
    assert kernel_version("5.15") == (5, 15)
    assert kernel_version("4") == (4, 0)


def test_oci_file_profile_passes_through() -> None:
    data = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"]}  # fmt: skip
    profile = render_file_profile(data, [], "f.json", "x86_64", (6, 1))
    assert profile == {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                       "syscalls": [{"names": ["keyctl"], "action": "SCMP_ACT_ERRNO",
                                     "errnoRet": 38}],
                       "flags": ["SECCOMP_FILTER_FLAG_LOG"]}  # fmt: skip
