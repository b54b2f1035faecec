"""Waiting for a container's init in the foreground, forwarding signals as docker run
does (its --sig-proxy): Ctrl-C and friends go to the container, not to cove."""

from __future__ import annotations

import os
import signal

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2)  # fmt: skip


def wait_foreground(pid: int) -> int:
    """Wait for `pid` (re-parented to us: we are a subreaper); the shell's exit code."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        while True:
            try:
                reaped, status = os.waitpid(pid, 0)
            except ChildProcessError:
                return 255  # not ours after all: nothing to collect
            if reaped == pid:
                code = os.waitstatus_to_exitcode(status)
                return 128 - code if code < 0 else code
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
