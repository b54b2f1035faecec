"""The parent's side of starting a container's init or an exec'd process.

See protocol.py for the message table. The parent forks the setup child, answers its
requests, learns init's pid, receives the terminal if one is made, and on any failure
kills what it started before re-raising.
"""

from __future__ import annotations

import os
from _socket import AF_UNIX, SOCK_SEQPACKET, socketpair

from cove.errors import NamespaceError
from cove.oci.data import Data
from cove.oci.runtime_spec import IDMapping
from cove.runtime.cgroups import CgroupManager
from cove.runtime.config import ContainerConfig, ProcessConfig
from cove.runtime.process import protocol
from cove.runtime.process.child import ChildPlan, report_failure, run_child
from cove.sys import constants as c
from cove.sys.constants import SIGKILL

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Callable
    from typing import NoReturn

    from cove.oci.state import State
    from cove.runtime.seccomp_bpf import BpfFilter
    from cove.sys import Syscalls

    ConsoleHandler = Callable[[int], None]


# setns order: the user namespace first (it grants rights over the others), mount last.
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class StartedProcess(Data):
    __slots__ = ("pid", "sock")

    def __init__(
        self,
        pid: int,
        sock: socket | None,
    ) -> None:
        self.pid = pid
        self.sock = sock

    def commit(self) -> None:
        """Tell init its state is recorded; from now on it outlives this process."""
        if self.sock is not None:
            protocol.send(self.sock, protocol.Commit())
            self.sock.close()
            self.sock = None

    def abort(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        _kill_and_reap(self.pid)


def launch_init(
    config: ContainerConfig,
    sys: Syscalls,
    cgroup: CgroupManager | None,
    state_dir_fd: int,
    on_console: ConsoleHandler | None,
    no_pivot: bool = False,
    preserve_fds: int = 0,
    new_keyring: bool = True,
    prepare_cgroup: Callable[[], None] | None = None,
    seccomp: BpfFilter | None = None,
    on_init_created: Callable[[int], None] | None = None,
    hook_state: State | None = None,
) -> StartedProcess:
    """Fork the setup child, run `prepare_cgroup` meanwhile (create the cgroup, write its
    limits) and move init into `cgroup`; returns once init is Ready (protocol steps 1-6)."""
    from cove.runtime.process.init import InitPlan, run_init

    join = _open_paths(config.join_namespaces)
    parent_sock, child_sock = socketpair(AF_UNIX, SOCK_SEQPACKET)
    plan = ChildPlan(
        sock=child_sock,
        sys=sys,
        join=join,
        new_namespaces=config.new_namespaces,
        time_offsets=config.time_offsets,
        defer_cgroup_namespace=True,
    )
    init_plan = InitPlan(
        config, child_sock, sys, state_dir_fd, no_pivot, preserve_fds, new_keyring, seccomp,
        hook_state,
    )  # fmt: skip
    child = os.fork()
    if child == 0:
        parent_sock.close()
        run_child(plan, lambda: run_init(init_plan))
    child_sock.close()
    for _, fd in join:
        os.close(fd)
    init_pid = 0
    try:
        if prepare_cgroup is not None:
            # Done while the child builds namespaces and init its mounts.
            try:
                prepare_cgroup()
            except BaseException:
                _kill_and_reap(child)
                raise
        init_pid = _talk_to_child(parent_sock, child, config.uid_mappings, config.gid_mappings)
        # Step 4: while init prepares its mounts, move it into its cgroup.
        if cgroup is not None:
            cgroup.join(init_pid)
        if on_init_created is not None:
            on_init_created(init_pid)  # prestart/createRuntime hooks: before init pivots
        protocol.send(parent_sock, protocol.CgroupJoined())
        if config.process.terminal:
            _receive_console(parent_sock, on_console)
        protocol.expect(parent_sock, protocol.Ready)
    except BaseException:
        parent_sock.close()
        if init_pid:
            _kill_and_reap(init_pid)
        raise
    return StartedProcess(init_pid, parent_sock)


class ExecPlan(Data):
    __slots__ = ("preserve_fds", "process", "seccomp", "setgroups_allowed", "sock", "sys")

    def __init__(
        self,
        process: ProcessConfig,
        sock: socket,
        sys: Syscalls,
        setgroups_allowed: bool,
        preserve_fds: int,
        seccomp: BpfFilter | None = None,
    ) -> None:
        self.seccomp = seccomp
        self.process = process
        self.sock = sock
        self.sys = sys
        self.setgroups_allowed = setgroups_allowed
        self.preserve_fds = preserve_fds


def launch_exec(
    init_pid: int,
    process: ProcessConfig,
    sys: Syscalls,
    cgroup: CgroupManager | None,
    on_console: ConsoleHandler | None,
    preserve_fds: int = 0,
    seccomp: BpfFilter | None = None,
) -> int:
    """Start `process` inside the namespaces and cgroup of `init_pid`; returns its pid once
    it has exec'd."""
    join = _open_namespaces_of(init_pid)
    parent_sock, child_sock = socketpair(AF_UNIX, SOCK_SEQPACKET)
    joins_user = any(flag == c.CLONE_NEWUSER for flag, _ in join)
    plan = ChildPlan(sock=child_sock, sys=sys, join=join, cgroup=cgroup)
    exec_plan = ExecPlan(process, child_sock, sys, not joins_user, preserve_fds, seccomp)
    child = os.fork()
    if child == 0:
        parent_sock.close()
        run_child(plan, lambda: _run_exec(exec_plan))
    child_sock.close()
    for _, fd in join:
        os.close(fd)
    pid = 0
    try:
        pid = _talk_to_child(parent_sock, child, (), ())
        if process.terminal:
            _receive_console(parent_sock, on_console)
        protocol.expect(parent_sock, protocol.Ready)
        try:
            message, _ = protocol.receive(parent_sock)
        except protocol.PeerGone:
            return pid  # end-of-file: execve succeeded and closed the socket
        if isinstance(message, protocol.Failure):
            raise protocol.SetupFailed(message.message)
        raise protocol.ProtocolError(f"unexpected {message.kind!r} after ready")
    except BaseException:
        if pid:
            _kill_and_reap(pid)
        raise
    finally:
        parent_sock.close()


def _run_exec(plan: ExecPlan) -> NoReturn:
    from cove.runtime import terminal
    from cove.runtime.process import execute

    try:
        process = plan.process
        if process.terminal:
            master, slave, _ = terminal.open_pty(process.console_size)
            terminal.make_controlling(slave)
            protocol.send(plan.sock, protocol.ConsoleReady(), fds=[master])
            os.close(master)
        execute.apply_limits(process)
        executable = execute.find_executable(process.args[0], process.env)
        execute.load_seccomp_before_user_switch(process, plan.seccomp)
        execute.switch_user(plan.sys, process, plan.setgroups_allowed)
        execute.close_other_fds(3 + plan.preserve_fds)
        protocol.send(plan.sock, protocol.Ready())
        # After Ready: the filter may forbid the sendmsg that Ready needs.
        execute.load_seccomp_last(process, plan.seccomp)
        execute.exec_process(executable, process)
    except BaseException as exc:
        report_failure(plan.sock, exc)
    os._exit(127)


def _talk_to_child(
    sock: socket,
    child: int,
    uid_mappings: tuple[IDMapping, ...],
    gid_mappings: tuple[IDMapping, ...],
) -> int:
    """Steps 1 to 3 of the protocol; reaps the child and returns init's pid."""
    try:
        while True:
            message, _ = protocol.receive(sock)
            if isinstance(message, protocol.UsernsRequest):
                _write_id_maps(child, uid_mappings, gid_mappings)
                protocol.send(sock, protocol.UsernsMapped())
            elif isinstance(message, protocol.InitPid):
                return message.pid
            elif isinstance(message, protocol.Failure):
                raise protocol.SetupFailed(message.message)
            else:
                raise protocol.ProtocolError(f"unexpected {message.kind!r} from setup child")
    except BaseException:
        _kill_and_reap(child)
        raise
    finally:
        _reap(child)


def _receive_console(sock: socket, on_console: ConsoleHandler | None) -> None:
    _, fds = protocol.expect(sock, protocol.ConsoleReady)
    if not fds:
        raise protocol.ProtocolError("the terminal did not arrive with its message")
    if on_console is None:
        os.close(fds[0])
    else:
        on_console(fds[0])


def _write_id_maps(
    pid: int, uid_mappings: tuple[IDMapping, ...], gid_mappings: tuple[IDMapping, ...]
) -> None:
    def lines(mappings: tuple[IDMapping, ...]) -> str:
        return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in mappings)

    if os.geteuid() != 0 and not (
        _only_own_id(uid_mappings, os.geteuid()) and _only_own_id(gid_mappings, os.getegid())
    ):
        # More than our own id: the setuid helpers check /etc/subuid and /etc/subgid.
        _map_with_helper("newuidmap", pid, uid_mappings, "linux.uidMappings")
        _map_with_helper("newgidmap", pid, gid_mappings, "linux.gidMappings")
        return
    try:
        if os.geteuid() != 0:
            # An unprivileged writer may only map its own gid after giving up setgroups.
            with open(f"/proc/{pid}/setgroups", "w") as setgroups:
                setgroups.write("deny")
        with open(f"/proc/{pid}/uid_map", "w") as uid_map:
            uid_map.write(lines(uid_mappings))
        with open(f"/proc/{pid}/gid_map", "w") as gid_map:
            gid_map.write(lines(gid_mappings))
    except OSError as exc:
        raise NamespaceError(f"cannot write the user namespace id maps: {exc.strerror}") from None


