"""The setup child: joins or creates the namespaces, then forks init (or the exec'd process).

It runs in a fork of the runtime process and never returns into the caller's code.
"""

from __future__ import annotations

import os

from cove.errors import CoveError
from cove.oci.data import Data
from cove.oci.runtime_spec import TimeOffset
from cove.runtime.cgroups import CgroupManager
from cove.runtime.process import protocol
from cove.sys import constants as c

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Callable
    from typing import NoReturn

    from cove.sys import Syscalls


class ChildPlan(Data):
    """What the child does before forking; the same shape for create and exec."""

    __slots__ = (
        "cgroup", "defer_cgroup_namespace", "join", "new_namespaces", "sock", "sys",
        "time_offsets",
    )  # fmt: skip

    def __init__(
        self,
        sock: socket,
        sys: Syscalls,
        join: list[tuple[int, int]] | None = None,
        new_namespaces: int = 0,
        cgroup: CgroupManager | None = None,
        defer_cgroup_namespace: bool = False,
        time_offsets: dict[str, TimeOffset] | None = None,
    ) -> None:
        self.sock = sock
        self.sys = sys
        # (clone flag, open fd) in the order to join; a user namespace comes first.
        self.join = [] if join is None else join
        self.new_namespaces = new_namespaces
        self.cgroup = cgroup
        # Create the cgroup namespace later, in init, once it is in its cgroup.
        self.defer_cgroup_namespace = defer_cgroup_namespace
        self.time_offsets = {} if time_offsets is None else time_offsets


def run_child(plan: ChildPlan, grandchild: Callable[[], NoReturn]) -> NoReturn:
    try:
        if plan.cgroup is not None:
            plan.cgroup.join(os.getpid())
        for flag, fd in plan.join:
            plan.sys.setns(fd, flag)
            os.close(fd)
        new = plan.new_namespaces
        if new & c.CLONE_NEWUSER:
            plan.sys.unshare(c.CLONE_NEWUSER)
            protocol.send(plan.sock, protocol.UsernsRequest())
            protocol.expect(plan.sock, protocol.UsernsMapped)
            # The creator has every capability in the new namespace: become its root.
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
            new &= ~c.CLONE_NEWUSER
        if plan.defer_cgroup_namespace:
            new &= ~c.CLONE_NEWCGROUP
        if new:
            plan.sys.unshare(new)
        if plan.time_offsets:
            _write_time_offsets(plan.time_offsets)
        # The grandchild waits until InitPid is sent: the parent must hear of it first
        # (an exec'd process would otherwise send Ready ahead of it).
        gate_r, gate_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(gate_w)
            os.read(gate_r, 1)
            os.close(gate_r)
            grandchild()
        os.close(gate_r)
        protocol.send(plan.sock, protocol.InitPid(pid))
        os.write(gate_w, b"g")
    except BaseException as exc:
        report_failure(plan.sock, exc)
        os._exit(1)
    os._exit(0)


def report_failure(sock: socket, exc: BaseException) -> None:
    """Send a one-line reason to the parent; never raises."""
    if isinstance(exc, CoveError):
        message = str(exc)
    elif isinstance(exc, OSError):
        message = f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    else:
        # No imports here: after pivot_root the standard library may be out of reach.
        message = f"internal error: {type(exc).__name__}: {exc}"
    try:
        protocol.send(sock, protocol.Failure(message))
    except BaseException:
        pass


def _write_time_offsets(offsets: dict[str, TimeOffset]) -> None:
    with open("/proc/self/timens_offsets", "w") as timens:
        for clock, offset in offsets.items():
            timens.write(f"{clock} {offset.secs} {offset.nanosecs}\n")
