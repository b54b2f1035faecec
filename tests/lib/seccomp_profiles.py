"""Seccomp profiles for tests, as linux.seccomp dicts.

`default_profile()` is an allow-list in the spirit of Docker's default profile, written for
these tests (not a copy of Docker's file), as Docker renders it for a container without
CAP_SYS_ADMIN: everything else gets EPERM. What it keeps out, as Docker's does:

- the key management calls (keyctl, add_key, request_key): keys are not namespaced;
- new or joined namespaces (unshare, setns, and clone with any CLONE_NEW* flag);
- mounting and the root (mount, umount2, pivot_root, the new mount API calls);
- the kernel itself (modules, kexec, reboot, swap, acct, quotactl, bpf, perf_event_open,
  userfaultfd, syslog), the clocks (settimeofday, clock_settime, clock_adjtime), NUMA
  policy, file handles (open_by_handle_at), io_uring, and the obsolete calls.

ptrace and process_vm_readv/writev are allowed: since Linux 4.8 ptrace cannot be used to
bypass seccomp, and Docker allows them from that kernel on. clone3 gets ENOSYS rather than
EPERM: its arguments are behind a pointer seccomp cannot inspect, and ENOSYS makes the C
library fall back to clone, whose flags the profile can check. personality is allowed only
for the values programs use (the query, Linux, 32-bit Linux and UNAME26).
"""

from __future__ import annotations

import copy
import errno
import platform
from typing import Any

ALLOWED = """
    accept accept4 access alarm arch_prctl bind brk capget capset chdir chmod chown chown32
    chroot clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
    clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
    epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
    epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2
    fadvise64 fadvise64_64 fallocate fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
    fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat
    fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue
    futex_time64 futex_wait futex_waitv futex_wake futimesat get_robust_list get_thread_area
    getcpu getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
    getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority
    getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getrusage getsid
    getsockname getsockopt gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
    inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy io_getevents
    io_pgetevents io_pgetevents_time64 io_setup io_submit ioctl ioprio_get ioprio_set ipc kill
    landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
    lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr
    lstat lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod
    mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
    mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
    msgctl msgget msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep
    newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
    pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
    prlimit64 process_mrelease process_vm_readv process_vm_writev pselect6 pselect6_time64
    ptrace pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom
    recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2
    restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
    rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo
    sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getattr
    sched_getparam sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
    sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp
    select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg
    sendmsg sendto set_robust_list set_thread_area set_tid_address setfsgid setfsgid32
    setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
    setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
    setdomainname sethostname setrlimit setsid setsockopt setuid setuid32 setxattr shmat
    shmctl shmdt shmget shutdown
    sigaction sigaltstack signal signalfd signalfd4 sigpending sigprocmask sigreturn
    sigsuspend socket socketcall socketpair splice stat stat64 statfs statfs64 statx symlink
    symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
    timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
    timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
    tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
    utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
""".split()

# What the profile exists to keep out; the tests check a few of them from inside.
BLOCKED = """
    acct add_key bpf clock_adjtime clock_settime create_module delete_module finit_module
    fsconfig fsmount fsopen fspick get_kernel_syms get_mempolicy init_module io_uring_enter
    io_uring_register io_uring_setup ioperm iopl kcmp kexec_file_load kexec_load keyctl
    lookup_dcookie mbind mount mount_setattr move_mount move_pages nfsservctl
    open_by_handle_at open_tree perf_event_open pivot_root query_module quotactl reboot
    request_key set_mempolicy setns settimeofday stime swapoff
    swapon syslog sysfs _sysctl umount umount2 unshare uselib userfaultfd ustat vm86 vm86old
""".split()

# CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID
# | CLONE_NEWNET
CLONE_NAMESPACE_FLAGS = 0x7E020000
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)  # Linux, Linux32, UNAME26, query

_ARCHITECTURES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
    "ppc64le": ["SCMP_ARCH_PPC64LE"],
    "s390x": ["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
    "riscv64": ["SCMP_ARCH_RISCV64"],
}


def default_profile(machine: str | None = None) -> dict[str, Any]:
    """A fresh copy of the Docker-like profile for this machine's architectures."""
    overlap = set(ALLOWED) & set(BLOCKED)
    assert not overlap, overlap
    rules: list[dict[str, Any]] = [
        {"names": list(ALLOWED), "action": "SCMP_ACT_ALLOW"},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        # clone's flags are its first argument everywhere but on s390x, where they are the
        # second: the profile is only used on the architectures listed above.
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [
                {
                    "index": 1 if _machine(machine) == "s390x" else 0,
                    "value": CLONE_NAMESPACE_FLAGS,
                    "valueTwo": 0,
                    "op": "SCMP_CMP_MASKED_EQ",
                }
            ],
        },
    ]
    # One rule per value: several conditions on one argument mean "any of them" only by the
    # convention runc follows, so each value gets its own rule, as in Docker's profile.
    rules += [
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
        }
        for value in PERSONALITIES
    ]
    return copy.deepcopy(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": errno.EPERM,
            "architectures": _ARCHITECTURES.get(_machine(machine), []),
            "syscalls": rules,
        }
    )


def deny(
    *names: str, errno_ret: int | None = None, action: str = "SCMP_ACT_ERRNO"
) -> dict[str, Any]:
    """Allow everything but `names`, which get `action` (with `errno_ret` when given)."""
    rule: dict[str, Any] = {"names": list(names), "action": action}
    if errno_ret is not None:
        rule["errnoRet"] = errno_ret
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}


def _machine(machine: str | None) -> str:
    return machine or platform.machine()
