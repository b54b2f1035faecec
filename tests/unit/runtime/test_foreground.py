"""cove.runtime.foreground: exit codes, signal forwarding and the tty proxy."""

from __future__ import annotations

import os
import signal
import subprocess

from cove.runtime import foreground, terminal
from cove.runtime.foreground import FORWARDED_SIGNALS, exit_code, wait_for


def test_exit_code_conventions() -> None:
    assert exit_code(0) == 0
    assert exit_code(3 << 8) == 3
    assert exit_code(signal.SIGKILL) == 128 + 9
    assert exit_code(signal.SIGTERM) == 128 + 15


def test_wait_for_returns_the_exit_code() -> None:
    child = subprocess.Popen(["sh", "-c", "exit 7"])
    assert wait_for(child.pid, None) == 7
    child.returncode = 7  # reaped by wait_for


def test_signals_are_forwarded_and_handlers_restored() -> None:
    before = {signum: signal.getsignal(signum) for signum in FORWARDED_SIGNALS}
    child = subprocess.Popen(["sleep", "5"])
    # SIGALRM reaches us while we wait: it must go to the child, which it kills. Should it
    # come early (a loaded machine), the harmless handler keeps pytest alive.
    previous_alarm = signal.signal(signal.SIGALRM, lambda signum, frame: None)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        assert wait_for(child.pid, None) == 128 + signal.SIGALRM
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_alarm)
        child.returncode = 0
        if child.poll() is None:
            child.kill()
    assert {signum: signal.getsignal(signum) for signum in FORWARDED_SIGNALS} == before


def test_tty_output_is_copied_until_exit() -> None:
    master, slave, _ = terminal.open_pty((24, 80))
    child = subprocess.Popen(
        ["sh", "-c", "echo hello from the pty"], stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    stdin_r, stdin_w = os.pipe()
    os.close(stdin_w)  # no input: end of file at once
    out_r, out_w = os.pipe()
    try:
        foreground._copy_until_exit(child.pid, master, stdin_r, out_w)
        os.close(out_w)
        with os.fdopen(out_r, "rb") as out:
            assert b"hello from the pty" in out.read()
    finally:
        child.wait()
        os.close(master)
        os.close(stdin_r)
