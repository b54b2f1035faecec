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
  4     init    parent  ConsoleReady     (terminal only) the pty master rides along as
                                         SCM_RIGHTS; the parent passes it on
  5     init    parent  Ready            rootfs done, executable found
  6     parent  init    Commit           the parent recorded the container's state; init
                                         now waits on the exec FIFO until `start`
  any   child,  parent  Failure          setup failed: the message says why; the parent
        init                             kills what exists and removes all it created

For `exec` the table stops at step 5 and Ready is sent just before execve: the socket is
close-on-exec, so end-of-file after Ready means the program runs; a Failure after Ready
means execve itself failed.

Until step 6 every wait of the child and init is a read on this socket, so if the parent
dies (kill -9 of `create`), they read end-of-file and exit: nothing keeps running. The
state directory such a parent leaves is swept by the next command that meets it
(see runtime.store).
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from typing import ClassVar

from cove.errors import CoveError


@dataclass(frozen=True, slots=True)
class UsernsRequest:
    kind: ClassVar[str] = "userns-request"


@dataclass(frozen=True, slots=True)
class UsernsMapped:
    kind: ClassVar[str] = "userns-mapped"


@dataclass(frozen=True, slots=True)
class InitPid:
    pid: int
    kind: ClassVar[str] = "init-pid"


@dataclass(frozen=True, slots=True)
class ConsoleReady:
    kind: ClassVar[str] = "console-ready"


@dataclass(frozen=True, slots=True)
class Ready:
    kind: ClassVar[str] = "ready"


@dataclass(frozen=True, slots=True)
class Commit:
    kind: ClassVar[str] = "commit"


@dataclass(frozen=True, slots=True)
class Failure:
    message: str
    kind: ClassVar[str] = "failure"


Message = UsernsRequest | UsernsMapped | InitPid | ConsoleReady | Ready | Commit | Failure

_TYPES: dict[str, type[Message]] = {
    cls.kind: cls
    for cls in (UsernsRequest, UsernsMapped, InitPid, ConsoleReady, Ready, Commit, Failure)
}


class ProtocolError(CoveError):
    """The other side broke the protocol or went away."""


class PeerGone(ProtocolError):
    """End of file: the other process exited (or, for exec, exec'd successfully)."""


def send(sock: socket.socket, message: Message, fds: list[int] | None = None) -> None:
    payload = json.dumps({"kind": message.kind, **asdict(message)}).encode()
    if fds:
        socket.send_fds(sock, [payload], fds)
    else:
        sock.send(payload)


def receive(sock: socket.socket) -> tuple[Message, list[int]]:
    try:
        data, fds, _flags, _addr = socket.recv_fds(sock, 65536, 4)
    except ConnectionResetError:
        data, fds = b"", []
    if not data:
        raise PeerGone("the container process exited during setup")
    try:
        fields = json.loads(data)
        cls = _TYPES[fields.pop("kind")]
        return cls(**fields), fds
    except (ValueError, KeyError, TypeError) as exc:
        for fd in fds:
            os.close(fd)
        raise ProtocolError(f"malformed message from the container process: {exc}") from None


def expect(sock: socket.socket, expected: type[Message]) -> tuple[Message, list[int]]:
    """Receive the next message; a Failure becomes an exception carrying its text."""
    message, fds = receive(sock)
    if isinstance(message, Failure):
        raise SetupFailed(message.message)
    if not isinstance(message, expected):
        raise ProtocolError(f"expected {expected.kind!r}, got {message.kind!r}")
    return message, fds


class SetupFailed(CoveError):
    """The child or init reported a failure; its message is the user-facing error."""
