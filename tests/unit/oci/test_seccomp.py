"""cove.oci.seccomp: the typed linux.seccomp section and its errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import cove
from cove.errors import InvalidSpec
from cove.oci.reader import Field
from cove.oci.seccomp import (
    ACTIONS,
    ARCHITECTURES,
    FLAGS,
    OPERATORS,
    SeccompArg,
    SeccompProfile,
    SeccompSyscall,
    parse_seccomp,
)


def full_profile() -> dict[str, Any]:
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30},
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [
                    {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
                ],
            },
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}],
            },
        ],
    }


def error_of(data: Any) -> str:
    with pytest.raises(InvalidSpec) as info:
        parse_seccomp(data)
    return str(info.value)


def test_full_profile_is_typed() -> None:
    profile = parse_seccomp(full_profile())
    assert profile == SeccompProfile(
        default_action="SCMP_ACT_ERRNO",
        default_errno_ret=38,
        architectures=("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
        flags=("SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"),
        syscalls=(
            SeccompSyscall(("read", "write"), "SCMP_ACT_ALLOW"),
            SeccompSyscall(("mkdir",), "SCMP_ACT_ERRNO", errno_ret=30),
            SeccompSyscall(
                ("clone",),
                "SCMP_ACT_ALLOW",
                args=(SeccompArg(0, "SCMP_CMP_MASKED_EQ", 0x7E020000, 0),),
            ),
            SeccompSyscall(
                ("personality",), "SCMP_ACT_ALLOW", args=(SeccompArg(0, "SCMP_CMP_EQ", 8),)
            ),
        ),
    )
    assert not profile.uses_notify()


def test_minimal_profile_defaults() -> None:
    profile = parse_seccomp({"defaultAction": "SCMP_ACT_ALLOW"})
    assert profile.default_errno_ret is None
    assert profile.architectures == profile.flags == profile.syscalls == ()
    assert profile.listener_path == profile.listener_metadata == ""
    # errnoRet absent means "EPERM" to the runtime: it is kept as None here
    rule = parse_seccomp(
        {"defaultAction": "SCMP_ACT_ALLOW",
         "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    ).syscalls[0]  # fmt: skip
    assert rule.errno_ret is None
    assert rule.args == ()


def test_accepts_a_reader_field_and_keeps_its_path() -> None:
    node = Field({"seccomp": {"defaultAction": "SCMP_ACT_NOPE"}}, "linux").need("seccomp")
    with pytest.raises(InvalidSpec, match=r"^linux\.seccomp\.defaultAction: unknown action"):
        parse_seccomp(node)


def test_custom_path_names_fields() -> None:
    with pytest.raises(InvalidSpec, match=r"^profile\.json\.defaultAction: required"):
        parse_seccomp({}, path="profile.json")


@pytest.mark.parametrize("action", ACTIONS)
def test_every_spec_action_is_known(action: str) -> None:
    data: dict[str, Any] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["getcwd"], "action": action}],
    }
    assert parse_seccomp(data).syscalls[0].action == action


def test_known_names_cover_the_spec() -> None:
    assert "SCMP_ACT_KILL_PROCESS" in ACTIONS and "SCMP_ACT_NOTIFY" in ACTIONS
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_RISCV64"} <= set(ARCHITECTURES)
    assert len(OPERATORS) == 7
    assert "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in FLAGS


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("defaultAction"),
         r"linux.seccomp.defaultAction: required field is missing"),
        (lambda d: d.update(defaultAction="SCMP_ACT_FOO"),
         r"linux.seccomp.defaultAction: unknown action 'SCMP_ACT_FOO'"),
        (lambda d: d.update(defaultAction=1),
         r"linux.seccomp.defaultAction: expected a string, got a number"),
        (lambda d: d.update(defaultErrnoRet=-1),
         r"linux.seccomp.defaultErrnoRet: out of range: -1 (0 to 65535)"),
        (lambda d: d.update(defaultErrnoRet="EPERM"),
         r"linux.seccomp.defaultErrnoRet: expected an integer, got a string"),
        (lambda d: d["architectures"].append("SCMP_ARCH_VAX"),
         r"linux.seccomp.architectures[3]: unknown architecture 'SCMP_ARCH_VAX'"),
        (lambda d: d.update(architectures="SCMP_ARCH_X86"),
         r"linux.seccomp.architectures: expected an array, got a string"),
        (lambda d: d["flags"].insert(0, "SECCOMP_FILTER_FLAG_NEW_LISTENER"),
         r"linux.seccomp.flags[0]: unknown flag 'SECCOMP_FILTER_FLAG_NEW_LISTENER'"),
        (lambda d: d.update(syscalls={}),
         r"linux.seccomp.syscalls: expected an array, got an object"),
        (lambda d: d["syscalls"][3].update(action="SCMP_ACT_FOO"),
         r"linux.seccomp.syscalls[3].action: unknown action 'SCMP_ACT_FOO'"),
        (lambda d: d["syscalls"][1].pop("action"),
         r"linux.seccomp.syscalls[1].action: required field is missing"),
        (lambda d: d["syscalls"][0].pop("names"),
         r"linux.seccomp.syscalls[0].names: required field is missing"),
        (lambda d: d["syscalls"][0].update(names=[]),
         r"linux.seccomp.syscalls[0].names: must name at least one system call"),
        (lambda d: d["syscalls"][0].update(names=["read", ""]),
         r"linux.seccomp.syscalls[0].names[1]: empty system call name"),
        (lambda d: d["syscalls"][0].update(names=["read", 3]),
         r"linux.seccomp.syscalls[0].names[1]: expected a string, got a number"),
        (lambda d: d["syscalls"][1].update(errnoRet=70000),
         r"linux.seccomp.syscalls[1].errnoRet: out of range: 70000 (0 to 65535)"),
        (lambda d: d["syscalls"][2]["args"][0].update(op="SCMP_CMP_LIKE"),
         r"linux.seccomp.syscalls[2].args[0].op: unknown operator 'SCMP_CMP_LIKE'"),
        (lambda d: d["syscalls"][2]["args"][0].update(index=6),
         r"linux.seccomp.syscalls[2].args[0].index: out of range: 6"),
        (lambda d: d["syscalls"][2]["args"][0].pop("index"),
         r"linux.seccomp.syscalls[2].args[0].index: required field is missing"),
        (lambda d: d["syscalls"][2]["args"][0].pop("value"),
         r"linux.seccomp.syscalls[2].args[0].value: required field is missing"),
        (lambda d: d["syscalls"][2]["args"][0].update(value=-1),
         r"linux.seccomp.syscalls[2].args[0].value: out of range: -1"),
        (lambda d: d["syscalls"][2]["args"][0].update(valueTwo=1 << 64),
         r"linux.seccomp.syscalls[2].args[0].valueTwo: out of range"),
        (lambda d: d["syscalls"][2]["args"][0].update(value=True),
         r"linux.seccomp.syscalls[2].args[0].value: expected an integer, got a boolean"),
        (lambda d: d.update(listenerPath="agent.sock"),
         r"linux.seccomp.listenerPath: must be an absolute path, got 'agent.sock'"),
        (lambda d: d.update(defaultAction="SCMP_ACT_NOTIFY", listenerPath="/run/a.sock"),
         r"linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"),
        (lambda d: d["syscalls"][1].update(action="SCMP_ACT_NOTIFY"),
         r"linux.seccomp: SCMP_ACT_NOTIFY needs listenerPath"),
    ],
)  # fmt: skip
def test_errors_name_the_field(edit: Any, message: str) -> None:
    data = full_profile()
    edit(data)
    assert re.match(re.escape(message), error_of(data)), error_of(data)


def test_not_an_object() -> None:
    assert error_of([]) == "linux.seccomp: expected an object, got an array"


def test_boundaries_are_accepted() -> None:
    data = full_profile()
    data["syscalls"][2]["args"] = [
        {"index": 5, "value": (1 << 64) - 1, "valueTwo": (1 << 64) - 1, "op": "SCMP_CMP_LE"}
    ]
    data["syscalls"][1]["errnoRet"] = 0
    profile = parse_seccomp(data)
    assert profile.syscalls[2].args[0] == SeccompArg(5, "SCMP_CMP_LE", (1 << 64) - 1, (1 << 64) - 1)
    assert profile.syscalls[1].errno_ret == 0


def test_several_conditions_on_one_argument_are_kept() -> None:
    data = full_profile()
    data["syscalls"][3]["args"] = [
        {"index": 0, "value": value, "op": "SCMP_CMP_EQ"} for value in (0, 8, 0x20000, 0x20008)
    ] + [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}] * 4
    assert len(parse_seccomp(data).syscalls[3].args) == 8


def test_duplicate_architectures_and_flags_collapse() -> None:
    data = full_profile()
    data["architectures"] = ["SCMP_ARCH_X86", "SCMP_ARCH_X86"]
    data["flags"] = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_LOG"]
    profile = parse_seccomp(data)
    assert profile.architectures == ("SCMP_ARCH_X86",)
    assert profile.flags == ("SECCOMP_FILTER_FLAG_LOG",)


def test_notify_with_listener_is_valid_data() -> None:
    data = full_profile()
    data["listenerPath"] = "/run/agent.sock"
    data["listenerMetadata"] = "hello"
    data["syscalls"][1]["action"] = "SCMP_ACT_NOTIFY"
    profile = parse_seccomp(data)
    assert profile.uses_notify()
    assert (profile.listener_path, profile.listener_metadata) == ("/run/agent.sock", "hello")


def test_unknown_members_are_ignored() -> None:
    data = full_profile()
    data["comment"] = "ours"
    data["syscalls"][0]["includes"] = {"caps": ["CAP_SYS_ADMIN"]}
    assert parse_seccomp(data) == parse_seccomp(full_profile())


def test_import_is_cheap() -> None:
    """Only stdlib basics and cove.oci: the runtime imports it for every container."""
    src = str(Path(cove.__file__).resolve().parents[1])
    code = (
        f"import sys; sys.path.insert(0, {src!r}); import cove.oci.seccomp; "
        "heavy = {'dataclasses', 'typing', 'json', 're', 'ctypes', 'pyseccomp'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    res = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
