"""Listening: -H values, TLS options, systemd's sockets, the unix socket's mode, a stale
socket replaced, a live one refused; serve() stops on its event and removes its socket."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from pathlib import Path

import pytest

from cove.api.server import (
    Listener,
    SocketInUse,
    TlsOptions,
    parse_host,
    serve,
    ssl_context,
    systemd_sockets,
    unix_socket,
)
from cove.errors import InvalidArgument

NO_TLS = TlsOptions()
SOME_TLS = TlsOptions(cert="/c.pem", key="/k.pem")


@pytest.mark.parametrize(
    ("text", "tls", "expected"),
    [
        ("unix:///run/cove/cove.sock", NO_TLS, Listener("unix", "/run/cove/cove.sock")),
        ("tcp://127.0.0.1:2375", NO_TLS, Listener("tcp", "127.0.0.1", 2375)),
        ("tcp://localhost:4000", NO_TLS, Listener("tcp", "localhost", 4000)),
        ("tcp://[::1]:4000", NO_TLS, Listener("tcp", "::1", 4000)),
        ("tcp://127.0.0.1", NO_TLS, Listener("tcp", "127.0.0.1", 2375)),
        ("tcp://0.0.0.0:2376", SOME_TLS, Listener("tcp", "0.0.0.0", 2376)),
        ("tcp://10.1.2.3", SOME_TLS, Listener("tcp", "10.1.2.3", 2376)),
        ("fd://", NO_TLS, Listener("fd", "")),
        ("fd://*", NO_TLS, Listener("fd", "")),
        ("fd://4", NO_TLS, Listener("fd", "4")),
    ],
)
def test_parse_host(text: str, tls: TlsOptions, expected: Listener) -> None:
    assert parse_host(text, tls) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("tcp://0.0.0.0:2375", "plain TCP is served on loopback only"),
        ("tcp://192.168.1.5:2375", "give --tlscert and --tlskey"),
        ("tcp://127.0.0.1:http", "bad port"),
        ("unix://relative.sock", "absolute path"),
        ("fd://2", "fd:// (every socket systemd passed) or fd://N"),
        ("fd://x", "fd://N"),
        ("npipe:////./pipe/docker_engine", "use unix:///PATH"),
    ],
)
def test_parse_host_refuses(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_host(text, NO_TLS)


def test_ssl_context_options(tmp_path: Path) -> None:
    assert ssl_context(NO_TLS) is None
    with pytest.raises(InvalidArgument, match="--tlsverify needs --tlscacert"):
        ssl_context(TlsOptions(cert="c", key="k", verify=True))
    with pytest.raises(InvalidArgument, match="both --tlscert and --tlskey"):
        ssl_context(TlsOptions(cert="c"))
    with pytest.raises(InvalidArgument, match="TLS: "):
        ssl_context(TlsOptions(cert=str(tmp_path / "none.pem"), key=str(tmp_path / "k.pem")))


def test_systemd_sockets_only_for_this_process() -> None:
    left, right = socket.socketpair()
    try:
        env = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1", "OTHER": "x"}
        assert systemd_sockets(env) == {}
        assert env == {"OTHER": "x"}  # consumed either way: children never see them
        assert systemd_sockets({}) == {}
    finally:
        left.close()
        right.close()


def test_systemd_sockets_takes_fd_3_on(tmp_path: Path) -> None:
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(tmp_path / "s"))
    listening.listen(1)
    saved = os.dup(3) if _open(3) else None
    try:
        os.dup2(listening.fileno(), 3)
        env = {"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "1", "LISTEN_FDNAMES": "cove"}
        found = systemd_sockets(env)
        assert list(found) == [3] and env == {}
        assert found[3].family == socket.AF_UNIX
        assert found[3].getsockname() == str(tmp_path / "s")
        assert not os.get_inheritable(3)
        found[3].detach()
    finally:
        if saved is not None:
            os.dup2(saved, 3)
            os.close(saved)
        else:
            os.close(3)
        listening.close()


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_unix_socket_mode_stale_and_busy(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "cove.sock")
    # a server that died left its socket: replaced
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    os.makedirs(os.path.dirname(path))
    dead.bind(path)
    dead.close()
    sock, lock = unix_socket(path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        with pytest.raises(SocketInUse, match="another cove serve is listening there"):
            unix_socket(path)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(path)  # still the first one's
        client.close()
    finally:
        sock.close()
        os.close(lock)
    # a socket someone else listens on (no lock file of ours): refused too
    os.unlink(path)
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(path)
    other.listen(1)
    try:
        with pytest.raises(SocketInUse, match="another server is listening there"):
            unix_socket(path)
    finally:
        other.close()


def test_unix_socket_never_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "precious"
    path.write_text("data")
    with pytest.raises(InvalidArgument, match="is not a socket"):
        unix_socket(str(path))
    assert path.read_text() == "data"


def test_serve_listens_then_stops_and_removes_its_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "api.sock"
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(tmp_path / "notify"))
    systemd.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))

    async def go() -> bytes:
        ready, stop = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve(str(tmp_path / "root"), [f"unix://{path}"], NO_TLS,
                                         ready=ready, stop=stop))  # fmt: skip
        await asyncio.wait_for(ready.wait(), 10)
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GET /_ping HTTP/1.1\r\nHost: cove\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        stop.set()
        await asyncio.wait_for(task, 10)
        return answer

    answer = asyncio.run(go())
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\nOK")
    assert not path.exists()
    ready = systemd.recv(4096).decode()
    assert ready.startswith("READY=1\nSTATUS=serving the Docker API on unix://")
    assert systemd.recv(4096) == b"STOPPING=1"
    assert "NOTIFY_SOCKET" not in os.environ  # the processes it starts never see it
    systemd.close()
    assert (tmp_path / "root").is_dir()


def test_serve_refuses_before_listening(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="loopback only"):
        asyncio.run(serve(str(tmp_path), ["tcp://0.0.0.0:2375"], NO_TLS))
    with pytest.raises(InvalidArgument, match="systemd passed no sockets"):
        asyncio.run(serve(str(tmp_path), ["fd://"], NO_TLS))
