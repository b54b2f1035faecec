"""cove.runtime.seccomp: filters built with libseccomp and read back, never loaded here."""

from __future__ import annotations

import errno
import re
import sys
from typing import Any

import pytest

from cove.errors import InvalidSpec, ProcessSetupError
from cove.oci.seccomp import ACTIONS, FLAGS, OPERATORS, parse_seccomp
from cove.runtime import seccomp
from cove.runtime.seccomp import (
    CompiledFilter,
    check_supported,
    compile_check,
    compile_filter,
    features,
    libseccomp_version,
)
from tests.lib.seccomp_profiles import default_profile, deny

pytest.importorskip("pyseccomp", reason="pyseccomp (and libseccomp.so.2) not installed")

NATIVE_X86_64 = sys.platform == "linux" and __import__("platform").machine() == "x86_64"
x86_64_only = pytest.mark.skipif(not NATIVE_X86_64, reason="syscall numbers of x86_64")


def build(data: dict[str, Any]) -> CompiledFilter:
    return compile_filter(parse_seccomp(data))


def pfc(data: dict[str, Any]) -> str:
    return build(data).export_pfc()


def section(text: str, arch: str) -> str:
    """The PFC lines of one architecture's section."""
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if line.startswith("# filter for arch "):
            inside = line.startswith(f"# filter for arch {arch} ")
        elif line.startswith("# invalid architecture action"):
            inside = False
        if inside:
            out.append(line)
    assert out, f"no section for {arch} in:\n{text}"
    return "\n".join(out)


def action_of(text: str, syscall: str) -> str:
    """The action right under `# filter for syscall "NAME"` (rules without arguments)."""
    match = re.search(rf'# filter for syscall "{syscall}" .*\n.*\n\s+action (\S+);', text)
    assert match, f"no rule for {syscall} in:\n{text}"
    return match.group(1)


def test_errno_defaults_to_eperm_and_errno_ret_is_used() -> None:
    text = pfc(
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS},
                {"names": ["rmdir"], "action": "SCMP_ACT_TRACE"},
                {"names": ["chdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 7},
            ],
        }
    )
    assert action_of(text, "mkdir") == f"ERRNO({errno.EPERM})"
    assert action_of(text, "getcwd") == f"ERRNO({errno.EROFS})"
    assert action_of(text, "rmdir") == f"TRACE({errno.EPERM})"
    assert action_of(text, "chdir") == "TRACE(7)"
    assert "  # default action\n  action ALLOW;" in text


@pytest.mark.parametrize(
    ("default", "errno_ret", "expected"),
    [
        ("SCMP_ACT_ERRNO", None, f"ERRNO({errno.EPERM})"),
        ("SCMP_ACT_ERRNO", errno.ENOSYS, f"ERRNO({errno.ENOSYS})"),
        ("SCMP_ACT_KILL", None, "KILL"),
        ("SCMP_ACT_KILL_THREAD", None, "KILL"),
        ("SCMP_ACT_KILL_PROCESS", None, "KILL_PROCESS"),
        ("SCMP_ACT_TRAP", None, "TRAP"),
        ("SCMP_ACT_LOG", None, "LOG"),
        ("SCMP_ACT_TRACE", 3, "TRACE(3)"),
        ("SCMP_ACT_ALLOW", 3, "ALLOW"),  # errnoRet means nothing to ALLOW: ignored, as runc
    ],
)
def test_default_action(default: str, errno_ret: int | None, expected: str) -> None:
    data: dict[str, Any] = {
        "defaultAction": default,
        "syscalls": [{"names": ["exit_group"], "action": "SCMP_ACT_KILL_PROCESS"}],
    }
    if default == "SCMP_ACT_KILL_PROCESS":
        data["syscalls"][0]["action"] = "SCMP_ACT_ALLOW"
    if errno_ret is not None:
        data["defaultErrnoRet"] = errno_ret
    text = pfc(data)
    assert f"  # default action\n  action {expected};" in text


def test_rule_actions() -> None:
    rules = [
        ("read", "SCMP_ACT_ALLOW", "ALLOW"),
        ("write", "SCMP_ACT_LOG", "LOG"),
        ("kill", "SCMP_ACT_KILL_PROCESS", "KILL_PROCESS"),
        ("tkill", "SCMP_ACT_KILL", "KILL"),
        ("tgkill", "SCMP_ACT_KILL_THREAD", "KILL"),
        ("getpid", "SCMP_ACT_TRAP", "TRAP"),
    ]
    text = pfc(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": [name], "action": action} for name, action, _ in rules],
        }
    )
    for name, _, expected in rules:
        assert action_of(text, name) == expected


