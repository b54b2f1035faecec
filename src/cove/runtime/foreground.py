"""Waiting for a container process in the foreground: signals forwarded, tty proxied."""

from __future__ import annotations

import os
import select
import signal
import sys as _sys
from collections.abc import Iterator
from contextlib import contextmanager

from cove.runtime import terminal

FORWARDED_SIGNALS = (
    signal.SIGHUP,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTERM,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGALRM,
    signal.SIGCONT,
)


def exit_code(wait_status: int) -> int:
    """The shell's convention: the exit status, or 128 + the signal that killed it."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


@contextmanager
def forwarding_signals(pid: int, master: int | None = None) -> Iterator[None]:
    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def resize(_signum: int, _frame: object) -> None:
        if master is not None:
            _copy_window_size(master)

    previous = {s: signal.signal(s, forward) for s in FORWARDED_SIGNALS}
    previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, resize)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def wait_for(pid: int, master: int | None) -> int:
    """Wait for `pid` (our child) and return its exit code; with a pty, proxy stdio."""
    with forwarding_signals(pid, master):
        if master is not None:
            _proxy_tty(pid, master)
        _, status = os.waitpid(pid, 0)
    return exit_code(status)


def _copy_window_size(master: int) -> None:
    try:
        size = os.get_terminal_size(_sys.stdin.fileno())
    except OSError:
        return
    terminal.set_size(master, size.lines, size.columns)


@contextmanager
def _raw_stdin() -> Iterator[None]:
    stdin = _sys.stdin.fileno()
    if not os.isatty(stdin):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(stdin)
    tty.setraw(stdin)
    try:
        yield
    finally:
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


def _proxy_tty(pid: int, master: int) -> None:
    """Copy stdin to the pty and the pty to stdout until the process exits."""
    stdin, stdout = _sys.stdin.fileno(), _sys.stdout.fileno()
    pidfd = os.pidfd_open(pid)
    _copy_window_size(master)
    sources = [master, stdin, pidfd]
    with _raw_stdin():
        while True:
            try:
                readable, _, _ = select.select(sources, [], [])
            except InterruptedError:
                continue
            if master in readable:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""  # EIO: every slave side is closed
                if not data:
                    break
                os.write(stdout, data)
                continue
            if stdin in readable:
                data = os.read(stdin, 65536)
                if data:
                    os.write(master, data)
                else:
                    sources.remove(stdin)
                continue
            if pidfd in readable:
                _drain(master, stdout)
                break
    os.close(pidfd)
    os.close(master)


def _drain(master: int, stdout: int) -> None:
    while select.select([master], [], [], 0)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        os.write(stdout, data)
