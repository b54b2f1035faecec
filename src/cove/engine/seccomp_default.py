"""Docker's default seccomp profile, as data, and the renderer that turns a profile into
the `linux.seccomp` section of a runtime spec for one container.

The facts are Docker's (its default profile is a published allow-list); the structure is
ours. A profile is a default action (ERRNO, so EPERM) and a list of `Rule`s. A rule may
depend on the container and the host, as in Docker's profile format:

- `caps`: the rule applies only when the container has all these capabilities in its
  bounding set (e.g. `mount` needs CAP_SYS_ADMIN);
- `not_caps`: the rule applies only when it has none of them (e.g. `clone` with its
  namespace flags masked, unless CAP_SYS_ADMIN);
- `arches`: only on these architectures (Docker's names: amd64, arm64, s390x, ...);
- `min_kernel`: only from this kernel on (e.g. ptrace: since 4.8 it cannot bypass seccomp).

`render()` resolves those conditions and writes plain OCI rules. A profile file given
with `--security-opt seccomp=FILE` in Docker's format (`archMap`, `includes`,
`excludes`) goes through the same renderer; a file already in the OCI shape
(`architectures`, no conditions) passes through unchanged.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cove.errors import InvalidArgument


@dataclass(frozen=True)
class Rule:
    names: tuple[str, ...]
    action: str = "SCMP_ACT_ALLOW"
    errno_ret: int | None = None
    args: tuple[dict[str, Any], ...] = ()
    caps: tuple[str, ...] = ()
    not_caps: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    not_arches: tuple[str, ...] = ()
    min_kernel: tuple[int, int] | None = None


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# What every container may call, whatever its capabilities (the big allow-list).
ALWAYS_ALLOWED = _words("""
    accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
    chown32 clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
    clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
    epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
    epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2
    fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown
    fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr
    fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex
    futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat get_robust_list
    get_thread_area getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32
    getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
    getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
    getrusage getsid getsockname getsockopt gettid gettimeofday getuid getuid32 getxattr
    inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy
    io_getevents io_pgetevents io_pgetevents_time64 io_setup io_submit ioctl ioprio_get
    ioprio_set ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self
    lchown lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr
    lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create
    memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
    mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64
    mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync
    munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open openat
    openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect
    poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6
    pselect6_time64 pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv
    recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat
    renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask
    rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64
    rt_tgsigqueueinfo sched_get_priority_max sched_get_priority_min sched_getaffinity
    sched_getattr sched_getparam sched_getscheduler sched_rr_get_interval
    sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
    sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
    semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_robust_list
    set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
    setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
    setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid
    setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
    sigprocmask sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx
    symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
    timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
    timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
    timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
    utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
