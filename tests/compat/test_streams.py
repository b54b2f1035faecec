"""Container streams through the real clients: attach (docker run in the foreground, with
and without -t and -i, docker attach, docker start -a, docker-py's attach and
attach_socket, the websocket), logs (-f, --tail, -t, stdout/stderr), stats (--no-stream,
docker-py's stream and one-shot documents) and resize."""

from __future__ import annotations

import asyncio
import calendar
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import termios
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.compat.conftest import ApiServer, DockerCli, docker_binary


def ok(res: Any) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return str(res.stdout)


def wait_for(predicate: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def container_ids(api: ApiServer) -> list[str]:
    return ok(api.cove("ps", "-aq")).split()


class Terminal:
    """A command on a pseudo-terminal of its own (rows x columns), driven like a person
    would: wait for text, type, wait for the exit."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24,
                 columns: int = 80) -> None:  # fmt: skip
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: exec at once (nothing else runs in it)
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.output = b""
        self.status: int | None = None

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the program exited and closed the terminal
            return False
        if not data:
            return False
        self.output += data
        return True

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern.encode())
        while True:
            found = regex.search(self.output)
            if found:
                return found
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)):
                found = regex.search(self.output)
                if found:
                    return found
                raise AssertionError(f"{pattern!r} not seen; output so far: {self.output!r}")

    def send(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._read(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self._read(0.05):
                    if not select.select([self.fd], [], [], 0)[0]:
                        break
                self.status = os.waitstatus_to_exitcode(status)
                return self.status
        self.kill()
        raise AssertionError(f"still running after {timeout}s; output: {self.output!r}")

    def kill(self) -> None:
        if self.status is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.status = -9
        os.close(self.fd)


def docker_env(api: ApiServer, tmp_path: Any) -> dict[str, str]:
    config = tmp_path / "docker-config-tty"
    config.mkdir(exist_ok=True)
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
            "TERM": "xterm", "DOCKER_HOST": api.url, "DOCKER_CONFIG": str(config),
            "DOCKER_CLI_HINTS": "false"}  # fmt: skip


@pytest.fixture
def terminal(api: ApiServer, tmp_path: Any) -> Iterator[Any]:
    """terminal("run", "-it", ...) -> a Terminal running the docker CLI."""
    opened: list[Terminal] = []

    def start(*args: str, rows: int = 24, columns: int = 80) -> Terminal:
        term = Terminal([docker_binary(), *args], docker_env(api, tmp_path), rows, columns)
        opened.append(term)
        return term

    yield start
    for term in opened:
        if term.status is None:
            term.kill()


# --- docker run in the foreground: attach before start -----------------------------------------


def test_cli_run_rm_prints_the_output_and_is_gone(api: ApiServer, docker: DockerCli) -> None:
    res = docker("run", "--rm", "bb:1", "echo", "hi")
    assert ok(res) == "hi\n"
    assert container_ids(api) == []


def test_cli_run_passes_the_exit_status_and_separates_stderr(
    api: ApiServer, docker: DockerCli
) -> None:
    res = docker("run", "--rm", "bb:1", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert res.returncode == 3
    assert res.stdout == "out\n"
    assert res.stderr == "err\n"


def test_cli_run_sees_output_written_at_once_every_time(api: ApiServer, docker: DockerCli) -> None:
    """Attach comes before start: output printed as the container starts is never lost."""
    for attempt in range(5):
        res = docker("run", "--rm", "bb:1", "echo", f"first-{attempt}")
        assert ok(res) == f"first-{attempt}\n"


def test_cli_run_i_forwards_piped_stdin_and_closes_it(api: ApiServer, docker: DockerCli) -> None:
    res = docker("run", "-i", "--rm", "bb:1", "cat", input="data\nmore data\n")
    assert ok(res) == "data\nmore data\n"
    res = docker("run", "-i", "--rm", "bb:1", "sh", "-c", "wc -c; exit 5", input="x" * 100000)
    assert res.returncode == 5
    assert res.stdout.strip() == "100000"  # stdin's end reached the container (cat/wc ended)


def test_cli_run_t_gives_a_terminal_of_the_clients_size(api: ApiServer, terminal: Any) -> None:
    term = terminal("run", "-t", "--rm", "bb:1", "sh", "-c", "tty; sleep 0.3; stty size",
                    rows=33, columns=101)  # fmt: skip
    term.expect(r"/dev/pts/\d+\r+\n")  # (without -i the local terminal adds its own \r)
    term.expect(r"33 101\r+\n")  # the CLI's resize reached the container's terminal
    assert term.wait() == 0


def test_cli_run_it_is_an_interactive_shell(api: ApiServer, terminal: Any) -> None:
    term = terminal("run", "-it", "--rm", "bb:1", "sh")
    term.expect(r"/ # ")
    term.send("echo $((6*7))\r")
    term.expect(r"\r\n42\r\n")
    term.send("exit 9\r")
    assert term.wait() == 9


def test_cli_run_it_detaches_on_ctrl_p_ctrl_q(
    api: ApiServer, docker: DockerCli, terminal: Any
) -> None:
    term = terminal("run", "-it", "--name", "det", "bb:1", "sh")
    term.expect(r"/ # ")
    term.send("\x10\x11")
    assert term.wait() == 0
    assert ok(docker("inspect", "-f", "{{.State.Running}}", "det")) == "true\n"
    again = terminal("attach", "--detach-keys", "ctrl-x", "det")  # and back, other keys
    again.send("echo back-$((1+1))\r")
    again.expect(r"back-2")
    again.send("\x18")
    assert again.wait() in (0, 1)  # (docker attach reports the detach as "read escape sequence")
    assert ok(docker("inspect", "-f", "{{.State.Running}}", "det")) == "true\n"


def test_cli_attach_to_a_running_container(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "-d", "--name", "att", "bb:1", "sh", "-c",
              "sleep 1; echo later; echo oops >&2; exit 6"))  # fmt: skip
    res = docker("attach", "att")
    assert res.returncode == 6
    assert res.stdout == "later\n"
    assert res.stderr == "oops\n"


def test_cli_attach_with_stdin(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "-d", "-i", "--name", "atin", "bb:1", "sh", "-c", "read x; echo got-$x"))
    res = docker("attach", "atin", input="hello\n")
    assert ok(res) == "got-hello\n"


def test_cli_start_a_attaches_an_exited_container(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("create", "--name", "sa", "bb:1", "sh", "-c", "echo run-once; exit 2"))
    res = docker("start", "-a", "sa")
    assert res.returncode == 2 and res.stdout == "run-once\n"
    res = docker("start", "-a", "sa")  # again: the exited container runs once more
    assert res.returncode == 2 and res.stdout == "run-once\n"


# --- docker-py attach ----------------------------------------------------------------------------


def test_sdk_attach_stream_until_exit(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sh", "-c", "sleep 0.5; echo a1; sleep 0.2; "
                                                           "echo a2"], detach=True)  # fmt: skip
    chunks = list(container.attach(stream=True, stdout=True, stderr=True))
    assert b"".join(chunks) == b"a1\na2\n"


def test_sdk_attach_with_logs_replays_first(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sh", "-c", "echo before; sleep 1.5; "
                                                           "echo after"], detach=True)  # fmt: skip
    wait_for(lambda: b"before" in container.logs())
    data = b"".join(container.attach(stream=True, logs=True))
    assert data == b"before\nafter\n"
    assert container.attach(stream=False, logs=True) == b"before\nafter\n"  # the log only


def test_sdk_attach_socket_stdin_and_frames(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["cat"], detach=True, stdin_open=True)
    sock = container.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
    raw = sock._sock
    try:
        raw.sendall(b"via-socket\n")
        raw.settimeout(10)
        data = b""
        while len(data) < 19:
            data += raw.recv(100)
    finally:
        raw.close()
    assert data == b"\x01\x00\x00\x00\x00\x00\x00\x0bvia-socket\n"  # a stdout frame
    container.reload()
    assert container.status == "running"  # the client left; stdin was not StdinOnce


def test_sdk_attach_detach_keys_end_the_stream_not_the_container(
    api: ApiServer, client: Any
) -> None:
    container = client.containers.run("bb:1", ["cat"], detach=True, stdin_open=True, tty=True)
    sock = client.api.attach_socket(container.id, params={
        "stdin": 1, "stdout": 1, "stream": 1, "detachKeys": "ctrl-a,x"})  # fmt: skip
    raw = sock._sock
    raw.settimeout(10)
    raw.sendall(b"echo-me\n")
    data = b""
    while b"echo-me\r\n" not in data:
        data += raw.recv(100)
    raw.sendall(b"\x01x")
    while True:  # the server ends the stream: the sequence did not reach the container
        chunk = raw.recv(100)
        if not chunk:
            break
        data += chunk
    raw.close()
    assert b"\x01" not in data
    container.reload()
    assert container.status == "running"


def test_sdk_attach_errors(api: ApiServer, client: Any) -> None:
    docker_sdk = pytest.importorskip("docker")
    with pytest.raises(docker_sdk.errors.NotFound):
        client.api.attach("no-such-container")
    container = client.containers.run("bb:1", ["sleep", "100"], detach=True)
    container.pause()
    try:
        with pytest.raises(docker_sdk.errors.APIError) as error:
            client.api.attach(container.id)
        assert error.value.status_code == 409
    finally:
        container.unpause()
    with pytest.raises(docker_sdk.errors.APIError) as error:
        client.api.attach_socket(container.id, params={"stream": 1, "detachKeys": "ctrl-1"})
    assert error.value.status_code == 400


def test_websocket_attach(api: ApiServer, client: Any) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    container = client.containers.run("bb:1", ["cat"], detach=True, stdin_open=True)

    async def talk() -> bytes:
        connector = aiohttp.UnixConnector(path=str(api.socket))
        async with aiohttp.ClientSession(connector=connector) as session:
            url = (f"http://docker/v1.44/containers/{container.id}/attach/ws"
                   "?stream=1&stdin=1&stdout=1&stderr=1")  # fmt: skip
            async with session.ws_connect(url) as ws:
                await ws.send_bytes(b"over-ws\n")
                message = await asyncio.wait_for(ws.receive(), 10)
                return bytes(message.data)

    assert asyncio.run(talk()) == b"over-ws\n"  # raw (no frame header), binary message


# --- logs ------------------------------------------------------------------------------------


LINES = "for i in 1 2 3 4; do echo line$i; echo err$i >&2; sleep 0.2; done"


def test_cli_logs_separates_stdout_and_stderr(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "--name", "lg", "bb:1", "sh", "-c", LINES))
    res = docker("logs", "lg")
    assert ok(res) == "line1\nline2\nline3\nline4\n"
    assert res.stderr == "err1\nerr2\nerr3\nerr4\n"


def test_cli_logs_f_follows_and_ends_when_the_container_stops(
    api: ApiServer, docker: DockerCli
) -> None:
    ok(docker("run", "-d", "--name", "lf", "bb:1", "sh", "-c",
              "echo early; sleep 1.5; echo late; sleep 0.5"))  # fmt: skip
    started = time.monotonic()
    res = docker("logs", "-f", "lf", timeout=30)
    took = time.monotonic() - started
    assert ok(res) == "early\nlate\n"
    assert 1.0 < took < 15  # it waited for "late", and stopped with the container


def test_cli_logs_tail_with_timestamps(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "--name", "lt", "bb:1", "sh", "-c", "for i in 1 2 3 4 5; do echo n$i; done"))
    lines = ok(docker("logs", "--tail", "2", "-t", "lt")).splitlines()
    assert len(lines) == 2
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z"
    assert re.fullmatch(stamp + " n4", lines[0]), lines
    assert re.fullmatch(stamp + " n5", lines[1]), lines
    assert ok(docker("logs", "--tail", "0", "lt")) == ""


def test_logs_of_a_tty_container_are_raw(api: ApiServer, docker: DockerCli, client: Any) -> None:
    ok(docker("run", "-t", "--name", "ltty", "bb:1", "sh", "-c", "echo on-a-tty"))
    assert ok(docker("logs", "ltty")) == "on-a-tty\n"  # (text mode reads \r\n as \n)
    assert client.containers.get("ltty").logs() == b"on-a-tty\r\n"  # no frame headers


def test_sdk_logs_stream_follow_ends_with_the_container(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sh", "-c", LINES], detach=True)
    chunks = list(container.logs(stream=True, follow=True))
    text = b"".join(chunks).decode()
    assert [line for line in text.splitlines() if line.startswith("line")] == [
        "line1", "line2", "line3", "line4"]  # fmt: skip
    assert sorted(text.split()) == sorted(f"{k}{i}" for k in ("line", "err") for i in range(1, 5))
    container.reload()
    assert container.status == "exited"


def test_sdk_logs_streams_since_until_timestamps(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sh", "-c", "echo old; sleep 1.2; echo new"],
                                      detach=True)  # fmt: skip
    container.wait()
    assert container.logs(stdout=True, stderr=False) == b"old\nnew\n"
    assert container.logs(stdout=False, stderr=True) == b""
    stamped = container.logs(timestamps=True).decode().splitlines()
    times = [_unix_time(line.split(" ", 1)[0]) for line in stamped]
    assert times[1] - times[0] > 1.0  # the sleep between the two lines
    middle = (times[0] + times[1]) / 2
    assert container.logs(since=middle) == b"new\n"
    assert container.logs(until=middle) == b"old\n"


def _unix_time(stamp: str) -> float:
    """An RFC 3339 time with nanoseconds ("...T08:20:15.266317325Z") in unix seconds."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds + float(f"0.{fraction or 0}")


def test_logs_needs_a_stream(api: ApiServer, client: Any) -> None:
    docker_sdk = pytest.importorskip("docker")
    container = client.containers.run("bb:1", ["true"], detach=True)
    with pytest.raises(docker_sdk.errors.APIError) as error:
        client.api.logs(container.id, stdout=False, stderr=False)
    assert error.value.status_code == 400
    assert "at least one stream" in str(error.value)
    with pytest.raises(docker_sdk.errors.NotFound):
        client.api.logs("no-such-container")


# --- stats -----------------------------------------------------------------------------------


def test_cli_stats_no_stream_shows_cpu_and_memory(api: ApiServer, docker: DockerCli) -> None:
    ok(docker("run", "-d", "--name", "busy", "bb:1", "sh", "-c", "while :; do :; done"))
    ok(docker("run", "-d", "--name", "idle", "bb:1", "sleep", "100"))
    out = ok(docker("stats", "--no-stream", "--format",
                    "{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}", "busy", "idle"))  # fmt: skip
    rows = {line.split()[0]: line.split() for line in out.splitlines()}
    assert set(rows) == {"busy", "idle"}
    for row in rows.values():
        assert re.fullmatch(r"\d+\.\d\d%", row[1]), row
        assert re.fullmatch(r"[\d.]+[KMG]?i?B", row[2]) and row[3] == "/", row
        assert row[-1] == "1", row
    assert float(rows["busy"][1][:-1]) > 5.0  # a busy loop: precpu from a second sample
    assert float(rows["idle"][1][:-1]) < 5.0
    table = ok(docker("stats", "--no-stream", "busy"))
    assert "CPU %" in table and "MEM USAGE / LIMIT" in table and "busy" in table


def test_sdk_stats_one_document(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sleep", "100"], detach=True, name="st")
    stats = container.stats(stream=False)
    assert stats["name"] == "/st" and stats["id"] == container.id
    cpu, precpu = stats["cpu_stats"], stats["precpu_stats"]
    assert cpu["online_cpus"] == os.cpu_count()
    assert cpu["system_cpu_usage"] > precpu["system_cpu_usage"] > 0  # two samples
    assert cpu["cpu_usage"]["total_usage"] >= precpu["cpu_usage"]["total_usage"] > 0
    assert set(cpu["throttling_data"]) == {"periods", "throttled_periods", "throttled_time"}
    memory = stats["memory_stats"]
    assert 0 < memory["usage"] < memory["limit"]
    assert isinstance(memory["stats"], dict) and memory["stats"]
    assert stats["pids_stats"]["current"] == 1
    assert stats["read"] > stats["preread"] > "0001"
    assert "io_service_bytes_recursive" in stats["blkio_stats"]
    assert all(set(counters) >= {"rx_bytes", "tx_bytes", "rx_packets", "tx_packets"}
               for counters in stats.get("networks", {}).values())  # fmt: skip
    one_shot = client.api.stats(container.id, stream=False, one_shot=True)
    assert one_shot["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert "system_cpu_usage" not in one_shot["precpu_stats"]


def test_sdk_stats_stream_one_per_second_with_precpu(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sleep", "100"], detach=True)
    stream = container.stats(stream=True, decode=True)
    started = time.monotonic()
    first, second, third = next(stream), next(stream), next(stream)
    took = time.monotonic() - started
    stream.close()
    assert 1.5 < took < 10
    assert second["precpu_stats"]["system_cpu_usage"] == first["cpu_stats"]["system_cpu_usage"]
    assert third["preread"] == second["read"]


def test_stats_of_a_stopped_container_are_zeros(api: ApiServer, client: Any) -> None:
    container = client.containers.create("bb:1", ["true"], name="st0")
    stats = container.stats(stream=False)
    assert stats["name"] == "/st0"
    assert stats["read"] == "0001-01-01T00:00:00Z"
    assert stats["cpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert stats["memory_stats"] == {}
    documents = [json.loads(line) for line in client.api.stats(container.id, decode=False)]
    assert len(documents) == 1  # the stream of a stopped container ends at once


# --- resize ----------------------------------------------------------------------------------


def test_sdk_resize_reaches_the_terminal(api: ApiServer, client: Any) -> None:
    docker_sdk = pytest.importorskip("docker")
    container = client.containers.run("bb:1", ["sh", "-c", "sleep 1; stty size; sleep 100"],
                                      detach=True, tty=True)  # fmt: skip
    container.resize(height=37, width=123)
    wait_for(lambda: b"37 123" in container.logs())
    stopped = client.containers.create("bb:1", ["true"], tty=True)
    with pytest.raises(docker_sdk.errors.APIError) as error:
        stopped.resize(height=10, width=10)
    assert error.value.status_code == 409
    bad = client.api._post(client.api._url("/containers/{0}/resize", container.id),
                           params={"h": "x", "w": "1"})  # fmt: skip
    assert bad.status_code == 400


# --- clients that leave ------------------------------------------------------------------------


def monitor_sockets(client: Any, container_id: str) -> int:
    """How many sockets the container's monitor (its init's parent) holds: its listener and
    one per attached client."""
    pid = client.api.inspect_container(container_id)["State"]["Pid"]
    stat_fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    monitor = int(stat_fields[1])
    fds = os.listdir(f"/proc/{monitor}/fd")
    return sum(1 for fd in fds if os.readlink(f"/proc/{monitor}/fd/{fd}").startswith("socket:"))


def hang_up(sock: Any) -> None:
    """Close docker-py's attach socket for good (its file objects keep the fd open)."""
    sock._sock.shutdown(socket.SHUT_RDWR)
    sock._sock.close()


def test_an_attached_client_that_leaves_is_let_go(api: ApiServer, client: Any) -> None:
    container = client.containers.run("bb:1", ["sleep", "1000"], detach=True)
    alone = monitor_sockets(client, container.id)
    sock = client.api.attach_socket(container.id, params={"stdout": 1, "stream": 1})
    wait_for(lambda: monitor_sockets(client, container.id) == alone + 1)
    hang_up(sock)  # a quiet container: nothing written would reveal it
    wait_for(lambda: monitor_sockets(client, container.id) == alone, timeout=10)


def test_a_waiting_attach_whose_client_left_is_withdrawn(api: ApiServer, client: Any) -> None:
    plain = client.containers.run("bb:1", ["sleep", "1000"], detach=True)
    waiting = client.containers.create("bb:1", ["sleep", "1000"])
    sock = client.api.attach_socket(waiting.id, params={"stdout": 1, "stream": 1})
    kept = client.api.attach_socket(waiting.id, params={"stdout": 1, "stream": 1})
    hang_up(sock)
    time.sleep(1.5)  # the server looks every half second
    waiting.start()
    expected = monitor_sockets(client, plain.id) + 1  # only the client still there
    assert monitor_sockets(client, waiting.id) == expected
    hang_up(kept)


# --- the stats document, pure ------------------------------------------------------------------


NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    5000      40    1    2    0     0          0         0     3000      30    3    4    0     0       0          0
"""  # noqa: E501


def test_net_devices_per_interface_without_lo() -> None:
    from cove.engine.container_stats import net_devices

    assert net_devices(NET_DEV) == {"eth0": {
        "rx_bytes": 5000, "rx_packets": 40, "rx_errors": 1, "rx_dropped": 2,
        "tx_bytes": 3000, "tx_packets": 30, "tx_errors": 3, "tx_dropped": 4}}  # fmt: skip


def test_stats_document_from_readings() -> None:
    from cove.api.containers_stats import stats_document
    from cove.engine.container_stats import Reading, net_devices
    from cove.engine.state import ContainerRecord

    record = ContainerRecord.__new__(ContainerRecord)
    object.__setattr__(record, "id", "c" * 64)
    object.__setattr__(record, "name", "web")

    def reading(total: int, system: int, raw: dict[str, int]) -> Reading:
        cgroup = {"cpu": {"usage": {"total": total, "percpu": [total], "user": 7, "kernel": 3},
                          "throttling": {"periods": 5, "throttledPeriods": 1,
                                         "throttledTime": 9}},
                  "memory": {"usage": {"usage": 1000, "limit": 1 << 62, "max": 2000,
                                       "failcnt": 0}, "raw": raw},
                  "pids": {"current": 3, "limit": 0},
                  "blkio": {"ioServiceBytesRecursive": [
                      {"major": 8, "minor": 0, "op": "Read", "value": 4096}],
                            "ioServicedRecursive": [
                      {"major": 8, "minor": 0, "op": "Read", "value": 2}]}}  # fmt: skip
        return Reading(cgroup=cgroup, system_cpu=system, online_cpus=2, host_memory=8 << 30,
                       networks=net_devices(NET_DEV), taken_ns=system)  # fmt: skip

    v1 = {"total_inactive_file": 100, "cache": 5}
    document = stats_document(record, reading(500, 2_000_000, v1), reading(100, 1_000_000, v1))
    assert document["name"] == "/web" and document["id"] == "c" * 64
    usage = {"total_usage": 500, "usage_in_kernelmode": 3, "usage_in_usermode": 7,
             "percpu_usage": [500]}  # fmt: skip
    assert document["cpu_stats"]["cpu_usage"] == usage
    assert document["precpu_stats"]["system_cpu_usage"] == 1_000_000
    assert document["cpu_stats"]["throttling_data"] == {"periods": 5, "throttled_periods": 1,
                                                        "throttled_time": 9}  # fmt: skip
    memory = document["memory_stats"]
    assert memory["limit"] == 8 << 30  # no cgroup limit: the host's memory, as dockerd
    assert memory["max_usage"] == 2000 and memory["stats"] == v1  # cgroup v1's fields
    assert document["pids_stats"] == {"current": 3}
    assert document["blkio_stats"]["io_service_bytes_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096}]  # fmt: skip
    assert document["blkio_stats"]["io_serviced_recursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 2}]  # fmt: skip
    assert document["networks"]["eth0"]["rx_bytes"] == 5000
    v2 = stats_document(record, reading(1, 2, {"inactive_file": 10}), None)["memory_stats"]
    assert "max_usage" not in v2 and "failcnt" not in v2  # cgroup v2 has neither
    assert json.dumps(document)  # plain JSON
