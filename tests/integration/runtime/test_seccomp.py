"""Seccomp filters loaded for real, each in a forked child of the test (no container).

The filter is compiled in the test process and loaded in the child, as the runtime does
(compile before the fork, load in the container's process). The child sets no_new_privs
first, as a container with process.noNewPrivileges does, makes one call and reports its
result through a pipe.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cove.errors import ProcessSetupError
from cove.oci.seccomp import parse_seccomp
from cove.runtime.seccomp import CompiledFilter, compile_filter, load_filter
from tests.lib.seccomp_profiles import default_profile, deny

pytest.importorskip("pyseccomp", reason="pyseccomp (and libseccomp.so.2) not installed")

PR_SET_NO_NEW_PRIVS = 38
LIBC = ctypes.CDLL(None, use_errno=True)
# What a child needs after the filter is in place to report and exit (default-deny tests).
CHILD_NEEDS = [
    "write", "exit", "exit_group", "brk", "mmap", "munmap", "mremap", "madvise",
    "rt_sigprocmask", "rt_sigreturn", "futex", "close", "getpid", "gettid",
]  # fmt: skip


class Outcome:
    def __init__(self, status: int, report: str) -> None:
        self.status = status
        self.report = report

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    def __repr__(self) -> str:
        return f"Outcome(status={self.status:#x}, report={self.report!r})"


def in_child(
    profile: dict[str, Any], call: Callable[[], str], no_new_privs: bool = True
) -> Outcome:
    """Fork; the child loads `profile`, runs `call` and writes what it returns."""
    compiled = compile_filter(parse_seccomp(profile))
    return _fork(lambda: _load_then(compiled, call, no_new_privs))


def _load_then(compiled: CompiledFilter, call: Callable[[], str], no_new_privs: bool) -> str:
    if no_new_privs:
        LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    compiled.load()
    return call()


def _fork(body: Callable[[], str]) -> Outcome:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        try:
            report = body()
        except BaseException as exc:
            report = f"raised {type(exc).__name__}: {exc}"
        try:
            os.write(write_end, report.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    return Outcome(status, b"".join(chunks).decode())


def errno_of(function: Callable[[], object]) -> str:
    """The errno name `function` fails with, or "ok"."""
    try:
        function()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return "ok"


def personality(value: int) -> str:
    """personality(2) with `value`, through libc; the errno name or "ok"."""
    ctypes.set_errno(0)
    result = LIBC.personality(ctypes.c_ulong(value))
    return errno.errorcode[ctypes.get_errno()] if result == -1 else "ok"


QUERY = 0xFFFFFFFF  # personality's "tell me" value
PER_LINUX32 = 0x0008


def test_control_without_a_filter() -> None:
    outcome = _fork(lambda: errno_of(os.getcwd))
    assert outcome.report == "ok"


def test_denied_call_gets_eperm() -> None:
    assert in_child(deny("getcwd"), lambda: errno_of(os.getcwd)).report == "EPERM"


def test_denied_call_gets_the_configured_errno() -> None:
    outcome = in_child(deny("getcwd", errno_ret=errno.EROFS), lambda: errno_of(os.getcwd))
    assert outcome.report == "EROFS"


def test_other_calls_keep_working() -> None:
    outcome = in_child(deny("mkdir", "mkdirat"), lambda: errno_of(os.getcwd))
    assert outcome.report == "ok"


def test_default_action_errno() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno.ENOSYS,
        "syscalls": [{"names": CHILD_NEEDS, "action": "SCMP_ACT_ALLOW"}],
    }
    assert in_child(profile, lambda: errno_of(os.getcwd)).report == "ENOSYS"


def test_default_action_errno_defaults_to_eperm() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "syscalls": [{"names": CHILD_NEEDS, "action": "SCMP_ACT_ALLOW"}],
    }
    assert in_child(profile, lambda: errno_of(os.getcwd)).report == "EPERM"


def test_argument_filter_denies_only_the_matching_value() -> None:
    profile = deny("personality", errno_ret=errno.EACCES)
    profile["syscalls"][0]["args"] = [{"index": 0, "value": PER_LINUX32, "op": "SCMP_CMP_EQ"}]
    outcome = in_child(profile, lambda: f"{personality(PER_LINUX32)} {personality(QUERY)}")
    assert outcome.report == "EACCES ok"


def test_conditions_on_one_argument_match_any_of_them() -> None:
    profile = deny("personality")
    profile["syscalls"][0]["args"] = [
        {"index": 0, "value": PER_LINUX32, "op": "SCMP_CMP_EQ"},
        {"index": 0, "value": 0x20000, "op": "SCMP_CMP_EQ"},
    ]
    outcome = in_child(
        profile, lambda: " ".join(personality(v) for v in (PER_LINUX32, 0x20000, QUERY))
    )
    assert outcome.report == "EPERM EPERM ok"


def test_masked_eq() -> None:
    # deny personality when its low byte is 8 (PER_LINUX32 with any flags above it)
    profile = deny("personality")
    profile["syscalls"][0]["args"] = [
        {"index": 0, "value": 0xFF, "valueTwo": PER_LINUX32, "op": "SCMP_CMP_MASKED_EQ"}
    ]
    outcome = in_child(
        profile, lambda: " ".join(personality(v) for v in (0x20008, PER_LINUX32, QUERY))
    )
    assert outcome.report == "EPERM EPERM ok"


def test_unknown_names_are_skipped() -> None:
    profile = deny("cove_no_such_call", "getcwd", errno_ret=errno.EROFS)
    assert in_child(profile, lambda: errno_of(os.getcwd)).report == "EROFS"


def test_kill_process() -> None:
    outcome = in_child(deny("getcwd", action="SCMP_ACT_KILL_PROCESS"), lambda: errno_of(os.getcwd))
    assert outcome.signal == signal.SIGSYS, outcome
    assert outcome.report == ""


def test_trap_raises_sigsys() -> None:
    outcome = in_child(deny("getcwd", action="SCMP_ACT_TRAP"), lambda: errno_of(os.getcwd))
    assert outcome.signal == signal.SIGSYS, outcome


def test_trace_without_a_tracer_fails_with_enosys() -> None:
    outcome = in_child(deny("getcwd", action="SCMP_ACT_TRACE"), lambda: errno_of(os.getcwd))
    assert outcome.report == "ENOSYS"


def test_log_allows() -> None:
    outcome = in_child(deny("getcwd", action="SCMP_ACT_LOG"), lambda: errno_of(os.getcwd))
    assert outcome.report == "ok"


def test_flags_load() -> None:
    profile = deny("getcwd")
    profile["flags"] = [
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    ]
    assert in_child(profile, lambda: errno_of(os.getcwd)).report == "EPERM"


def test_filter_is_inherited_across_fork_and_exec(coveprobe: Path) -> None:
    def call() -> str:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the grandchild
            os.dup2(write_end, 1)
            os.execv(str(coveprobe), [str(coveprobe), "syscall", "getcwd"])
        os.close(write_end)
        output = os.read(read_end, 4096).decode().strip()
        os.waitpid(pid, 0)
        return output

    assert in_child(deny("getcwd", errno_ret=errno.EROFS), call).report == "EROFS"


def test_docker_like_profile_blocks_keyring_and_namespaces() -> None:
    import pyseccomp  # type: ignore[import-untyped]

    calls = [
        ("keyctl", (0, -3, 0)),  # KEYCTL_GET_KEYRING_ID of the session keyring
        ("add_key", (0, 0, 0, 0, -2)),  # (bad pointers: EFAULT if it were allowed)
        ("unshare", (0x10000000,)),  # CLONE_NEWUSER
        ("getpid", ()),
    ]
    numbers = [pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) for name, _ in calls]

    def call() -> str:
        results = []
        for number, (_, args) in zip(numbers, calls, strict=True):
            ctypes.set_errno(0)
            rc = LIBC.syscall(ctypes.c_long(number), *(ctypes.c_long(a) for a in args))
            results.append("ok" if rc >= 0 else errno.errorcode[ctypes.get_errno()])
        return " ".join(results)

    assert _fork(call).report == "ok EFAULT ok ok"  # the control, without a filter
    assert in_child(default_profile(), call).report == "EPERM EPERM EPERM ok"


def test_load_filter_builds_and_loads() -> None:
    profile = parse_seccomp(deny("getcwd", errno_ret=errno.EXDEV))

    def body() -> str:
        LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        load_filter(profile)
        return errno_of(os.getcwd)

    assert _fork(body).report == "EXDEV"


def test_loading_does_not_set_no_new_privs() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs CAP_SYS_ADMIN to load a filter without no_new_privs")
    outcome = in_child(
        deny("getcwd"),
        lambda: open("/proc/self/status").read().split("NoNewPrivs:")[1].split()[0],
        no_new_privs=False,
    )
    assert outcome.report == "0"


def test_without_no_new_privs_or_cap_sys_admin_loading_fails_clearly() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to another user")
    compiled = compile_filter(parse_seccomp(deny("getcwd")))

    def body() -> str:
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)  # all capabilities go with root
        try:
            compiled.load()
        except ProcessSetupError as exc:
            return str(exc)
        return "loaded"

    report = _fork(body).report
    assert report.startswith("linux.seccomp: cannot load the filter: permission denied")
    assert "CAP_SYS_ADMIN" in report


def test_cached_program_loaded_raw_denies_like_libseccomp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The BPF from the cache, loaded with the seccomp() syscall, enforces the profile."""
    from cove.runtime.seccomp_bpf import filter_for

    monkeypatch.setenv("COVE_SECCOMP_CACHE", str(tmp_path))
    profile = parse_seccomp(deny("getcwd", errno_ret=errno.ENOTTY))
    filter_for(profile)  # fills the cache
    cached = filter_for(profile)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read_end)
        code = "ok"
        try:
            ctypes.CDLL(None).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
            cached.load()
            os.getcwd()
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, "?")
        except BaseException as exc:
            code = f"error {exc}"
        os.write(write_end, code.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read_end, 100).decode() == "ENOTTY"
    os.close(read_end)