def _only_own_id(mappings: tuple[IDMapping, ...], own: int) -> bool:
    return len(mappings) == 1 and mappings[0].host_id == own and mappings[0].size == 1


def _map_with_helper(helper: str, pid: int, mappings: tuple[IDMapping, ...], field: str) -> None:
    import shutil
    import subprocess

    path = shutil.which(helper)
    if path is None:
        raise NamespaceError(
            f"{field}: mapping more than your own id without root needs {helper} "
            "(Debian package uidmap), or map only your own id"
        )
    args = [str(v) for m in mappings for v in (m.container_id, m.host_id, m.size)]
    done = subprocess.run([path, str(pid), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise NamespaceError(f"{field}: {helper} failed: {done.stderr.strip()}")


def _open_paths(paths: dict[str, str]) -> list[tuple[int, int]]:
    opened = []
    try:
        for ns_type in JOIN_ORDER:
            if ns_type in paths:
                fd = os.open(paths[ns_type], os.O_RDONLY | os.O_CLOEXEC)
                opened.append((c.NAMESPACES[ns_type][0], fd))
    except OSError as exc:
        for _, fd in opened:
            os.close(fd)
        raise NamespaceError(f"cannot open namespace {exc.filename!r}: {exc.strerror}") from None
    return opened


def _open_namespaces_of(pid: int) -> list[tuple[int, int]]:
    """Every namespace of `pid` that differs from ours, ready to setns()."""
    paths = {}
    for ns_type in JOIN_ORDER:
        name = c.NAMESPACES[ns_type][1]
        try:
            theirs = os.stat(f"/proc/{pid}/ns/{name}").st_ino
            ours = os.stat(f"/proc/self/ns/{name}").st_ino
        except FileNotFoundError:
            continue  # the kernel lacks this namespace type
        if theirs != ours:
            paths[ns_type] = f"/proc/{pid}/ns/{name}"
    return _open_paths(paths)


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        return
    _reap(pid)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # not our child (re-parented elsewhere): nothing to reap
