"""`exec`: run another process inside a running container's namespaces and cgroup."""

from __future__ import annotations

import os

from cove.errors import InvalidArgument, InvalidSpec, InvalidState
from cove.oci.data import Data
from cove.oci.runtime_spec import load_process, load_spec
from cove.oci.state import RUNNING
from cove.runtime.cgroups import CgroupManager
from cove.runtime.config import ProcessConfig, convert_process
from cove.runtime.container_create import write_pid_file
from cove.runtime.container_run import console_handler
from cove.runtime.foreground import wait_for
from cove.runtime.process.execute import DEFAULT_PATH
from cove.runtime.process.launcher import launch_exec
from cove.runtime.status import status_of
from cove.runtime.store import Store
from cove.sys.constants import PR_SET_CHILD_SUBREAPER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.oci.runtime_spec import Spec
    from cove.runtime.seccomp_bpf import BpfFilter
    from cove.sys import Syscalls


class ExecOptions(Data):
    __slots__ = (
        "additional_gids",
        "args",
        "console_socket",
        "cwd",
        "detach",
        "env",
        "no_new_privs",
        "pid_file",
        "preserve_fds",
        "process_file",
        "tty",
        "user",
    )

    def __init__(
        self,
        args: tuple[str, ...] = (),
        process_file: str = "",
        env: tuple[str, ...] = (),
        cwd: str = "",
        user: str = "",
        additional_gids: tuple[int, ...] = (),
        tty: bool = False,
        detach: bool = False,
        pid_file: str = "",
        console_socket: str = "",
        preserve_fds: int = 0,
        no_new_privs: bool = False,
    ) -> None:
        self.args = args
        self.process_file = process_file
        self.env = env
        self.cwd = cwd
        self.user = user
        self.additional_gids = additional_gids
        self.tty = tty
        self.detach = detach
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds
        self.no_new_privs = no_new_privs


def exec_in_container(store: Store, container_id: str, options: ExecOptions, sys: Syscalls) -> int:
    record = store.load(container_id)
    status = status_of(store, record)
    if status != RUNNING:
        raise InvalidState(f"cannot exec in container {container_id!r}: it is {status}")
    spec = _container_spec(record.bundle)
    process = _process_for(spec, options)
    seccomp = _compile_seccomp(spec)
    if options.console_socket and not process.terminal:
        raise InvalidArgument("--console-socket needs --tty")
    if process.terminal and options.detach and not options.console_socket:
        raise InvalidArgument("--tty with --detach needs --console-socket")
    masters: list[int] = []
    handler = console_handler(options.console_socket, options.detach, masters)
    if not options.detach:
        sys.prctl(PR_SET_CHILD_SUBREAPER, 1)  # the process is ours to wait for
    pid = launch_exec(
        record.pid,
        process,
        sys,
        CgroupManager(record.cgroup_paths, record.cgroup_owned),
        handler,
        options.preserve_fds,
        seccomp,
    )
    if options.pid_file:
        write_pid_file(options.pid_file, pid)
    if options.detach:
        return 0
    return wait_for(pid, masters[0] if masters else None)


def _container_spec(bundle: str) -> Spec | None:
    """The container's config.json, if its bundle is still there."""
    try:
        return load_spec(os.path.join(bundle, "config.json"))
    except InvalidSpec:
        return None


def _compile_seccomp(spec: Spec | None) -> BpfFilter | None:
    """The container's seccomp profile binds exec'd processes too (compiled here, before
    the namespaces are joined)."""
    if spec is None or spec.linux.seccomp is None:
        return None
    from cove.oci.seccomp import parse_seccomp
    from cove.runtime.seccomp_bpf import filter_for

    return filter_for(parse_seccomp(spec.linux.seccomp))


def _process_for(spec: Spec | None, options: ExecOptions) -> ProcessConfig:
    """--process wins; otherwise the container's own process with the flags applied."""
    if options.process_file:
        return convert_process(load_process(options.process_file))
    if not options.args:
        raise InvalidArgument("exec: give the command to run (after the container id)")
    base = None if spec is None else spec.process
    process = convert_process(base) if base is not None else convert_process_defaults()
    env = _merge_env(process.env, options.env)
    uid, gid = process.uid, process.gid
    if options.user:
        uid, gid = _parse_user(options.user, gid)
    return process.replace(
        args=options.args,
        env=env,
        cwd=options.cwd or process.cwd,
        uid=uid,
        gid=gid,
        additional_gids=options.additional_gids or process.additional_gids,
        terminal=options.tty,
        no_new_privileges=process.no_new_privileges or options.no_new_privs,
    )


def convert_process_defaults() -> ProcessConfig:
    from cove.oci.runtime_spec import Process

    return convert_process(Process(args=("sh",), env=(f"PATH={DEFAULT_PATH}",)))


def _merge_env(base: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    merged: dict[str, str] = {}
    for entry in (*base, *extra):
        if "=" not in entry:
            raise InvalidArgument(f"--env: expected KEY=VALUE, got {entry!r}")
        key = entry.partition("=")[0]
        merged[key] = entry
    return tuple(merged.values())


def _parse_user(text: str, default_gid: int) -> tuple[int, int]:
    uid_text, _, gid_text = text.partition(":")
    try:
        return int(uid_text), int(gid_text) if gid_text else default_gid
    except ValueError:
        raise InvalidArgument(f"--user: expected UID[:GID] as numbers, got {text!r}") from None
