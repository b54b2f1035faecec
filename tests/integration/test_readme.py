"""The README's first command, run as a user would (with its own engine root): every step
it shows happens, and it leaves nothing mounted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parents[2]


def test_install_and_run_shows_the_seed_end_to_end(tmp_path: Path) -> None:
    root = tmp_path / "engine"
    env = {**os.environ, "COVE_DEMO_ROOT": str(root), "COVE_DEMO_PORT": "18311"}
    res = subprocess.run([str(REPO / "tools" / "install-and-run.sh")], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    out = res.stdout
    assert res.returncode == 0, out + res.stderr
    steps = [line for line in out.splitlines() if line.startswith("$ ")]
    assert [s.split()[1] for s in steps[:-1]] == [
        "cove", "cove", "cove", "/usr/bin/python3", "cove", "cove", "cove", "cove", "cove"
    ]  # fmt: skip
    assert [s.split()[2] for s in steps[:-1]] == [
        "image", "run", "ps", "-c", "exec", "stats", "logs", "stop", "rm"
    ]  # fmt: skip
    assert "-p 127.0.0.1:" in steps[1]
    assert "Directory listing for /" in out  # the page, fetched from the host: published port
    assert "pid 1 is cove-init" in out
    assert "memory limit 268435456" in out
    assert "Read-only file system" in out and "/tmp is writable" in out
    assert "256MiB" in out  # cove stats: the limit
    assert '"GET / HTTP/1.1" 200' in res.stderr  # cove logs: the server's log (stderr)
    assert "nothing left mounted" in out
    assert str(root) not in Path("/proc/self/mountinfo").read_text()
    listed = subprocess.run(["cove", "--root", str(root), "ps", "-aq"], capture_output=True,
                            text=True, timeout=30)  # fmt: skip
    assert listed.stdout == ""
