"""`create`: set everything up and leave init blocked on the exec FIFO (status created)."""

from __future__ import annotations

import os
import time

from cove.errors import InvalidArgument
from cove.oci.data import Data
from cove.oci.runtime_spec import IDMapping, hook_list_to_json, load_spec
from cove.oci.state import CREATING, STOPPED, State
from cove.runtime import lsm
from cove.runtime.cgroups import CgroupManager, cgroup_relpath
from cove.runtime.cgroups.layout import host_layout
from cove.runtime.config import ContainerConfig
from cove.runtime.proc import start_time
from cove.runtime.process.launcher import StartedProcess, launch_init
from cove.runtime.store import ContainerRecord, Store
from cove.sys.constants import PR_SET_CHILD_SUBREAPER

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from cove.runtime.process.launcher import ConsoleHandler
    from cove.runtime.seccomp_bpf import BpfFilter
    from cove.sys import Syscalls


class CreateOptions(Data):
    __slots__ = (
        "bundle",
        "console_socket",
        "no_new_keyring",
        "no_pivot",
        "pid_file",
        "preserve_fds",
    )

    def __init__(
        self,
        bundle: str = ".",
        pid_file: str = "",
        console_socket: str = "",
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
    ) -> None:
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds


def create_container(
    store: Store,
    container_id: str,
    options: CreateOptions,
    sys: Syscalls,
    on_console: ConsoleHandler | None = None,
    warn: Callable[[str], None] | None = None,
) -> ContainerRecord:
    """Create the container; `on_console` receives the pty master when there is one, `warn`
    what the host cannot honour but the spec lets go (network class, AppArmor...)."""
    bundle = os.path.abspath(options.bundle)
    config = ContainerConfig.from_spec(
        load_spec(os.path.join(bundle, "config.json")), container_id, bundle
    )
    if config.process.terminal and on_console is None:
        raise InvalidArgument(
            "process.terminal is true: pass --console-socket to receive the terminal"
        )
    if options.console_socket and not config.process.terminal:
        raise InvalidArgument("--console-socket needs process.terminal set to true")
    if options.preserve_fds < 0:
        raise InvalidArgument(f"--preserve-fds: {options.preserve_fds} is negative")
    # Init is re-parented to us when the setup child exits, so failures can be reaped.
    sys.prctl(PR_SET_CHILD_SUBREAPER, 1)
    lock_fd = store.reserve(container_id)
    record = ContainerRecord(
        id=container_id,
        bundle=bundle,
        rootfs=config.rootfs,
        created=_rfc3339_now(),
        annotations=config.annotations,
        hooks=_post_hooks(config),
    )
    # What every hook gets on stdin; status and pid are filled in per phase.
    hook_state = State(
        container_id, CREATING, 0, bundle, config.rootfs, record.created,
        annotations=config.annotations,
    )  # fmt: skip

    def run_creation_hooks(init_pid: int) -> None:
        state = hook_state.replace(pid=init_pid)
        for phase, hooks in (("prestart", config.hooks.prestart),
                             ("createRuntime", config.hooks.create_runtime)):  # fmt: skip
            if hooks:
                from cove.runtime.hooks import run_hooks

                run_hooks(phase, hooks, state, bundle)

    cgroup: CgroupManager | None = None
    init: StartedProcess | None = None
    warnings: list[str] = lsm.warnings_for(config)
    try:
        layout = host_layout()
        cgroup = CgroupManager.for_container(
            layout, cgroup_relpath(config.cgroups_path, container_id)
        )
        if not cgroup.delegated():
            warnings.append(
                f"cgroups: not delegated to uid {os.geteuid()}: the container gets no cgroup "
                "of its own and linux.resources are not applied"
            )
            cgroup = CgroupManager({})
        cgroup.owned = not cgroup.exists()
        record.cgroup_paths = cgroup.paths
        record.cgroup_owned = cgroup.owned
        store.save(record)  # still marked creating: names what to sweep after a crash

        def prepare_cgroup() -> None:
            assert cgroup is not None
            if cgroup.paths:
                cgroup.create()
                warnings.extend(cgroup.apply(config.resources, layout))

        _make_exec_fifo(store.fifo_path(container_id), config)
        init = launch_init(
            config,
            sys,
            cgroup,
            lock_fd,
            on_console,
            no_pivot=options.no_pivot,
            preserve_fds=options.preserve_fds,
            new_keyring=not options.no_new_keyring,
            prepare_cgroup=prepare_cgroup,
            seccomp=_compile_seccomp(config),
            on_init_created=run_creation_hooks,
            hook_state=hook_state,
        )
        record.pid = init.pid
        record.pid_start = start_time(init.pid) or 0
        record.creating = False
        store.save(record)
        if options.pid_file:
            write_pid_file(options.pid_file, init.pid)
        init.commit()
    except BaseException:
        if init is not None:
            init.abort()
        if cgroup is not None:
            cgroup.destroy()
        store.remove(container_id)
        # The spec goes on to its delete step after a failed create: poststop hooks run.
        if config.hooks.poststop:
            from cove.runtime.hooks import run_hooks

            failed = run_hooks("poststop", config.hooks.poststop, hook_state.replace(
                status=STOPPED), bundle)  # fmt: skip
            for message in failed:
                if warn is not None:
                    warn(message)
        raise
    finally:
        os.close(lock_fd)
    if warn is not None:
        for warning in warnings:
            warn(warning)
    return record


def _post_hooks(config: ContainerConfig) -> dict[str, list[dict[str, Any]]]:
    """The hooks `start` and `delete` run later, kept in the container's record."""
    kept = {}
    for phase, hooks in (("poststart", config.hooks.poststart),
                         ("poststop", config.hooks.poststop)):  # fmt: skip
        if hooks:
            kept[phase] = hook_list_to_json(hooks)
    return kept


def _compile_seccomp(config: ContainerConfig) -> BpfFilter | None:
    """Built here, in the parent (init cannot load libseccomp once it has pivoted), or
    taken from the cache of compiled profiles."""
    if config.seccomp is None:
        return None
    from cove.runtime.seccomp_bpf import filter_for

    return filter_for(config.seccomp)


def _make_exec_fifo(path: str, config: ContainerConfig) -> None:
    """The FIFO init blocks on; writable by the container's root, even in a user namespace."""
    os.mkfifo(path, 0o622)
    os.chmod(path, 0o622)  # mkfifo applies the umask
    if os.geteuid() == 0:  # others may only keep it their own; 0622 lets init write anyway
        os.chown(path, _host_id(config.uid_mappings), _host_id(config.gid_mappings))


def _host_id(mappings: tuple[IDMapping, ...]) -> int:
    """The host id that id 0 inside the container maps to (0 without a user namespace)."""
    for mapping in mappings:
        if mapping.container_id == 0:
            return mapping.host_id
    return 0


def write_pid_file(path: str, pid: int) -> None:
    """Atomically, as runc does: readers never see a partial pid."""
    path = os.path.abspath(path)
    temp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{os.getpid()}")
    with open(temp, "w") as pid_file:
        pid_file.write(str(pid))
    os.replace(temp, path)


def _rfc3339_now() -> str:
    now = time.time_ns()
    seconds, nanos = divmod(now, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"
