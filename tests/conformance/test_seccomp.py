"""linux.seccomp: the container's calls filtered as the profile says, in cove, runc and crun.

The probe's `syscall NAME` makes one call through syscall(2) and prints "ok" or the errno
name, so what the filter returns is seen without a C library in between.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from tests.lib.bundle import Bundle
from tests.lib.runtimes import Runtime
from tests.lib.seccomp_profiles import default_profile, deny

pytestmark = pytest.mark.root

BundleFactory = Callable[..., Bundle]
SIGSYS = 31

# What the profile keeps out, and what each call answers in the same container without it
# (the baseline container is unprivileged: runc's default capabilities, no CAP_SYS_ADMIN).
BLOCKED_BY_DEFAULT_PROFILE = {
    "keyctl": "ok",
    "add_key": "ok",
    "request_key": "ENOKEY",
    "unshare": "ok",  # CLONE_NEWUSER needs no capability
}
# Denied without CAP_SYS_ADMIN anyway; the profile must deny them all the same.
PRIVILEGED = ("mount", "umount2", "setns", "pivot_root")


def probe_calls(runtime: Runtime, b: Bundle, names: tuple[str, ...]) -> dict[str, str]:
    b.shell("; ".join(f"echo {name}=$(/bin/coveprobe syscall {name})" for name in names))
    res = runtime.run(b, b.id)
    res.check()
    return dict(line.split("=", 1) for line in res.stdout.split())


def test_denied_syscall_gets_eperm(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["seccomp"] = deny("mkdir", "mkdirat")
    b.shell("mkdir /tmp/denied")
    res = runtime.run(b, b.id)
    assert res.returncode == 1, res.describe()
    assert "Operation not permitted" in res.stderr, res.describe()
    assert not b.host_path("/tmp/denied").exists()


def test_denied_syscall_gets_errno_ret(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["seccomp"] = deny("getcwd", errno_ret=errno.EROFS)
    b.probe("syscall", "getcwd")
    res = runtime.run(b, b.id)
    res.check()
    assert res.stdout.strip() == "EROFS"


def test_other_syscalls_are_untouched(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["seccomp"] = deny("getcwd")
    b.shell("mkdir /tmp/made && echo made")
    res = runtime.run(b, b.id)
    res.check()
    assert res.stdout.strip() == "made"
    assert b.host_path("/tmp/made").is_dir()


def test_argument_filter(runtime: Runtime, bundle: BundleFactory) -> None:
    """Deny personality only for the query value (0xffffffff): the probe asks exactly that."""
    b = bundle()
    profile = deny("personality", errno_ret=errno.EXDEV)
    profile["syscalls"][0]["args"] = [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]
    b.linux["seccomp"] = profile
    b.probe("syscall", "personality")
    res = runtime.run(b, b.id)
    res.check()
    assert res.stdout.strip() == "EXDEV"

    other = bundle("other")
    profile["syscalls"][0]["args"][0]["value"] = 8  # PER_LINUX32: not what the probe asks
    other.linux["seccomp"] = profile
    other.probe("syscall", "personality")
    res = runtime.run(other, other.id)
    res.check()
    assert res.stdout.strip() == "ok"


def test_unknown_syscall_names_are_skipped(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["seccomp"] = deny("cove_no_such_syscall", "getcwd", errno_ret=errno.EROFS)
    b.probe("syscall", "getcwd")
    res = runtime.run(b, b.id)
    res.check()
    assert res.stdout.strip() == "EROFS"


def test_kill_process_action(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["seccomp"] = deny("getcwd", action="SCMP_ACT_KILL_PROCESS")
    b.probe("syscall", "getcwd")
    res = runtime.run(b, b.id)
    assert res.returncode == 128 + SIGSYS, res.describe()
    assert res.stdout == ""


def test_default_action_errno_ret(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    profile = default_profile()
    profile["defaultErrnoRet"] = errno.ENOSYS
    b.linux["seccomp"] = profile
    b.probe("syscall", "keyctl")
    res = runtime.run(b, b.id)
    res.check()
    assert res.stdout.strip() == "ENOSYS"


def test_without_the_profile_the_calls_work(runtime: Runtime, bundle: BundleFactory) -> None:
    """The control for the next test: these answers come from the kernel, not a filter."""
    b = bundle()
    assert probe_calls(runtime, b, tuple(BLOCKED_BY_DEFAULT_PROFILE)) == BLOCKED_BY_DEFAULT_PROFILE


def test_default_profile_blocks_keyring_and_namespaces(
    runtime: Runtime, bundle: BundleFactory
) -> None:
    b = bundle()
    b.linux["seccomp"] = default_profile()
    names = (*BLOCKED_BY_DEFAULT_PROFILE, *PRIVILEGED)
    assert probe_calls(runtime, b, names) == dict.fromkeys(names, "EPERM")


def test_default_profile_shell_unshare_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["seccomp"] = default_profile()
    b.shell("unshare -U true")
    res = runtime.run(b, b.id)
    assert res.returncode != 0, res.describe()
    assert "Operation not permitted" in res.stderr, res.describe()


def test_default_profile_allows_ordinary_work(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["seccomp"] = default_profile()
    b.shell(
        "mkdir -p /tmp/work && cd /tmp/work && echo data > f && cat f | wc -c"
        " && (sleep 0; exit 3); echo status=$?; /bin/coveprobe syscall personality"
        " && /bin/coveprobe syscall ptrace && /bin/coveprobe cwd"
    )
    res = runtime.run(b, b.id)
    res.check()
    assert res.stdout.split() == ["5", "status=3", "ok", "ok", '{"cwd":"/tmp/work"}']


def test_default_profile_without_no_new_privileges(runtime: Runtime, bundle: BundleFactory) -> None:
    """Without no_new_privs the runtime must load the filter while it still holds
    CAP_SYS_ADMIN (before dropping capabilities); the rest of its setup then runs under it."""
    b = bundle()
    b.process["noNewPrivileges"] = False
    b.linux["seccomp"] = default_profile()
    b.shell("/bin/coveprobe nnp; /bin/coveprobe syscall keyctl; /bin/coveprobe syscall unshare")
    res = runtime.run(b, b.id)
    res.check()
    assert res.stdout.split() == ['{"no_new_privs":0}', "EPERM", "EPERM"]


def test_exec_process_gets_the_filter(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["seccomp"] = deny("getcwd", errno_ret=errno.EROFS)
    b.probe("sleep", "30")
    runtime.run(b, b.id, "--detach").check()
    res = runtime.exec(b.id, "/bin/coveprobe", "syscall", "getcwd")
    res.check()
    assert res.stdout.strip() == "EROFS"


def test_invalid_profile_is_rejected_before_start(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["seccomp"] = deny("getcwd", action="SCMP_ACT_FOO")
    res = runtime.create(b, b.id)
    assert not res.ok, res.describe()
    assert runtime.status(b.id) is None
    if runtime.name == "cove":
        assert "linux.seccomp.syscalls[0].action: unknown action 'SCMP_ACT_FOO'" in res.stderr
