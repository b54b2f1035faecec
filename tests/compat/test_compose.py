"""docker-compose (Debian's v1, a docker-py client) against `cove serve`: a project with two
services on the project's network, a named volume and a published port comes up, its
client reaches the server by service name; exec, logs, a one-off `run --rm`, restart and
stop work; `down -v` leaves no container, network or volume of the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.compat.conftest import ApiServer

pytestmark = pytest.mark.root

COMPOSE_FILE = """\
version: "3.8"
services:
  web:
    image: bb:1
    command: ["sh", "-c", "echo hello-compose > /data/index.html && exec httpd -f -p 80 -h /data"]
    volumes:
      - site:/data
    ports:
      - "127.0.0.1::80"
  client:
    image: bb:1
    depends_on: [web]
    command:
      - sh
      - -c
      - >-
        i=0; while [ $$i -lt 40 ]; do timeout 3 wget -q -O- http://web/ && exit 0;
        i=$$((i+1)); sleep 0.25; done; exit 8
volumes:
  site: {}
"""

Compose = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def compose(api: ApiServer, tmp_path: Path) -> Compose:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: run tools/install.sh --test")
    project = tmp_path / "project"
    project.mkdir()
    (project / "docker-compose.yml").write_text(COMPOSE_FILE)
    env = {**os.environ, "DOCKER_HOST": api.url, "COMPOSE_PROJECT_NAME": "cmp"}

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([binary, "--no-ansi", *args], cwd=project, env=env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    return run


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res.stdout


def test_a_project_comes_up_works_and_goes(api: ApiServer, compose: Compose) -> None:
    ok(compose("up", "-d"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = ok(compose("ps", "-a"))
        if "Exit" in state:
            break
        time.sleep(0.5)
    assert "cmp_client_1" in state and "Exit 0" in state, state  # it fetched the page
    assert "hello-compose" in ok(compose("logs", "client"))
    host_port = ok(compose("port", "web", "80")).strip()  # 127.0.0.1:PORT
    with urllib.request.urlopen(f"http://{host_port}/", timeout=10) as page:
        assert page.read() == b"hello-compose\n"
    assert ok(compose("exec", "-T", "web", "cat", "/data/index.html")) == "hello-compose\n"
    names = ok(api.cove("ps", "-a", "--format", "{{.Names}}")).split()
    assert sorted(names) == ["cmp_client_1", "cmp_web_1"]
    assert "cmp_default" in ok(api.cove("network", "ls"))
    assert "cmp_site" in ok(api.cove("volume", "ls"))
    # a one-off container on the project's network, its output, its exit code, then gone
    one_off = compose("run", "--rm", "-T", "client", "sh", "-c", "wget -q -O- http://web/; exit 3")
    assert (one_off.returncode, one_off.stdout) == (3, "hello-compose\n"), one_off.stderr
    ok(compose("restart", "web"))
    assert ok(compose("exec", "-T", "web", "cat", "/data/index.html")) == "hello-compose\n"
    ok(compose("stop"))
    assert "Up" not in ok(compose("ps"))

    ok(compose("down", "-v"))
    assert ok(api.cove("ps", "-aq")).split() == []
    assert "cmp_default" not in ok(api.cove("network", "ls"))
    assert "cmp_site" not in ok(api.cove("volume", "ls"))
