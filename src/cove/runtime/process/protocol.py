"""Typed messages between the runtime (parent), the setup child and the container init.

Three processes take part. The parent is the `cove-runtime create|run|exec` process. It
forks the *child*, which joins or creates namespaces and forks the *init* (the first
process in the new pid namespace), then exits. The parent waits for that child, so init
is re-parented: to the parent itself when it is a subreaper (`run`, `exec` in the
foreground wait for init), otherwise to the caller's subreaper (containerd-shim, conmon)
or to PID 1. All three share one SOCK_SEQPACKET socketpair: one datagram is one
message, encoded as JSON.

  step  from    to      message          meaning
  ----  ------  ------  ---------------  -------------------------------------------------
  1     child   parent  UsernsRequest    the child unshared a user namespace; write its
                                         uid_map and gid_map (only with a new userns)
  2     parent  child   UsernsMapped     the maps are written; the child becomes root in it
  3     child   parent  InitPid          init exists, with this host pid; the child exits
                                         (init starts only after this is sent)
  4     parent  init    CgroupJoined     the parent moved init into the container's cgroup
                                         (a v1 move waits for an RCU grace period, ~8 ms:
                                         init prepares its mounts meanwhile and waits for
                                         this only before it creates its cgroup namespace)
  5     init    parent  ConsoleReady     (terminal only) the pty master rides along as
                                         SCM_RIGHTS; the parent passes it on
  6     init    parent  Ready            rootfs done, executable found
  7     parent  init    Commit           the parent recorded the container's state; init
                                         now waits on the exec FIFO until `start`
  any   child,  parent  Failure          setup failed: the message says why; the parent
        init                             kills what exists and removes all it created

For `exec` the child joins the cgroup itself (no step 4), the table stops at step 6, and
Ready is sent just before execve: the socket is
close-on-exec, so end-of-file after Ready means the program runs; a Failure after Ready
means execve itself failed.

Until step 7 every wait of the child and init is a read on this socket, so if the parent
dies (kill -9 of `create`), they read end-of-file and exit: nothing keeps running. The
state directory such a parent leaves is swept by the next command that meets it
(see runtime.store).
"""

from __future__ import annotations

import os
import struct
from _socket import CMSG_LEN, SCM_RIGHTS, SOL_SOCKET

from cove.errors import CoveError
from cove.oci import jsonc
from cove.oci.data import Data

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _socket import socket
    from collections.abc import Iterable
    from typing import ClassVar


class Message(Data):
    """Base of the messages; `kind` names the message on the wire."""

    kind: ClassVar[str] = ""
    __slots__: tuple[str, ...] = ()

    def payload(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self._fields}


class UsernsRequest(Message):
    kind = "userns-request"
    __slots__ = ()


class UsernsMapped(Message):
    kind = "userns-mapped"
    __slots__ = ()


class InitPid(Message):
    kind = "init-pid"
    __slots__ = ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid


class CgroupJoined(Message):
    kind = "cgroup-joined"
    __slots__ = ()


class ConsoleReady(Message):
    kind = "console-ready"
    __slots__ = ()


class Ready(Message):
    kind = "ready"
    __slots__ = ()


class Commit(Message):
    kind = "commit"
    __slots__ = ()


class Failure(Message):
    kind = "failure"
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


_TYPES: dict[str, type[Message]] = {
    cls.kind: cls
    for cls in (
        UsernsRequest,
        UsernsMapped,
        InitPid,
        CgroupJoined,
        ConsoleReady,
        Ready,
        Commit,
        Failure,
    )
}

_MAX_FDS = 4


class ProtocolError(CoveError):
    """The other side broke the protocol or went away."""


class PeerGone(ProtocolError):
    """End of file: the other process exited (or, for exec, exec'd successfully)."""


class SetupFailed(CoveError):
    """The child or init reported a failure; its message is the user-facing error."""


def send(sock: socket, message: Message, fds: list[int] | None = None) -> None:
    payload = jsonc.dumps({"kind": message.kind, **message.payload()}).encode()
    if fds:
        sock.sendmsg([payload], [(SOL_SOCKET, SCM_RIGHTS, pack_fds(fds))])
    else:
        sock.send(payload)


def receive(sock: socket) -> tuple[Message, list[int]]:
    try:
        data, ancillary, _flags, _addr = sock.recvmsg(65536, CMSG_LEN(_MAX_FDS * 4))
    except ConnectionResetError:
        data, ancillary = b"", []
    fds: list[int] = []
    for level, kind, cmsg in ancillary:
        if level == SOL_SOCKET and kind == SCM_RIGHTS:
            fds.extend(unpack_fds(cmsg))
    if not data:
        _close_all(fds)
        raise PeerGone("the container process exited during setup")
    try:
        fields = jsonc.loads(data)
        cls = _TYPES[fields.pop("kind")]
        return cls(**fields), fds
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _close_all(fds)
        raise ProtocolError(f"malformed message from the container process: {exc}") from None


def expect(sock: socket, expected: type[Message]) -> tuple[Message, list[int]]:
    """Receive the next message; a Failure becomes an exception carrying its text."""
    message, fds = receive(sock)
    if isinstance(message, Failure):
        _close_all(fds)
        raise SetupFailed(message.message)
    if not isinstance(message, expected):
        _close_all(fds)
        raise ProtocolError(f"expected {expected.kind!r}, got {message.kind!r}")
    return message, fds


def pack_fds(fds: list[int]) -> bytes:
    """SCM_RIGHTS payload: C ints (struct instead of array: array imports collections)."""
    return struct.pack(f"{len(fds)}i", *fds)


def unpack_fds(data: bytes) -> list[int]:
    count = len(data) // 4
    return list(struct.unpack(f"{count}i", data[: count * 4]))


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        os.close(fd)
