"""Pseudo-terminals: the container side (inside init) and the console socket hand-off."""

from __future__ import annotations

import fcntl
import os
import struct
from _socket import AF_UNIX, SCM_RIGHTS, SOCK_STREAM, SOL_SOCKET, socket

from cove.errors import TerminalError
from cove.sys.constants import TIOCSCTTY, TIOCSWINSZ


def open_pty(size: tuple[int, int] | None) -> tuple[int, int, str]:
    """Open a pty through the current root's /dev/ptmx: (master, slave, slave path)."""
    try:
        master, slave = os.openpty()
    except OSError as exc:
        raise TerminalError(f"cannot open a pseudo-terminal: {exc.strerror}") from None
    os.set_inheritable(master, False)
    if size is not None:
        set_size(master, *size)
    return master, slave, os.ttyname(slave)


def set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def make_controlling(slave: int) -> None:
    """Make `slave` this process's controlling terminal and its stdin, stdout, stderr."""
    os.setsid()
    fcntl.ioctl(slave, TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)


def connect_console_socket(path: str) -> socket:
    sock = socket(AF_UNIX, SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise TerminalError(f"cannot connect to console socket {path!r}: {exc.strerror}") from None
    return sock


def send_master(console: socket, master: int) -> None:
    """Hand the pty master to whoever listens on the console socket (SCM_RIGHTS)."""
    try:
        console.sendmsg([b"/dev/ptmx"], [(SOL_SOCKET, SCM_RIGHTS, struct.pack("i", master))])
    except OSError as exc:
        raise TerminalError(f"cannot send the terminal to the console socket: {exc}") from None
