"""`cove serve`: listen on unix sockets (mode 0660, group `cove` when it exists), on
loopback TCP, on TCP with TLS, or on sockets systemd passes (`-H fd://`), and serve the
API until SIGTERM or SIGINT. The server never forks: containers start through the
engine's subprocess path (cove.engine.monitor_spawn)."""

from __future__ import annotations

import asyncio
import grp
import ipaddress
import logging
import os
import signal
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from cove.errors import InvalidArgument

DEFAULT_HOST = "unix:///run/cove/cove.sock"
SOCKET_GROUP = "cove"
SD_LISTEN_FDS_START = 3

log = logging.getLogger("cove.api")


@dataclass(frozen=True)
class TlsOptions:
    cert: str = ""
    key: str = ""
    ca: str = ""  # with it, clients must present a certificate it signed (--tlsverify)
    verify: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.cert and self.key)


@dataclass(frozen=True)
class Listener:
    kind: str  # "unix", "tcp" or "fd"
    address: str  # path, host, or "" for every systemd socket
    port: int = 0


def parse_host(text: str, tls: TlsOptions) -> Listener:
    """One -H value: unix:///path, tcp://HOST:PORT, fd:// (systemd's sockets)."""
    if text.startswith("fd://"):
        return Listener("fd", text[5:])
    if text.startswith("unix://"):
        path = text[7:]
        if not path.startswith("/"):
            raise InvalidArgument(f"-H {text}: a unix socket needs an absolute path")
        return Listener("unix", path)
    if text.startswith("tcp://"):
        parts = urlsplit(text)
        host = parts.hostname or "127.0.0.1"
        try:
            port = parts.port or (2376 if tls.enabled else 2375)
        except ValueError as exc:
            raise InvalidArgument(f"-H {text}: bad port") from exc
        if not tls.enabled and not _loopback(host):
            raise InvalidArgument(
                f"-H {text}: plain TCP is served on loopback only (the API is root on this "
                "host); give --tlscert and --tlskey (and --tlsverify --tlscacert) to serve "
                f"{host}"
            )
        return Listener("tcp", host, port)
    raise InvalidArgument(f"-H {text}: use unix:///PATH, tcp://HOST:PORT or fd://")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ssl_context(tls: TlsOptions) -> ssl.SSLContext | None:
    if not tls.enabled:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(tls.cert, tls.key)
        if tls.verify:
            if not tls.ca:
                raise InvalidArgument("--tlsverify needs --tlscacert")
            context.load_verify_locations(tls.ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"TLS: {exc}") from exc
    return context


def systemd_sockets() -> list[socket.socket]:
    """The sockets systemd passed (socket activation), if they are for this process."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0"))
    return [socket.socket(fileno=fd) for fd in range(SD_LISTEN_FDS_START,
                                                     SD_LISTEN_FDS_START + count)]  # fmt: skip


def unix_socket(path: str) -> socket.socket:
    """A listening unix socket at `path`, replacing a stale one; 0660, group `cove`."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except FileNotFoundError:
        pass
    except ConnectionRefusedError:
        os.unlink(path)  # a server that died left it
    else:
        raise InvalidArgument(f"{path}: another server is listening there")
    finally:
        probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o117)
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    try:
        os.chown(path, 0, grp.getgrnam(SOCKET_GROUP).gr_gid)
    except KeyError:
        pass
    os.chmod(path, 0o660)
    sock.listen(512)
    return sock


async def serve(root: str, hosts: list[str], tls: TlsOptions,
                ready: asyncio.Event | None = None) -> None:  # fmt: skip
    from cove.api.app import make_app

    listeners = [parse_host(h, tls) for h in hosts or [DEFAULT_HOST]]
    context = ssl_context(tls)
    app = make_app(root)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    unix_paths: list[str] = []
    try:
        for listener in listeners:
            if listener.kind == "unix":
                sock = unix_socket(listener.address)
                unix_paths.append(listener.address)
                await web.SockSite(runner, sock).start()
            elif listener.kind == "tcp":
                await web.TCPSite(runner, listener.address, listener.port,
                                  ssl_context=context, backlog=512).start()  # fmt: skip
            else:
                passed = systemd_sockets()
                if not passed:
                    raise InvalidArgument("-H fd://: systemd passed no sockets (LISTEN_FDS)")
                for sock in passed:
                    await web.SockSite(runner, sock).start()
        log.info("serving the Docker API on %s", ", ".join(hosts or [DEFAULT_HOST]))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await runner.cleanup()
        for path in unix_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
