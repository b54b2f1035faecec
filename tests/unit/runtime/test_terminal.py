"""cove.runtime.terminal: ptys and the console socket hand-off."""

from __future__ import annotations

import array
import fcntl
import os
import socket
import struct
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.errors import TerminalError
from cove.runtime.terminal import connect_console_socket, open_pty, send_master, set_size


@pytest.fixture
def pty() -> Iterator[tuple[int, int, str]]:
    master, slave, name = open_pty((30, 100))
    yield master, slave, name
    os.close(master)
    os.close(slave)


def window_size(fd: int) -> tuple[int, int]:
    rows, columns, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return rows, columns


def test_open_pty(pty: tuple[int, int, str]) -> None:
    master, slave, name = pty
    assert name.startswith("/dev/pts/")
    assert os.isatty(slave)
    assert not os.get_inheritable(master)
    assert window_size(slave) == (30, 100)
    os.write(slave, b"ping")
    assert os.read(master, 100) == b"ping"


def test_set_size(pty: tuple[int, int, str]) -> None:
    master, slave, _ = pty
    set_size(master, 50, 132)
    assert window_size(slave) == (50, 132)


def test_missing_console_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "console.sock")
    with pytest.raises(TerminalError, match=f"^cannot connect to console socket '{path}': "):
        connect_console_socket(path)


def test_master_reaches_the_console_socket(pty: tuple[int, int, str], tmp_path: Path) -> None:
    master, slave, _ = pty
    path = str(tmp_path / "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    console = connect_console_socket(path)
    peer, _ = listener.accept()
    try:
        send_master(console, master)
        fds = array.array("i")
        data, ancdata, _, _ = peer.recvmsg(100, socket.CMSG_LEN(fds.itemsize))
        assert data == b"/dev/ptmx"
        fds.frombytes(ancdata[0][2])
        received = fds[0]
        os.write(received, b"typed\n")
        assert os.read(slave, 100) == b"typed\n"
        os.close(received)
    finally:
        peer.close()
        console.close()
        listener.close()


def test_send_master_on_a_closed_socket(pty: tuple[int, int, str]) -> None:
    a, b = socket.socketpair()
    b.close()
    a.close()
    with pytest.raises(TerminalError, match=r"^cannot send the terminal"):
        send_master(a, pty[0])