""")

# Allowed to everyone from Linux 4.8 on, when ptrace can no longer be used to get past a
# seccomp filter.
PTRACE_LIKE = _words("kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace")

# personality(2): only the personas programs use (Linux, UNAME26 and their 32-bit forms)
# and the query 0xffffffff.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

# socket(2): every address family but AF_ALG (38) and AF_VSOCK (40). Conditions in one rule
# all have to hold, so "not 38 and not 40" is three rules: < 38, == 39, > 40.
AF_ALG = 38
AF_VSOCK = 40

# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |
# CLONE_NEWPID | CLONE_NEWNET: without CAP_SYS_ADMIN, clone must not set any of them.
CLONE_NAMESPACE_FLAGS = 0x7E020000

# Calls each capability brings with it (the capability's own checks still apply).
CAPABILITY_RULES: dict[str, tuple[str, ...]] = {
    "CAP_DAC_READ_SEARCH": _words("open_by_handle_at"),
    "CAP_SYS_ADMIN": _words("""
        bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount
        mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname
        sethostname setns syslog umount umount2 unshare
    """),
    "CAP_SYS_BOOT": _words("reboot"),
    "CAP_SYS_CHROOT": _words("chroot"),
    "CAP_SYS_MODULE": _words("delete_module init_module finit_module"),
    "CAP_SYS_PACCT": _words("acct"),
    "CAP_SYS_PTRACE": PTRACE_LIKE,
    "CAP_SYS_RAWIO": _words("iopl ioperm"),
    "CAP_SYS_TIME": _words("settimeofday stime clock_settime clock_settime64 clock_adjtime "
                           "clock_adjtime64"),
    "CAP_SYS_TTY_CONFIG": _words("vhangup"),
    "CAP_SYS_NICE": _words("get_mempolicy mbind set_mempolicy set_mempolicy_home_node"),
    "CAP_SYSLOG": _words("syslog"),
    "CAP_BPF": _words("bpf"),
    "CAP_PERFMON": _words("perf_event_open"),
}  # fmt: skip

# Architecture-specific calls, by Docker's architecture names.
ARCH_RULES: dict[tuple[str, ...], tuple[str, ...]] = {
    ("amd64", "x32", "386"): _words("arch_prctl modify_ldt"),
    ("ppc64le",): _words("sync_file_range2 swapcontext"),
    ("arm", "arm64"): _words(
        "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls"
    ),
    ("s390", "s390x"): _words("s390_pci_mmio_read s390_pci_mmio_write s390_runtime_instr"),
    ("riscv64",): _words("riscv_flush_icache"),
}

# The seccomp architectures a filter lists for a host (the native one and the compat ones).
SECCOMP_ARCHES: dict[str, tuple[str, ...]] = {
    "amd64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "arm64": ("SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"),
    "ppc64le": ("SCMP_ARCH_PPC64LE",),
    "s390x": ("SCMP_ARCH_S390X", "SCMP_ARCH_S390"),
    "riscv64": ("SCMP_ARCH_RISCV64",),
    "386": ("SCMP_ARCH_X86",),
    "arm": ("SCMP_ARCH_ARM",),
}

# uname -m -> Docker's (Go's) architecture name.
_MACHINES = {
    "x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "i386": "386",
    "i686": "386", "armv7l": "arm", "armv6l": "arm",
}  # fmt: skip
# Docker's profile format names the seccomp architectures in archMap this way.
_SCMP_TO_ARCH = {
    "SCMP_ARCH_X86_64": "amd64", "SCMP_ARCH_X86": "386", "SCMP_ARCH_X32": "x32",
    "SCMP_ARCH_AARCH64": "arm64", "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_PPC64LE": "ppc64le",
    "SCMP_ARCH_S390X": "s390x", "SCMP_ARCH_S390": "s390", "SCMP_ARCH_RISCV64": "riscv64",
}  # fmt: skip


def go_arch(machine: str | None = None) -> str:
    """This machine's architecture as Docker names it ("amd64", "arm64", ...)."""
    raw = machine or os.uname().machine
    return _MACHINES.get(raw, raw)


def kernel_version(release: str | None = None) -> tuple[int, int]:
    text = release or os.uname().release
    parts = []
    for piece in text.split(".")[:2]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits or 0))
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


