"""The container's init: sets up the root filesystem, waits for `start`, execs the process.

Its steps, in order (each a call below, with room for capabilities and seccomp):
  rootfs mounts -> devices -> pivot_root -> console -> readonly/masked paths, sysctl ->
  hostname -> rlimits, OOM score -> resolve the executable -> Ready -> wait for Commit ->
  wait on the exec FIFO -> user, umask, cwd, no_new_privs -> close fds -> execve.
"""

from __future__ import annotations

import errno
import os
import sys as _sys

from cove.errors import HookFailed, ProcessSetupError, SyscallFailed
from cove.oci.data import Data
from cove.oci.state import CREATED, CREATING
from cove.runtime import rootfs, terminal
from cove.runtime.cgroups.layout import Layout, host_layout
from cove.runtime.config import ContainerConfig
from cove.runtime.process import execute, protocol
from cove.runtime.process.child import report_failure
from cove.runtime.store import EXEC_FIFO
from cove.sys.constants import CLONE_NEWCGROUP, MS_BIND

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket
    from typing import NoReturn

    from cove.oci.runtime_spec import Hook
    from cove.oci.state import State
    from cove.runtime.seccomp_bpf import BpfFilter
    from cove.sys import Syscalls


class InitPlan(Data):
    __slots__ = (
        "config", "hook_state", "new_keyring", "no_pivot", "preserve_fds", "seccomp", "sock",
        "state_dir_fd", "sys",
    )  # fmt: skip

    def __init__(
        self,
        config: ContainerConfig,
        sock: socket,
        sys: Syscalls,
        state_dir_fd: int,
        no_pivot: bool = False,
        preserve_fds: int = 0,
        new_keyring: bool = True,
        seccomp: BpfFilter | None = None,
        hook_state: State | None = None,
    ) -> None:
        # The state hooks get (status and pid filled in per phase).
        self.hook_state = hook_state
        # Compiled by the parent: libseccomp cannot be loaded once pivot_root is done.
        self.seccomp = seccomp
        self.new_keyring = new_keyring
        self.config = config
        self.sock = sock
        self.sys = sys
        self.state_dir_fd = state_dir_fd
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds


def run_init(plan: InitPlan) -> NoReturn:
    config, sys = plan.config, plan.sys
    try:
        if config.hooks.create_container or config.hooks.start_container:
            # Imported now: once pivot_root is done, cove's own files are out of reach.
            import cove.runtime.hooks  # noqa: F401
        if plan.new_keyring:
            _join_new_keyring(sys, config.id)
        layout = _cgroup_layout(config)
        gate = CgroupGate(plan)
        rootfs.prepare_rootfs(sys, config, layout, before_cgroup=gate.wait)
        gate.wait()
        _run_hooks(plan, "createContainer", config.hooks.create_container, CREATING)
        rootfs.switch_root(sys, config.rootfs, plan.no_pivot, config.rootfs_propagation)
        if config.process.terminal:
            _setup_console(plan)
        rootfs.finalize_rootfs(sys, config)
        if config.hostname:
            sys.sethostname(config.hostname)
        if config.domainname:
            sys.setdomainname(config.domainname)
        execute.apply_limits(config.process)
        executable = execute.find_executable(config.process.args[0], config.process.env)
        protocol.send(plan.sock, protocol.Ready())
        protocol.expect(plan.sock, protocol.Commit)
    except BaseException as exc:
        report_failure(plan.sock, exc)
        os._exit(1)
    plan.sock.close()
    try:
        _wait_for_start(plan)
        execute.load_seccomp_before_user_switch(config.process, plan.seccomp)
        execute.switch_user(sys, config.process, setgroups_allowed=_may_setgroups(config))
        execute.close_other_fds(3 + plan.preserve_fds)
        execute.load_seccomp_last(config.process, plan.seccomp)
        execute.exec_process(executable, config.process)
    except BaseException as exc:
        _sys.stderr.write(f"cove-runtime: init: {exc}\n")
        _sys.stderr.flush()
    os._exit(127)


class CgroupGate:
    """Waits, once, for the parent to have moved init into its cgroup (protocol step 4),
    then creates the cgroup namespace, whose root is the cgroup init is in."""

    def __init__(self, plan: InitPlan) -> None:
        self.plan = plan
        self.passed = False

    def wait(self) -> None:
        if self.passed:
            return
        protocol.expect(self.plan.sock, protocol.CgroupJoined)
        if self.plan.config.new_namespaces & CLONE_NEWCGROUP:
            self.plan.sys.unshare(CLONE_NEWCGROUP)
        self.passed = True


def _join_new_keyring(sys: Syscalls, container_id: str) -> None:
    """A session keyring of the container's own, so it cannot read the caller's keys."""
    try:
        sys.join_session_keyring(f"_ses.{container_id}")
    except SyscallFailed as exc:
        if exc.errno != errno.ENOSYS:  # no keyrings in this kernel: nothing to isolate
            raise ProcessSetupError(
                f"cannot create a session keyring: {exc.strerror} (--no-new-keyring skips it)"
            ) from None


def _cgroup_layout(config: ContainerConfig) -> Layout | None:
    if any(m.fstype in ("cgroup", "cgroup2") for m in config.mounts):
        return host_layout()
    return None


def _setup_console(plan: InitPlan) -> None:
    master, slave, slave_path = terminal.open_pty(plan.config.process.console_size)
    console = "/dev/console"
    if not os.path.exists(console):
        os.close(os.open(console, os.O_CREAT | os.O_WRONLY, 0o600))
    plan.sys.mount(slave_path, console, "", MS_BIND)
    terminal.make_controlling(slave)
    protocol.send(plan.sock, protocol.ConsoleReady(), fds=[master])
    os.close(master)


def _wait_for_start(plan: InitPlan) -> None:
    """Block until `start` opens the exec FIFO, run the startContainer hooks, and tell
    `start` how they went: b"0", or b"1" and the reason (then init exits)."""
    # The state directory is reached through a descriptor opened before pivot_root.
    fifo = os.open(EXEC_FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=plan.state_dir_fd)
    os.close(plan.state_dir_fd)
    try:
        _run_hooks(plan, "startContainer", plan.config.hooks.start_container, CREATED)
    except HookFailed as exc:
        os.write(fifo, b"1" + str(exc).encode()[:3000])
        os.close(fifo)
        os._exit(1)
    os.write(fifo, b"0")
    os.close(fifo)


def _run_hooks(plan: InitPlan, phase: str, hooks: tuple[Hook, ...], status: str) -> None:
    """Hooks run by init itself: in the container's namespaces, pid 1 as it sees itself."""
    if not hooks or plan.hook_state is None:
        return
    from cove.runtime.hooks import run_hooks

    state = plan.hook_state.replace(status=status, pid=os.getpid())
    cwd = plan.config.bundle if phase == "createContainer" else "/"
    run_hooks(phase, hooks, state, cwd)


def _may_setgroups(config: ContainerConfig) -> bool:
    if not config.has_user_namespace:
        return True
    try:
        with open("/proc/self/setgroups") as setgroups:
            return setgroups.read().strip() == "allow"
    except OSError:
        return False
