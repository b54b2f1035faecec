"""`cove serve` itself: bad requests get 4xx JSON answers and the server keeps serving;
unix sockets (mode, stale, busy), loopback TCP, TLS with client certificates, systemd socket
activation, SIGTERM, the access log, and no fork while containers start."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.compat.conftest import ApiServer, DockerCli, docker_binary, wait_for_socket
from tests.integration.image.test_import import cove_cli

pytestmark = pytest.mark.root


class UnixConnection(http.client.HTTPConnection):
    """http.client over a unix socket."""

    def __init__(self, path: Path | str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def send(conn: http.client.HTTPConnection, method: str, path: str, body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def message(body: bytes) -> str:
    document = json.loads(body)
    assert set(document) == {"message"}
    text: str = document["message"]
    return text


def assert_pings(path: Path | str, conn: http.client.HTTPConnection | None = None) -> None:
    """The server still answers, on a fresh connection (and on `conn` when given)."""
    for each in (conn, UnixConnection(path)):
        if each is not None:
            assert send(each, "GET", "/_ping")[::2] == (200, b"OK")


JSON = {"Content-Type": "application/json"}


# --- bad requests ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/containers/create", "/v1.44/networks/create",
                                  "/v1.41/volumes/create"])  # fmt: skip
def test_malformed_json_and_wrong_types_are_400(api: ApiServer, path: str) -> None:
    conn = UnixConnection(api.socket)
    for body, words in (
        (b'{"Image": "bb:1"', "malformed JSON body"),
        (b'{"Image": "bb:1",}', "malformed JSON body"),
        (b'["Image", "bb:1"]', "malformed JSON body: expected an object, got an array"),
        (b'"bb:1"', "malformed JSON body: expected an object, got a string"),
        (b'{"Name": "\xff"}', "malformed JSON body: not UTF-8"),
    ):
        status, headers, answer = send(conn, "POST", path, body, JSON)
        assert status == 400, answer
        assert headers["Content-Type"].startswith("application/json")
        assert message(answer).startswith(words)
    assert_pings(api.socket, conn)
    assert api.cove("ps", "-aq").stdout == ""  # nothing was created


def big_body() -> bytes:
    return b'{"Image": "bb:1", "Env": ["A=' + b"x" * (17 * 1024 * 1024) + b'"]}'


def test_a_huge_json_body_is_413(api: ApiServer) -> None:
    conn = UnixConnection(api.socket, timeout=60)
    status, _, answer = send(conn, "POST", "/containers/create", big_body(), JSON)
    assert status == 413
    assert message(answer).startswith("request body too large: a JSON body may have 16777216")
    # without Content-Length (chunked): refused once the cap is passed
    body, step = big_body(), 1 << 20
    chunks = (body[i : i + step] for i in range(0, len(body), step))
    conn = UnixConnection(api.socket, timeout=60)
    conn.request("POST", "/v1.44/containers/create", body=chunks, headers=JSON,
                 encode_chunked=True)  # fmt: skip
    response = conn.getresponse()
    assert response.status == 413 and "too large" in message(response.read())
    assert_pings(api.socket)
    assert api.cove("ps", "-aq").stdout == ""


def test_unknown_routes_wrong_methods_and_versions(api: ApiServer) -> None:
    conn = UnixConnection(api.socket)
    for path in ("/nothing", "/v1.44/containers/x/nothing", "/v1.44"):
        status, _, body = send(conn, "GET", path)
        assert (status, message(body)) == (404, "page not found")
    status, headers, body = send(conn, "DELETE", "/_ping")
    assert status == 405
    assert message(body) == "method DELETE is not allowed on /_ping (allowed: GET, HEAD)"
    assert set(headers["Allow"].split(",")) == {"GET", "HEAD"}
    status, _, body = send(conn, "POST", "/v1.44/version")
    assert status == 405 and "not allowed" in message(body)
    status, _, body = send(conn, "GET", "/v1.45/version")
    assert (status, message(body)) == (
        400, "client version 1.45 is too new. Maximum supported API version is 1.44")  # fmt: skip
    status, _, body = send(conn, "GET", "/v1.19/info")
    assert status == 400
    assert message(body).startswith("client version 1.19 is too old. Minimum supported API "
                                    "version is 1.24")  # fmt: skip
    for prefix in ("", "/v1.40", "/v1.41", "/v1.42", "/v1.43", "/v1.44"):
        status, headers, body = send(conn, "GET", f"{prefix}/version")
        assert status == 200 and json.loads(body)["ApiVersion"] == "1.44"
        assert headers["Api-Version"] == "1.44"
    assert_pings(api.socket, conn)


def test_access_log_at_debug(api: ApiServer) -> None:
    conn = UnixConnection(api.socket)
    send(conn, "GET", "/v1.43/info?marker=access-log")
    send(conn, "GET", "/no/such/route?marker=access-log")
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in api.log.read_text().splitlines() if "marker=access-log" in line]
        if len(lines) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    first, second = (line.split() for line in lines)
    assert first[2:5] == ["GET", "/v1.43/info?marker=access-log", "200"]  # after "cove serve:"
    assert second[2:5] == ["GET", "/no/such/route?marker=access-log", "404"]
    assert first[5].endswith("ms") and float(first[5][:-2]) > 0


# --- servers of their own --------------------------------------------------------------------


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def terminate(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """serve(*args, root=...) starts `cove serve ARGS`; every one is stopped at the end."""
    started: list[Served] = []

    def start(*args: str, root: Path | None = None, prefix: tuple[str, ...] = (),
              pass_fds: tuple[int, ...] = ()) -> Served:  # fmt: skip
        log = tmp_path / f"serve-{len(started)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [*prefix, cove_cli(), "--root", str(root or tmp_path / "root"), "serve", *args,
                 "--log-level", "debug"],
                stdout=out, stderr=subprocess.STDOUT, pass_fds=pass_fds,
            )  # fmt: skip
        served = Served(process, log)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.poll() is None:
            served.terminate()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, served: Served) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert served.process.poll() is None, served.output()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on {port}:\n{served.output()}")


def docker_at(host: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "docker-config"
    config.mkdir(exist_ok=True)
    env = {**os.environ, "DOCKER_CONFIG": str(config), "DOCKER_CERT_PATH": str(config)}
    env.pop("DOCKER_HOST", None)
    env.pop("DOCKER_TLS_VERIFY", None)
    return subprocess.run([docker_binary(), "-H", host, *args], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip


def test_unix_socket_mode_stale_socket_and_a_second_server(serve: Any, tmp_path: Path) -> None:
    path = tmp_path / "run" / "cove.sock"
    path.parent.mkdir()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # a server that died left it: nobody listens
    stale.close()
    first = serve("-H", f"unix://{path}")
    wait_for_socket(path, first.process, first.log)
    info = os.stat(path)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_uid == 0
    assert_pings(path)

    second = serve("-H", f"unix://{path}")
    assert second.process.wait(20) == 1
    assert f"Error: {path}: another cove serve is listening there" in second.output()
    assert_pings(path)  # the first one still serves, on its socket

    assert first.terminate() == 0
    assert not path.exists()


def test_sigterm_ends_open_event_streams_and_exits_0(serve: Any, tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    served = serve("-H", f"unix://{path}")
    wait_for_socket(path, served.process, served.log)
    stream = UnixConnection(path)
    stream.request("GET", "/events")
    response = stream.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "application/json"
    started = time.monotonic()
    assert served.terminate() == 0
    assert time.monotonic() - started < 4  # not the 5 s shutdown timeout: the stream stopped
    assert response.read() == b""  # the stream ended cleanly
    assert not path.exists()
    assert "stopping" in served.output()


def test_loopback_tcp_serves_the_docker_cli(serve: Any, tmp_path: Path) -> None:
    port = free_port()
    served = serve("-H", f"tcp://127.0.0.1:{port}")
    wait_for_port(port, served)
    res = docker_at(f"tcp://127.0.0.1:{port}", tmp_path, "version", "--format",
                    "{{.Server.Version}} {{.Server.APIVersion}}")  # fmt: skip
    assert res.returncode == 0, res.stderr + served.output()
    from cove import __version__

    assert res.stdout.split() == [__version__, "1.44"]
    assert served.terminate() == 0


def test_tcp_on_every_address_without_tls_is_refused(serve: Any) -> None:
    port = free_port()
    served = serve("-H", f"tcp://0.0.0.0:{port}")
    assert served.process.wait(20) == 1
    assert "plain TCP is served on loopback only" in served.output()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def make_certificates(folder: Path) -> None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as in Docker's
    "Protect the Docker daemon socket" steps."""
    folder.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out",
            "ca.pem", "-days", "1", "-subj", "/CN=cove test CA", cwd=folder)  # fmt: skip
    (folder / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")  # fmt: skip
    (folder / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=client")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem", "-out",
                f"{name}.csr", "-subj", subject, cwd=folder)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                "-CAcreateserial", "-out", f"{name}-cert.pem", "-days", "1", "-extfile",
                f"{name}.ext", cwd=folder)  # fmt: skip