def test_unknown_names_are_skipped_and_noted() -> None:
    compiled = build(deny("cove_no_such_call", "getcwd", "also\x00bad"))
    assert compiled.notes == (
        "linux.seccomp.syscalls[0].names[0]: unknown system call 'cove_no_such_call': skipped",
        "linux.seccomp.syscalls[0].names[2]: unknown system call 'also\\x00bad': skipped",
    )
    text = compiled.export_pfc()
    assert action_of(text, "getcwd") == f"ERRNO({errno.EPERM})"
    assert "cove_no_such_call" not in text


def test_rule_with_the_default_action_is_skipped() -> None:
    compiled = build(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EPERM},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS},
            ],
        }
    )
    assert compiled.notes == (
        "linux.seccomp.syscalls[1]: the same action as the default action: skipped",
    )
    text = compiled.export_pfc()
    assert '"getcwd"' not in text
    assert action_of(text, "mkdir") == f"ERRNO({errno.EROFS})"


@x86_64_only
def test_architectures_are_added() -> None:
    data = deny("getcwd")
    data["architectures"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_AARCH64"]
    text = pfc(data)
    assert "if ($syscall == 79)" in section(text, "x86_64")  # getcwd's native number
    assert "if ($syscall == 183)" in section(text, "x86")  # i386's getcwd
    assert "if ($syscall == 17)" in section(text, "aarch64")
    only_native = pfc(deny("getcwd"))
    assert "# filter for arch x86 " not in only_native


@x86_64_only
def test_conditions_on_different_arguments_are_all_required() -> None:
    data = deny("socket")
    data["syscalls"][0]["args"] = [
        {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},  # AF_UNIX
        {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"},  # SOCK_DGRAM
    ]
    text = pfc(data)
    # one nested rule: a1 checked inside a0's branch
    assert re.search(
        r"if \(\$a0.lo32 == 1\)\n\s+if \(\$a1.hi32 == 0\)\n\s+if \(\$a1.lo32 == 2\)\n"
        r"\s+action ERRNO\(1\);",
        text,
    ) or re.search(
        r"if \(\$a1.lo32 == 2\)\n\s+if \(\$a0.hi32 == 0\)\n\s+if \(\$a0.lo32 == 1\)\n"
        r"\s+action ERRNO\(1\);",
        text,
    ), text


def test_conditions_on_one_argument_become_separate_rules() -> None:
    data = deny("personality")
    data["syscalls"][0]["args"] = [
        {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
        {"index": 0, "value": 9, "op": "SCMP_CMP_EQ"},
    ]
    text = pfc(data)
    assert text.count("action ERRNO(1);") == 2
    assert "$a0.lo32 == 8" in text and "$a0.lo32 == 9" in text


@pytest.mark.parametrize(
    ("op", "shown"),
    [("SCMP_CMP_NE", "=="), ("SCMP_CMP_LT", ">="), ("SCMP_CMP_LE", ">"), ("SCMP_CMP_EQ", "=="),
     ("SCMP_CMP_GE", ">="), ("SCMP_CMP_GT", ">")],
)  # fmt: skip
def test_every_operator_compiles(op: str, shown: str) -> None:
    data = deny("personality")
    data["syscalls"][0]["args"] = [{"index": 0, "value": 8, "op": op}]
    text = pfc(data)
    assert f"$a0.lo32 {shown} 8" in text  # libseccomp prints LT as "not >=" and so on


def test_masked_eq_uses_value_as_mask_and_value_two_as_datum() -> None:
    data = deny("clone")
    data["syscalls"][0]["args"] = [
        {"index": 0, "value": 0x7E020000, "valueTwo": 0x20000, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    text = pfc(data)
    assert "if ($a0.lo32 & 0x7e020000 == 131072)" in text


def test_flags_set_filter_attributes() -> None:
    data = deny("getcwd")
    data["flags"] = [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ]
    compiled = build(data)
    import pyseccomp  # type: ignore[import-untyped]

    attr = compiled._filter.get_attr  # read back what libseccomp will load with
    assert attr(pyseccomp.Attr.CTL_TSYNC) == 1
    assert attr(pyseccomp.Attr.CTL_LOG) == 1
    assert attr(pyseccomp.Attr.CTL_SSB) == 1
    plain = build(deny("getcwd"))._filter.get_attr
    assert plain(pyseccomp.Attr.CTL_LOG) == 0


def test_loading_never_sets_no_new_privs_by_itself() -> None:
    import pyseccomp

    assert build(deny("getcwd"))._filter.get_attr(pyseccomp.Attr.CTL_NNP) == 0


def test_bpf_export_is_a_whole_number_of_instructions() -> None:
    program = build(default_profile()).export_bpf()
    assert program and len(program) % 8 == 0  # struct sock_filter is 8 bytes


def test_the_docker_like_profile_compiles_completely() -> None:
    compiled = build(default_profile())
    text = compiled.export_pfc()
    assert len(text) > 65536  # more than a pipe holds: exported through a memory file
    native = section(text, {"x86_64": "x86_64"}.get(__import__("platform").machine(), ""))
    for blocked in ("keyctl", "unshare", "mount", "add_key", "request_key"):
        assert f'"{blocked}"' not in native  # not allowed: left to the default action
    assert "action ERRNO(1);" in native
    assert f"action ERRNO({errno.ENOSYS});" in native  # clone3


# -- unsupported and invalid ---------------------------------------------------------------


def test_notify_is_unsupported() -> None:
    data = deny("getcwd", action="SCMP_ACT_NOTIFY")
    data["listenerPath"] = "/run/agent.sock"
    profile = parse_seccomp(data)
    message = (
        r"^linux\.seccomp\.syscalls\[0\]\.action: SCMP_ACT_NOTIFY is not supported by cove: "
        r"it has no seccomp agent \(listenerPath\) support$"
    )
    with pytest.raises(InvalidSpec, match=message):
        check_supported(profile)
    with pytest.raises(InvalidSpec, match=message):
        compile_check(profile)


def test_wait_killable_recv_is_unsupported() -> None:
    data = deny("getcwd")
    data["flags"] = ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    with pytest.raises(
        InvalidSpec,
        match=r"^linux\.seccomp\.flags\[1\]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV is not "
        r"supported by cove: it only applies to SCMP_ACT_NOTIFY",
    ):
        compile_check(parse_seccomp(data))


def test_architecture_libseccomp_does_not_know() -> None:
    data = deny("getcwd")
    data["architectures"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_M68K"]
    if "SCMP_ARCH_M68K" in features()["archs"]:
        pytest.skip("this libseccomp knows m68k")
    with pytest.raises(
        InvalidSpec,
        match=rf"^linux\.seccomp\.architectures\[1\]: SCMP_ARCH_M68K is not supported by "
        rf"libseccomp {re.escape(libseccomp_version())}$",
    ):
        compile_check(parse_seccomp(data))


def test_compile_check_accepts_a_good_profile() -> None:
    compile_check(parse_seccomp(default_profile()))


def test_missing_binding_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # import pyseccomp -> ImportError
    with pytest.raises(ProcessSetupError, match=r"pyseccomp is not installed"):
        compile_check(parse_seccomp(deny("getcwd")))
    assert features() == {"enabled": False}


def test_missing_library_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # pyseccomp raises RuntimeError at import when find_library("seccomp") finds nothing
    error = RuntimeError("Unable to find libseccomp")
    monkeypatch.setattr("builtins.__import__", _raising_import("pyseccomp", error, __import__))
    with pytest.raises(ProcessSetupError, match=r"cannot load libseccomp\.so\.2 \(Debian"):
        seccomp._pyseccomp()


def _raising_import(name: str, error: Exception, original: Any) -> Any:
    def fake(module: str, *args: Any, **kwargs: Any) -> Any:
        if module == name:
            raise error
        return original(module, *args, **kwargs)

    return fake


# -- features -------------------------------------------------------------------------------


def test_features_shape() -> None:
    found = features()
    assert found["enabled"] is True
    assert set(found) == {
        "enabled", "actions", "operators", "archs", "knownFlags", "supportedFlags",
    }  # fmt: skip
    assert found["operators"] == sorted(OPERATORS)
    assert found["knownFlags"] == list(FLAGS)
    assert "SCMP_ACT_NOTIFY" not in found["actions"]  # not supported by cove
    assert set(found["actions"]) <= set(ACTIONS)
    assert {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"} <= set(found["actions"])
    assert "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" not in found["supportedFlags"]
    assert set(found["supportedFlags"]) <= set(found["knownFlags"])
    if NATIVE_X86_64:
        assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"} <= set(found["archs"])


def test_libseccomp_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", libseccomp_version())
