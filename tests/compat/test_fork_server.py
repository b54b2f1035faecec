"""The API server starts containers through its fork server (cove.engine.monitor_spawn):
one long-lived single-threaded child; when it dies, the next start makes a new one."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.compat.conftest import ApiServer, DockerCli


def fork_servers(server_pid: int) -> list[int]:
    out = subprocess.run(["ps", "--ppid", str(server_pid), "-o", "pid=,args="],
                         capture_output=True, text=True).stdout  # fmt: skip
    return [int(line.split()[0]) for line in out.splitlines()
            if "cove.engine.monitor_spawn --serve" in line]  # fmt: skip


def test_one_fork_server_serves_every_start_and_is_replaced_when_killed(
    api: ApiServer, docker: DockerCli
) -> None:
    for word in ("one", "two"):
        res = docker("run", "--rm", "--network", "none", "bb:1", "echo", word)
        assert (res.returncode, res.stdout) == (0, f"{word}\n"), res.stderr
    servers = fork_servers(api.process.pid)
    assert len(servers) == 1
    os.kill(servers[0], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while servers[0] in fork_servers(api.process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    res = docker("run", "--rm", "--network", "none", "bb:1", "echo", "three")
    assert (res.returncode, res.stdout) == (0, "three\n"), res.stderr
    replaced = fork_servers(api.process.pid)
    assert len(replaced) == 1 and replaced[0] != servers[0]