def default_rules() -> list[Rule]:
    """Docker's default profile as rules (before capabilities and the host are known)."""
    rules = [Rule(ALWAYS_ALLOWED), Rule(PTRACE_LIKE, min_kernel=(4, 8))]
    rules += [
        Rule(("personality",), args=({"index": 0, "value": value, "op": "SCMP_CMP_EQ"},))
        for value in PERSONALITIES
    ]
    rules += [
        Rule(("socket",), args=({"index": 0, "value": AF_ALG, "op": "SCMP_CMP_LT"},)),
        Rule(("socket",), args=({"index": 0, "value": AF_ALG + 1, "op": "SCMP_CMP_EQ"},)),
        Rule(("socket",), args=({"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_GT"},)),
    ]
    rules += [Rule(names, arches=arches) for arches, names in ARCH_RULES.items()]
    rules += [Rule(names, caps=(cap,)) for cap, names in CAPABILITY_RULES.items()]
    # clone(2) without CAP_SYS_ADMIN: no namespace flags (the flags are the second
    # argument on s390, the first elsewhere). clone3 hides its flags behind a pointer
    # seccomp cannot read: ENOSYS makes the C library fall back to clone.
    clone_mask = {"value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
    rules += [
        Rule(("clone",), args=({"index": 0, **clone_mask},), not_caps=("CAP_SYS_ADMIN",),
             not_arches=("s390", "s390x")),
        Rule(("clone",), args=({"index": 1, **clone_mask},), not_caps=("CAP_SYS_ADMIN",),
             arches=("s390", "s390x")),
        Rule(("clone3",), action="SCMP_ACT_ERRNO", errno_ret=errno.ENOSYS,
             not_caps=("CAP_SYS_ADMIN",)),
    ]  # fmt: skip
    return rules


def _applies(rule: Rule, caps: set[str], arch: str, kernel: tuple[int, int]) -> bool:
    if rule.caps and not all(cap in caps for cap in rule.caps):
        return False
    if rule.not_caps and any(cap in caps for cap in rule.not_caps):
        return False
    if rule.arches and arch not in rule.arches:
        return False
    if rule.not_arches and arch in rule.not_arches:
        return False
    return not (rule.min_kernel is not None and kernel < rule.min_kernel)


def render(
    rules: Iterable[Rule],
    caps: Iterable[str],
    machine: str | None = None,
    kernel: tuple[int, int] | None = None,
    default_action: str = "SCMP_ACT_ERRNO",
    default_errno: int | None = errno.EPERM,
    architectures: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The OCI `linux.seccomp` dict for a container with bounding set `caps`."""
    arch = go_arch(machine)
    host_kernel = kernel or kernel_version()
    cap_set = {c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper() for c in caps}
    syscalls = []
    for rule in rules:
        if not rule.names or not _applies(rule, cap_set, arch, host_kernel):
            continue
        entry: dict[str, Any] = {"names": list(rule.names), "action": rule.action}
        if rule.errno_ret is not None:
            entry["errnoRet"] = rule.errno_ret
        if rule.args:
            entry["args"] = [dict(arg) for arg in rule.args]
        syscalls.append(entry)
    profile: dict[str, Any] = {"defaultAction": default_action}
    if default_errno is not None:
        profile["defaultErrnoRet"] = default_errno
    arches = SECCOMP_ARCHES.get(arch, ()) if architectures is None else architectures
    if arches:
        profile["architectures"] = list(arches)
    profile["syscalls"] = syscalls
    return profile


def default_profile(
    caps: Iterable[str], machine: str | None = None, kernel: tuple[int, int] | None = None
) -> dict[str, Any]:
    """Docker's default profile rendered for a container with bounding set `caps`."""
    return render(default_rules(), caps, machine, kernel)


# --- profiles from files -------------------------------------------------------------------


def _fail(source: str, problem: str) -> InvalidArgument:
    return InvalidArgument(f"invalid --security-opt seccomp={source}: {problem}")


def _strings(value: Any, source: str, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(source, f"{what} must be a list of strings")
    return tuple(value)


def _condition(node: Any, source: str, what: str) -> Mapping[str, Any]:
    if node is None:
        return {}
    if not isinstance(node, dict):
        raise _fail(source, f"{what} must be an object")
    return node


def render_file_profile(
    data: Any,
    caps: Iterable[str],
    source: str = "FILE",
    machine: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A profile in Docker's format (or already OCI) -> the OCI `linux.seccomp` dict."""
    if not isinstance(data, dict):
        raise _fail(source, "the profile must be a JSON object")
    default_action = data.get("defaultAction")
    if not isinstance(default_action, str) or not default_action:
        raise _fail(source, "defaultAction is required")
    arch = go_arch(machine)
    architectures: tuple[str, ...] = ()
    if "archMap" in data and data["archMap"] is not None:
        arch_map = data["archMap"]
        if not isinstance(arch_map, list):
            raise _fail(source, "archMap must be a list")
        for item in arch_map:
            item = _condition(item, source, "archMap entry")
            native = item.get("architecture", "")
            if _SCMP_TO_ARCH.get(native) == arch:
                subs = _strings(item.get("subArchitectures"), source, "subArchitectures")
                architectures = (native, *subs)
    else:
        architectures = _strings(data.get("architectures"), source, "architectures")
    rules = []
    for index, node in enumerate(data.get("syscalls") or []):
        where = f"syscalls[{index}]"
        if not isinstance(node, dict):
            raise _fail(source, f"{where} must be an object")
        names = _strings(node.get("names"), source, f"{where}.names")
        if not names and isinstance(node.get("name"), str):
            names = (node["name"],)
        action = node.get("action")
        if not isinstance(action, str):
            raise _fail(source, f"{where}.action is required")
        includes = _condition(node.get("includes"), source, f"{where}.includes")
        excludes = _condition(node.get("excludes"), source, f"{where}.excludes")
        min_kernel = None
        if includes.get("minKernel"):
            min_kernel = kernel_version(str(includes["minKernel"]))
        errno_ret = node.get("errnoRet")
        args = node.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, dict) for a in args):
            raise _fail(source, f"{where}.args must be a list of objects")
        rules.append(
            Rule(
                names=names,
                action=action,
                errno_ret=errno_ret if isinstance(errno_ret, int) else None,
                args=tuple(args),
                caps=_strings(includes.get("caps"), source, f"{where}.includes.caps"),
                not_caps=_strings(excludes.get("caps"), source, f"{where}.excludes.caps"),
                arches=_strings(includes.get("arches"), source, f"{where}.includes.arches"),
                not_arches=_strings(excludes.get("arches"), source, f"{where}.excludes.arches"),
                min_kernel=min_kernel,
            )
        )
    default_errno = data.get("defaultErrnoRet")
    profile = render(
        rules,
        caps,
        machine,
        kernel,
        default_action=default_action,
        default_errno=default_errno if isinstance(default_errno, int) else None,
        architectures=architectures,
    )
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if data.get(key):
            profile[key] = data[key]
    return profile
