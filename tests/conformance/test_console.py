"""terminal: true with --console-socket: the pty master is handed over with SCM_RIGHTS.

Every test runs against cove, runc and crun through the `runtime` fixture.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.lib.bundle import Bundle
from tests.lib.probe import last_json
from tests.lib.runtimes import Result, Runtime

pytestmark = pytest.mark.root

BundleFactory = Callable[..., Bundle]


@contextlib.contextmanager
def console_server(path: Path) -> Iterator[socket.socket]:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        srv.bind(str(path))
        srv.listen(1)
        srv.settimeout(20)
        yield srv
    finally:
        srv.close()


def receive_master(srv: socket.socket) -> int:
    """Accept one runtime connection and return the single fd it sends."""
    conn, _ = srv.accept()
    with conn:
        conn.settimeout(20)
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
    assert len(fds) == 1, f"expected exactly one fd, got {fds}"
    return fds[0]


def create_with_console(runtime: Runtime, b: Bundle, sock: Path) -> tuple[Result, int]:
    """Run `create --console-socket` while accepting on the socket; return (result, master)."""
    with console_server(sock) as srv, ThreadPoolExecutor(1) as pool:
        future = pool.submit(runtime.create, b, b.id, "--console-socket", str(sock))
        try:
            master = receive_master(srv)
        except (TimeoutError, OSError) as exc:
            res = future.result()
            raise AssertionError(f"no pty master received ({exc}):\n{res}") from None
        res = future.result()
    return res, master


def read_until_closed(fd: int, timeout: float = 20.0, stop: bytes | None = None) -> bytes:
    """Read a pty master until the slave side is gone (EIO), EOF, `stop`, or timeout."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError as exc:
            if exc.errno == errno.EIO:
                break
            raise
        if not chunk:
            break
        data += chunk
        if stop is not None and stop in data:
            break
    return data


def test_console_socket_receives_pty_master(
    runtime: Runtime, bundle: BundleFactory, short_tmp: Path
) -> None:
    b = bundle()
    b.process["terminal"] = True
    b.shell("coveprobe tty; echo console-done")
    res, master = create_with_console(runtime, b, short_tmp / "console.sock")
    try:
        res.check()
        assert os.isatty(master)
        runtime.start(b.id).check()
        output = read_until_closed(master, stop=b"console-done").decode(errors="replace")
    finally:
        os.close(master)
    assert "console-done" in output
    tty = last_json(output.replace("\r", ""))
    assert tty["stdin"] is True
    assert tty["stdout"] is True
    assert tty["stderr"] is True
    assert isinstance(tty["ttyname"], str) and tty["ttyname"].startswith("/dev/pts/")


def test_console_input_reaches_container(
    runtime: Runtime, bundle: BundleFactory, short_tmp: Path
) -> None:
    b = bundle()
    b.process["terminal"] = True
    b.shell("read line; echo got:$line")
    res, master = create_with_console(runtime, b, short_tmp / "console.sock")
    try:
        res.check()
        runtime.start(b.id).check()
        os.write(master, b"hello-pty\n")
        output = read_until_closed(master, stop=b"got:hello-pty").decode(errors="replace")
    finally:
        os.close(master)
    assert "got:hello-pty" in output


def test_terminal_without_console_socket_fails(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["terminal"] = True
    b.probe("tty")
    res = runtime.create(b, b.id)
    assert res.returncode != 0
    assert b.id not in runtime.list("--quiet").check().stdout.split()
    assert not (runtime.root / b.id).exists()
