"""The last steps before execve, shared by a container's init and `exec` processes."""

from __future__ import annotations

import os
import resource
import stat

from cove.errors import ExecutableNotFound, ProcessSetupError, SyscallFailed
from cove.runtime import capabilities, lsm
from cove.runtime.config import ProcessConfig
from cove.sys.constants import PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.runtime.seccomp_bpf import BpfFilter
    from cove.sys import Syscalls

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_RLIMIT_NAMES: dict[int, str] = {}
for _name in dir(resource):  # sorted: RLIMIT_NOFILE comes before its alias RLIMIT_OFILE
    if _name.startswith("RLIMIT_"):
        _RLIMIT_NAMES.setdefault(getattr(resource, _name), _name)


def find_executable(name: str, env: tuple[str, ...]) -> str:
    """Resolve args[0] with the container's PATH, as execvp would, but before the switch."""
    if "/" in name:
        _check_executable(name)
        return name
    path = next((e[5:] for e in env if e.startswith("PATH=")), DEFAULT_PATH)
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and os.access(candidate, os.X_OK):
            return candidate
    raise ExecutableNotFound(f'exec: "{name}": executable file not found in $PATH')


def _check_executable(path: str) -> None:
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ExecutableNotFound(f'exec: "{path}": {(exc.strerror or "").lower()}') from None
    if stat.S_ISDIR(mode):
        raise ProcessSetupError(f'exec: "{path}": is a directory')
    if not os.access(path, os.X_OK):
        raise ProcessSetupError(f'exec: "{path}": permission denied')


def apply_limits(process: ProcessConfig) -> None:
    """rlimits and the OOM score, while still privileged."""
    for number, soft, hard in process.rlimits:
        try:
            resource.setrlimit(number, (soft, hard))
        except (OSError, ValueError) as exc:
            name = _RLIMIT_NAMES.get(number, str(number))
            _current_soft, current_hard = resource.getrlimit(number)
            raise ProcessSetupError(
                f"process.rlimits: cannot set {name} to {soft}/{hard}: {exc}; the runtime's "
                f"hard limit is {current_hard} and raising it needs CAP_SYS_RESOURCE"
            ) from None
    if process.oom_score_adj is not None:
        try:
            with open("/proc/self/oom_score_adj", "w") as oom:
                oom.write(str(process.oom_score_adj))
        except OSError as exc:
            raise ProcessSetupError(
                f"process.oomScoreAdj: cannot set {process.oom_score_adj}: {exc.strerror}"
            ) from None


def load_seccomp_before_user_switch(process: ProcessConfig, seccomp: BpfFilter | None) -> None:
    """Without no_new_privs the kernel wants CAP_SYS_ADMIN to load a filter: load it
    while we still have it (as runc does)."""
    if seccomp is not None and not process.no_new_privileges:
        seccomp.load()


def load_seccomp_last(process: ProcessConfig, seccomp: BpfFilter | None) -> None:
    """With no_new_privs, load the filter as the very last step before execve."""
    if seccomp is not None and process.no_new_privileges:
        seccomp.load()


def switch_user(sys: Syscalls, process: ProcessConfig, setgroups_allowed: bool) -> None:
    """Bounding set, groups, gid, then uid (dropping root last), capabilities, umask, cwd,
    no_new_privs."""
    caps = process.capabilities
    if caps is not None:
        capabilities.drop_bounding(sys, caps.bounding)
        sys.prctl(PR_SET_KEEPCAPS, 1)  # keep the permitted set across setresuid
    try:
        if setgroups_allowed:
            sys.setgroups(list(process.additional_gids))
        os.setresgid(process.gid, process.gid, process.gid)
        os.setresuid(process.uid, process.uid, process.uid)
    except (OSError, SyscallFailed) as exc:
        raise ProcessSetupError(
            f"process.user: cannot switch to uid {process.uid} gid {process.gid}: {exc}"
        ) from None
    if caps is not None:
        capabilities.apply_sets(sys, caps)
    os.umask(0o022 if process.umask is None else process.umask)
    try:
        os.chdir(process.cwd)
    except OSError as exc:
        raise ProcessSetupError(f"process.cwd: {process.cwd!r}: {exc.strerror}") from None
    if process.apparmor_profile or process.selinux_label:
        lsm.apply_exec_labels(process)
    if process.no_new_privileges:
        sys.prctl(PR_SET_NO_NEW_PRIVS, 1)


def close_other_fds(keep_below: int) -> None:
    """Mark every descriptor from `keep_below` up close-on-exec (stdio + preserved fds live)."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(keep_below, 1024))
    for fd in fds:
        if fd >= keep_below:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def exec_process(executable: str, process: ProcessConfig) -> None:
    env = {}
    for entry in process.env:
        key, _, value = entry.partition("=")
        env[key] = value
    try:
        os.execve(executable, list(process.args), env)
    except OSError as exc:
        raise ProcessSetupError(f'exec: "{process.args[0]}": {exc.strerror}') from None
