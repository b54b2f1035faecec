"""cove.cli.leave: the end of a command-line process without the interpreter's teardown."""

from __future__ import annotations

import os
import subprocess
import sys

LEAVE = "from cove.cli import leave\nimport sys, threading, time\n"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", LEAVE + code], capture_output=True, text=True,
                          timeout=30)  # fmt: skip


def test_flushes_what_was_printed_and_exits_with_the_status() -> None:
    done = _run("sys.stdout.write('no newline'); sys.stderr.write('err'); leave(3)\n"
                "print('never')")  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (3, "no newline", "err")


def test_a_running_thread_gets_the_normal_exit_which_waits_for_it() -> None:
    code = (
        "def late():\n    time.sleep(0.3)\n    print('thread done', flush=True)\n"
        "threading.Thread(target=late).start()\nleave(4)\n"
    )
    done = _run(code)
    assert (done.returncode, done.stdout) == (4, "thread done\n")


def test_an_unwritable_stdout_takes_the_normal_exit() -> None:
    """The reader went away: the flush fails, and Python's own exit reports it (status
    120, as for any Python program whose final flush fails)."""
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(
        [sys.executable, "-c", LEAVE + "time.sleep(0.5); sys.stdout.write('x'); leave(0)"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=buffered,
    )  # fmt: skip
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=30) == 120, err
    assert "BrokenPipeError" in err
