"""The client side of a monitor's attach socket (`cove attach`, `cove run`, `cove start -a`).

Frames in both directions are Docker's multiplexed-stream header, `[type, 0, 0, 0,
length (uint32 big endian)]`, then the payload:

    monitor -> client   1 stdout   2 stderr   0xFF exit (payload: the exit code, decimal)
    client -> monitor   0 stdin    1 close stdin   2 resize "ROWS COLS"   3 hand-off

A hand-off tells the monitor that this client runs the clean-up after the exit (the
foreground `cove run` does, to answer sooner); it holds only while the client stays
connected, so a client killed mid-way leaves the clean-up to the monitor's exit command.

Attach before start (the API server: `docker run` posts attach, then start, and `docker
start -a` does the same): the attach handler registers a waiter with `await_start`; the
start in the same process (`container_start.start_container`) calls `connect_waiting`
once the new monitor listens and before init runs, so the waiter misses no output.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable
from types import FrameType

from cove.errors import MonitorError

STDOUT, STDERR, EXIT = 1, 2, 0xFF
STDIN_DATA, STDIN_CLOSE, RESIZE, HANDOFF = 0, 1, 2, 3
_HEADER = struct.Struct(">BxxxI")


class AttachClient:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.connect(path)
        except OSError as err:
            self.sock.close()
            raise MonitorError(f"cannot attach: {path}: {err.strerror}") from None
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, kind: int, payload: bytes = b"") -> None:
        self.sock.sendall(_HEADER.pack(kind, len(payload)) + payload)

    def resize(self, rows: int, columns: int) -> None:
        self.send(RESIZE, f"{rows} {columns}".encode())

    def handoff(self) -> None:
        self.send(HANDOFF)

    def read_frames(self) -> list[tuple[int, bytes]] | None:
        """The complete frames that one read brings; None at end of stream."""
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""  # the monitor exited before reading what we sent: the same end
        if not chunk:
            return None
        self._buffer += chunk
        frames: list[tuple[int, bytes]] = []
        while len(self._buffer) >= _HEADER.size:
            kind, length = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) < _HEADER.size + length:
                break
            frames.append((kind, self._buffer[_HEADER.size : _HEADER.size + length]))
            self._buffer = self._buffer[_HEADER.size + length :]
        return frames


DETACHED = -1  # what `pump` returns when the user detached (never an exit code)


def pump(
    client: AttachClient,
    *,
    stdin: int | None,
    stdout: int = 1,
    stderr: int = 2,
    tty: bool = False,
    on_started: Callable[[], None] | None = None,
    detach_keys: bytes = b"",
) -> int | None:
    """Copy the container's output to `stdout`/`stderr` and `stdin` to the container until
    it exits; returns its exit code, or None when the monitor went away without one, or
    DETACHED when `detach_keys` came on stdin (Docker's ctrl-p ctrl-q: the container runs
    on; the sequence itself is not sent).

    With `tty` and a terminal on stdin, the terminal is put in raw mode for the duration and
    its size follows SIGWINCH. `on_started` runs once everything is in place (so `cove run`
    starts the container only when no output can be missed)."""
    restore = _raw_terminal(stdin) if tty and stdin is not None else None
    previous_winch = None
    if tty and stdin is not None and os.isatty(stdin):
        terminal = stdin
        _send_size(client, terminal)

        def on_winch(_signum: int, _frame: FrameType | None) -> None:
            _send_size(client, terminal)

        previous_winch = signal.signal(signal.SIGWINCH, on_winch)
    try:
        if on_started is not None:
            on_started()
        escape = None
        if detach_keys and stdin is not None:
            from cove.engine.detach_keys import EscapeProxy

            escape = EscapeProxy(detach_keys)
        watched: list[int] = [client.fileno()]
        if stdin is not None:
            watched.append(stdin)
        while True:
            try:
                ready, _, _ = select.select(watched, [], [])
            except InterruptedError:
                continue
            if stdin is not None and stdin in ready:
                data = os.read(stdin, 65536)
                if data and escape is not None:
                    data, detached = escape.feed(data)
                    if detached:
                        if data:
                            client.send(STDIN_DATA, data)
                        return DETACHED
                    if not data:
                        continue  # held: it may be the start of the sequence
                if data:
                    client.send(STDIN_DATA, data)
                else:
                    client.send(STDIN_CLOSE)
                    watched.remove(stdin)
                    stdin = None
            if client.fileno() in ready:
                frames = client.read_frames()
                if frames is None:
                    return None
                for kind, payload in frames:
                    if kind == EXIT:
                        return int(payload or b"0")
                    _write_all(stderr if kind == STDERR else stdout, payload)
    finally:
        if previous_winch is not None:
            signal.signal(signal.SIGWINCH, previous_winch)
        if restore is not None:
            restore()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BrokenPipeError:
            return
        view = view[written:]


def _send_size(client: AttachClient, fd: int) -> None:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return
    try:
        client.resize(size.lines, size.columns)
    except OSError:
        pass


def _raw_terminal(fd: int) -> Callable[[], None] | None:
    if not os.isatty(fd):
        return None
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)

    def restore() -> None:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        sys.stdout.flush()

    return restore


# --- attach clients waiting for a start ------------------------------------------------------

Deliver = Callable[[AttachClient | None], None]
_waiting_lock = threading.Lock()
_waiting: dict[str, list[Deliver]] = {}


def await_start(container_id: str, deliver: Deliver) -> Callable[[], bool]:
    """Have `deliver` called, on the thread that next starts `container_id` in this process,
    with a client connected to its new monitor before init runs (None when the connection
    failed). Returns a cancel function: True when it withdrew the waiter before delivery."""
    with _waiting_lock:
        _waiting.setdefault(container_id, []).append(deliver)

    def cancel() -> bool:
        with _waiting_lock:
            waiters = _waiting.get(container_id, [])
            if deliver not in waiters:
                return False
            waiters.remove(deliver)
            if not waiters:
                _waiting.pop(container_id, None)
            return True

    return cancel


def connect_waiting(container_id: str, path: str) -> None:
    """Connect every waiter of `container_id` to the monitor socket at `path`."""
    with _waiting_lock:
        waiters = _waiting.pop(container_id, [])
    for deliver in waiters:
        client: AttachClient | None
        try:
            client = AttachClient(path)
        except MonitorError:
            client = None
        try:
            deliver(client)
        except Exception:  # a waiter's failure is its own: the start goes on
            if client is not None:
                client.close()