def test_tls_with_client_certificates(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certs = tmp_path / "certs"
    make_certificates(certs)
    port = free_port()
    served = serve("-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                   "--tlscacert", str(certs / "ca.pem"),
                   "--tlscert", str(certs / "server-cert.pem"),
                   "--tlskey", str(certs / "server-key.pem"))  # fmt: skip
    wait_for_port(port, served)
    host = f"tcp://127.0.0.1:{port}"
    ok = docker_at(host, tmp_path, "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
                   "--tlscert", str(certs / "client-cert.pem"),
                   "--tlskey", str(certs / "client-key.pem"),
                   "version", "--format", "{{.Server.APIVersion}}")  # fmt: skip
    assert (ok.returncode, ok.stdout) == (0, "1.44\n"), ok.stderr + served.output()
    # no client certificate: the handshake is refused
    refused = docker_at(host, tmp_path, "--tlsverify", "--tlscacert", str(certs / "ca.pem"),
                        "version", "--format", "{{.Server.APIVersion}}")  # fmt: skip
    assert refused.returncode != 0 and refused.stdout.strip() == ""
    # plain HTTP to the TLS port gets no API answer
    plain = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with pytest.raises((http.client.HTTPException, OSError)):
        plain.request("GET", "/_ping")
        plain.getresponse().read()
    # the SDK with the same certificates (requests would take a CA bundle named in the
    # environment over the one the SDK gives it)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    docker_sdk = pytest.importorskip("docker")
    tls = docker_sdk.tls.TLSConfig(
        client_cert=(str(certs / "client-cert.pem"), str(certs / "client-key.pem")),
        ca_cert=str(certs / "ca.pem"), verify=True,
    )  # fmt: skip
    sdk = docker_sdk.DockerClient(base_url=f"https://127.0.0.1:{port}", tls=tls)
    try:
        assert sdk.version()["ApiVersion"] == "1.44"
    finally:
        sdk.close()
    assert served.terminate() == 0


ACTIVATE = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "os.dup2(fd, 3)\n"
    "if fd != 3: os.close(fd)\n"
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def test_systemd_socket_activation(serve: Any, tmp_path: Path) -> None:
    """As systemd passes it: a listening socket at fd 3, LISTEN_FDS=1 and LISTEN_PID the
    pid of the server itself (the wrapper execs it, so the pid stays)."""
    path = tmp_path / "activated.sock"
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(path))
    listening.listen(16)
    served = serve("-H", "fd://", prefix=(sys.executable, "-c", ACTIVATE,
                                          str(listening.fileno())),
                   pass_fds=(listening.fileno(),))  # fmt: skip
    listening.close()  # the server holds it now
    res = subprocess.run([docker_binary(), "-H", f"unix://{path}", "version", "--format",
                          "{{.Server.APIVersion}}"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert (res.returncode, res.stdout) == (0, "1.44\n"), res.stderr + served.output()
    assert "serving the Docker API on fd://" in served.output()
    assert served.terminate() == 0
    assert path.exists()  # systemd's socket: not the server's to remove


def test_fd_without_systemd_sockets_is_refused(serve: Any) -> None:
    served = serve("-H", "fd://")
    assert served.process.wait(20) == 1
    assert "systemd passed no sockets" in served.output()


# --- never a fork ----------------------------------------------------------------------------

NETLINK_CONNECTOR = 11
CN_IDX_PROC = CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_EVENT_FORK, PROC_EVENT_EXEC, PROC_EVENT_EXIT = 0x1, 0x2, 0x80000000


class ProcessEvents:
    """The kernel's process events connector (root): every fork, exec and exit on the host,
    so a test can see exactly what one process's children did."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        self.sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: no drops
        self.sock.bind((0, CN_IDX_PROC))
        op = struct.pack("=I", PROC_CN_MCAST_LISTEN)
        cn_msg = struct.pack("=IIIIHH", CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
        self.sock.send(struct.pack("=IHHII", 16 + len(cn_msg), 3, 0, 0, 0) + cn_msg)
        self.sock.settimeout(0.2)
        self.forks: list[tuple[int, int]] = []  # (parent tgid, child pid) of new processes
        self.execs: set[int] = set()
        self.exits: set[int] = set()
        self.overrun = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:  # ENOBUFS: events were lost
                self.overrun = True
                continue
            what = struct.unpack_from("=I", data, 36)[0]
            body = data[52:]
            if what == PROC_EVENT_FORK:
                _ppid, ptgid, cpid, ctgid = struct.unpack_from("=IIII", body)
                if cpid == ctgid:  # a process, not a thread
                    self.forks.append((ptgid, cpid))
            elif what == PROC_EVENT_EXEC:
                self.execs.add(struct.unpack_from("=I", body)[0])
            elif what == PROC_EVENT_EXIT:
                self.exits.add(struct.unpack_from("=I", body)[0])

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def children_of(self, pid: int) -> list[int]:
        return [child for parent, child in self.forks if parent == pid]


def children_now(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            found += [int(x) for x in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return found


def test_the_server_never_forks_while_containers_start(api: ApiServer, docker: DockerCli) -> None:
    """Every process the (threaded) server makes execs a program at once: the container
    launcher, nft, ip... never a copy of the server running on (which could hang on a lock
    another thread held)."""
    server = api.process.pid
    events = ProcessEvents()
    try:
        started = docker("run", "-d", "--name", "nofork", "bb:1", "sleep", "30")
        assert started.returncode == 0, started.stderr
        ran = docker("run", "--rm", "bb:1", "echo", "once")
        assert (ran.returncode, ran.stdout) == (0, "once\n"), ran.stderr
        stopped = docker("stop", "-t", "1", "nofork")
        assert stopped.returncode == 0, stopped.stderr
        time.sleep(0.5)  # the last events arrive
    finally:
        events.close()
    assert not events.overrun, "the kernel dropped process events: run again"
    children = events.children_of(server)
    # The containers started through the fork server, which the server exec'd during this
    # test or before it (a session's server keeps one).
    launchers = [c for c in children_now(server) if b"cove.engine.monitor_spawn" in
                 Path(f"/proc/{c}/cmdline").read_bytes()]  # fmt: skip
    assert children or launchers, "no process started (how did the containers start?)"
    copies = [child for child in children if child not in events.execs]
    assert copies == [], f"children of the server that never exec'd: {copies}"
    assert len(os.listdir(f"/proc/{server}/task")) > 1  # threaded: why it must not fork
    # What is left is the fork server (a program the server exec'd: cove.engine.monitor_spawn,
    # single-threaded, which forks per launch) and at most an exited child not reaped yet (a
    # background `ip`/`nft` of the network code): never another running one.
    left = {
        child: Path(f"/proc/{child}/stat").read_text().split() for child in children_now(server)
    }
    running = {
        child: Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        for child, stat in left.items()
        if stat[2] != "Z"
    }
    fork_servers = [c for c, argv in running.items() if b"cove.engine.monitor_spawn" in argv]
    assert len(fork_servers) <= 1
    assert {c: argv for c, argv in running.items() if c not in fork_servers} == {}
    for child in fork_servers:
        # its command line is the launcher's, not the server's: exec'd (seen when it
        # started during this test), not a copy of the server
        assert child in events.execs or child not in children
        assert len(os.listdir(f"/proc/{child}/task")) == 1  # single-threaded: safe to fork
