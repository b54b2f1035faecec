"""Waiting for a container process in the foreground: signals forwarded, tty proxied."""

from __future__ import annotations

import os
import select
import sys as _sys

from cove.runtime import terminal
from cove.sys import constants as c
from cove.sys.signal_handlers import set_handler

FORWARDED_SIGNALS = (
    c.SIGHUP, c.SIGINT, c.SIGQUIT, c.SIGTERM, c.SIGUSR1, c.SIGUSR2, c.SIGALRM, c.SIGCONT,
)  # fmt: skip


def exit_code(wait_status: int) -> int:
    """The shell's convention: the exit status, or 128 + the signal that killed it."""
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def wait_for(pid: int, master: int | None) -> int:
    """Wait for `pid` (our child) and return its exit code; signals we get go to it, and
    with a pty, stdio is proxied to it."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def resize(_signum: int, _frame: object) -> None:
        if master is not None:
            _copy_window_size(master)

    previous = {signum: set_handler(signum, forward) for signum in FORWARDED_SIGNALS}
    previous[c.SIGWINCH] = set_handler(c.SIGWINCH, resize)
    try:
        if master is not None:
            _proxy_tty(pid, master)
        _, status = os.waitpid(pid, 0)
    finally:
        for signum, handler in previous.items():
            set_handler(signum, handler)
    return exit_code(status)


def _copy_window_size(master: int) -> None:
    try:
        size = os.get_terminal_size(_sys.stdin.fileno())
    except OSError:
        return
    terminal.set_size(master, size.lines, size.columns)


def _proxy_tty(pid: int, master: int) -> None:
    """Copy stdin to the pty and the pty to stdout until the process exits."""
    stdin = _sys.stdin.fileno()
    saved = None
    if os.isatty(stdin):
        import termios
        import tty

        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin)
    try:
        _copy_until_exit(pid, master, stdin, _sys.stdout.fileno())
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        os.close(master)


def _copy_until_exit(pid: int, master: int, stdin: int, stdout: int) -> None:
    _copy_window_size(master)
    pidfd = os.pidfd_open(pid)
    sources = [master, stdin, pidfd]
    try:
        while True:
            readable, _, _ = select.select(sources, [], [])
            if master in readable:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""  # EIO: every slave side is closed
                if not data:
                    return
                os.write(stdout, data)
            elif stdin in readable:
                data = os.read(stdin, 65536)
                if data:
                    os.write(master, data)
                else:
                    sources.remove(stdin)
            elif pidfd in readable:
                _drain(master, stdout)
                return
    finally:
        os.close(pidfd)


def _drain(master: int, stdout: int) -> None:
    while select.select([master], [], [], 0)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            return
        if not data:
            return
        os.write(stdout, data)
