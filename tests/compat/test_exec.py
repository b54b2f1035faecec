"""Exec through the real clients: the docker CLI (`exec` with -e -w -u -i, `exec -it`
through a pseudo-terminal, exit codes) and docker-py (exec_run with demux, stream, tty;
exec_create / exec_start / exec_inspect / exec_resize, detached starts, errors)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.compat.conftest import ApiServer, DockerCli
from tests.compat.test_streams import ok, terminal, wait_for

__all__ = ["terminal"]  # the fixture, shared with test_streams


@pytest.fixture
def running(docker: DockerCli) -> str:
    ok(docker("run", "-d", "--name", "ex", "bb:1", "sleep", "1000"))
    return "ex"


# --- the docker CLI --------------------------------------------------------------------------


def test_cli_exec_output_and_exit_codes(api: ApiServer, docker: DockerCli, running: str) -> None:
    assert ok(docker("exec", running, "echo", "hi")) == "hi\n"
    res = docker("exec", running, "sh", "-c", "echo out; echo err >&2; exit 4")
    assert res.returncode == 4
    assert res.stdout == "out\n" and res.stderr == "err\n"


def test_cli_exec_env_workdir_user(api: ApiServer, docker: DockerCli, running: str) -> None:
    out = ok(docker("exec", "-e", "FOO=bar", "-w", "/tmp", "-u", "65534", running,
                    "sh", "-c", 'echo "$FOO"; pwd; id -u'))  # fmt: skip
    assert out == "bar\n/tmp\n65534\n"
    assert ok(docker("exec", "-u", "nobody", running, "id", "-un")) == "nobody\n"


def test_cli_exec_i_forwards_stdin(api: ApiServer, docker: DockerCli, running: str) -> None:
    assert ok(docker("exec", "-i", running, "cat", input="piped\nin\n")) == "piped\nin\n"
    res = docker("exec", "-i", running, "wc", "-c", input="y" * 200000)
    assert ok(res).strip() == "200000"


def test_cli_exec_missing_command_is_126(api: ApiServer, docker: DockerCli, running: str) -> None:
    res = docker("exec", running, "no-such-command")
    assert res.returncode == 126  # dockerd's code for any exec that cannot start
    assert "no-such-command" in res.stdout + res.stderr


def test_cli_exec_in_a_stopped_container_fails(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("create", "--name", "stopped", "bb:1", "true"))
    res = docker("exec", "stopped", "true")
    assert res.returncode != 0
    assert "is not running" in res.stderr


def test_cli_exec_it_is_an_interactive_shell(
    api: ApiServer, docker: DockerCli, running: str, terminal: Any
) -> None:
    term = terminal("exec", "-it", running, "sh", rows=30, columns=90)
    term.expect(r"/ # ")
    term.send("echo $((7*6)); stty size\r")
    term.expect(r"\r\n42\r\n30 90\r\n")  # output, and the terminal has the client's size
    term.send("exit 3\r")
    assert term.wait() == 3
    assert ok(docker("inspect", "-f", "{{.State.Running}}", running)) == "true\n"


def test_cli_exec_t_without_i(api: ApiServer, running: str, terminal: Any) -> None:
    term = terminal("exec", "-t", running, "tty")
    term.expect(r"/dev/pts/\d+")
    assert term.wait() == 0


# --- docker-py -------------------------------------------------------------------------------


def test_sdk_exec_run_exit_code_and_output(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sleep", "1000"], detach=True)
    result = container.exec_run(["sh", "-c", "echo out; echo err >&2; exit 5"])
    assert result.exit_code == 5
    assert result.output == b"out\nerr\n"
    result = container.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert result.exit_code == 0
    assert result.output == (b"out\n", b"err\n")  # stdout and stderr apart: frames
    result = container.exec_run("env", environment={"ZED": "26"}, workdir="/tmp", user="65534")
    assert b"ZED=26\n" in result.output
    assert container.exec_run("pwd", workdir="/tmp").output == b"/tmp\n"


def test_sdk_exec_run_stream(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sleep", "1000"], detach=True)
    result = container.exec_run(["sh", "-c", "for i in 1 2 3; do echo s$i; sleep 0.3; done"],
                                stream=True)  # fmt: skip
    arrivals = []
    for chunk in result.output:
        arrivals.append((time.monotonic(), chunk))
    assert b"".join(chunk for _, chunk in arrivals) == b"s1\ns2\ns3\n"
    assert arrivals[-1][0] - arrivals[0][0] > 0.4  # streamed as it came, not at the end


def test_sdk_exec_run_tty(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sleep", "1000"], detach=True)
    result = container.exec_run(["sh", "-c", "tty; echo x >&2"], tty=True)
    assert result.exit_code == 0
    lines = result.output.split(b"\r\n")
    assert lines[0].startswith(b"/dev/pts/") and lines[1] == b"x"  # raw, one stream


def test_sdk_exec_inspect_and_single_start(api: ApiServer, client: Any) -> None:
    docker_sdk = pytest.importorskip("docker")
    container = client.containers.run("bb:1", ["sleep", "1000"], detach=True)
    exec_id = client.api.exec_create(container.id, ["sh", "-c", "exit 7"], user="0")["Id"]
    before = client.api.exec_inspect(exec_id)
    assert before["Running"] is False and before["ExitCode"] is None
    assert before["ContainerID"] == container.id
    assert before["ProcessConfig"] == {"arguments": ["-c", "exit 7"], "entrypoint": "sh",
                                       "privileged": False, "tty": False, "user": "0"}  # fmt: skip
    assert client.api.exec_start(exec_id) == b""
    after = client.api.exec_inspect(exec_id)
    assert after["Running"] is False and after["ExitCode"] == 7 and after["Pid"] > 0
    with pytest.raises(docker_sdk.errors.APIError) as error:
        client.api.exec_start(exec_id)
    assert error.value.status_code == 409
    with pytest.raises(docker_sdk.errors.NotFound):
        client.api.exec_inspect("0" * 64)


def test_sdk_exec_detached_runs_on(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sleep", "1000"], detach=True)
    exec_id = client.api.exec_create(container.id, ["sh", "-c", "sleep 1; echo done > /tmp/d; "
                                                                "exit 2"])["Id"]  # fmt: skip
    client.api.exec_start(exec_id, detach=True)
    assert client.api.exec_inspect(exec_id)["Running"] is True
    wait_for(lambda: client.api.exec_inspect(exec_id)["Running"] is False)
    assert client.api.exec_inspect(exec_id)["ExitCode"] == 2
    assert container.exec_run(["cat", "/tmp/d"]).output == b"done\n"


def test_sdk_exec_ends_with_the_process_not_its_children(api: ApiServer, client: Any) -> None:
    """A background child keeps the output pipes open: the exec still ends with its
    process (as Docker's)."""
    container = client.containers.run("bb:1", ["sleep", "1000"], detach=True)
    started = time.monotonic()
    result = container.exec_run(["sh", "-c", "sleep 60 & echo parent-done"])
    assert result.output == b"parent-done\n" and result.exit_code == 0
    assert time.monotonic() - started < 10


def test_sdk_exec_resize(api: ApiServer, client: Any) -> None:
    docker_sdk = pytest.importorskip("docker")
    container = client.containers.run("bb:1", ["sleep", "1000"], detach=True)
    exec_id = client.api.exec_create(container.id, ["sh", "-c", "sleep 1; stty size"],
                                     tty=True)["Id"]  # fmt: skip
    sock = client.api.exec_start(exec_id, tty=True, socket=True)
    client.api.exec_resize(exec_id, height=41, width=132)
    raw = sock._sock
    raw.settimeout(15)
    data = b""
    while True:
        chunk = raw.recv(1024)
        if not chunk:
            break
        data += chunk
    raw.close()
    assert data == b"41 132\r\n"
    plain = client.api.exec_create(container.id, ["true"])["Id"]
    with pytest.raises(docker_sdk.errors.APIError) as error:
        client.api.exec_resize(plain, height=10, width=10)
    assert error.value.status_code == 400


def test_sdk_exec_create_errors(api: ApiServer, client: Any) -> None:
    docker_sdk = pytest.importorskip("docker")
    stopped = client.containers.create("bb:1", ["true"])
    with pytest.raises(docker_sdk.errors.APIError) as error:
        client.api.exec_create(stopped.id, ["true"])
    assert error.value.status_code == 409
    with pytest.raises(docker_sdk.errors.NotFound):
        client.api.exec_create("no-such-container", ["true"])
    running = client.containers.run("bb:1", ["sleep", "100"], detach=True)
    with pytest.raises(docker_sdk.errors.APIError) as error:
        client.api.exec_create(running.id, [])
    assert error.value.status_code == 400
