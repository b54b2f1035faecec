"""`cove serve`: listen on unix sockets (mode 0660, group `cove` when it exists), on
loopback TCP, on TCP with TLS, or on sockets systemd passes (`-H fd://`), and serve the
API until SIGTERM or SIGINT (then exit 0, removing the unix sockets it made). The server
never forks: containers start through the engine's subprocess path
(cove.engine.monitor_spawn).

    -H unix:///PATH     a socket made here; a stale one (nobody listening) is replaced, one
                        another server listens on is refused (and `PATH.lock` is held with
                        flock(2) while serving, so two servers starting at once cannot
                        both take it)
    -H tcp://H:P        loopback only without TLS (the API is root on this host); any
                        address with --tlscert/--tlskey (and --tlsverify --tlscacert to
                        require client certificates signed by that CA)
    -H fd://            every socket systemd passed (LISTEN_FDS, LISTEN_PID); fd://N only
                        that one (N >= 3)
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import grp
import ipaddress
import logging
import os
import signal
import socket
import ssl
import stat
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from cove.errors import InvalidArgument

DEFAULT_HOST = "unix:///run/cove/cove.sock"
SOCKET_GROUP = "cove"
SOCKET_MODE = 0o660
SD_LISTEN_FDS_START = 3
BACKLOG = 512

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
    address: str  # path, host, or for "fd" the fd number ("" for every systemd socket)
    port: int = 0


def parse_host(text: str, tls: TlsOptions) -> Listener:
    """One -H value: unix:///path, tcp://HOST:PORT, fd:// or fd://N (systemd's sockets)."""
    if text.startswith("fd://"):
        number = text[5:]
        if number not in ("", "*") and not (number.isdigit() and
                                            int(number) >= SD_LISTEN_FDS_START):  # fmt: skip
            raise InvalidArgument(f"-H {text}: use fd:// (every socket systemd passed) or fd://N")
        return Listener("fd", "" if number == "*" else number)
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
    if tls.verify and not tls.ca:
        raise InvalidArgument("--tlsverify needs --tlscacert (the CA of the client certificates)")
    if (tls.cert or tls.key or tls.verify) and not tls.enabled:
        raise InvalidArgument("TLS needs both --tlscert and --tlskey")
    if not tls.enabled:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert, tls.key)
        if tls.verify:
            context.load_verify_locations(tls.ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"TLS: {exc}") from exc
    return context


def systemd_sockets(environ: dict[str, str] | None = None) -> dict[int, socket.socket]:
    """The sockets systemd passed (socket activation) if they are for this process, by fd.
    The variables are removed from the environment (sd_listen_fds(1)), so the processes
    the server starts do not see them, and the fds are not inherited."""
    env = os.environ if environ is None else environ
    pid, count = env.pop("LISTEN_PID", ""), env.pop("LISTEN_FDS", "0")
    env.pop("LISTEN_FDNAMES", None)
    if pid != str(os.getpid()) or not count.isdigit():
        return {}
    found = {}
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)):
        try:
            os.set_inheritable(fd, False)
            found[fd] = socket.socket(fileno=fd)
        except OSError as exc:
            raise InvalidArgument(f"-H fd://: fd {fd} that systemd passed: {exc}") from None
    return found


def sd_notify(state: str, address: str) -> None:
    """Tell systemd (Type=notify) `state` ("READY=1", "STOPPING=1") on NOTIFY_SOCKET's
    address ("" outside systemd: nothing to do; "@name" is an abstract socket)."""
    if not address:
        return
    target = "\0" + address[1:] if address.startswith("@") else address
    with contextlib.suppress(OSError):
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(target)
            sock.sendall(state.encode())


class SocketInUse(InvalidArgument):
    """Another server serves the unix socket."""


def unix_socket(path: str) -> tuple[socket.socket, int]:
    """A listening unix socket at `path`, replacing a stale one; 0660, group `cove`; and
    the fd of `path.lock`, flock'ed for as long as the server serves (close it to free)."""
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    lock = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SocketInUse(f"{path}: another cove serve is listening there") from None
        _remove_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o117)
        try:
            sock.bind(path)
        except OSError as exc:
            sock.close()
            raise InvalidArgument(f"-H unix://{path}: {exc.strerror}") from None
        finally:
            os.umask(old_umask)
        with contextlib.suppress(KeyError, PermissionError):  # no such group; not root
            os.chown(path, -1, grp.getgrnam(SOCKET_GROUP).gr_gid)
        os.chmod(path, SOCKET_MODE)
        sock.listen(BACKLOG)
    except BaseException:
        os.close(lock)
        raise
    return sock, lock


def _remove_stale(path: str) -> None:
    """Remove the socket a server that died left; refuse anything else at `path`."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise InvalidArgument(f"{path}: exists and is not a socket (not replacing it)")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    finally:
        probe.close()
    raise SocketInUse(f"{path}: another server is listening there")


async def serve(root: str, hosts: list[str], tls: TlsOptions,
                ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:  # fmt: skip
    """Serve until SIGTERM/SIGINT (or until `stop` is set); `ready` is set once every
    listener listens."""
    from cove.api.app import make_app
    from cove.api.routing import AccessLogger

    listeners = [parse_host(h, tls) for h in hosts or [DEFAULT_HOST]]
    context = ssl_context(tls)
    passed = systemd_sockets() if any(x.kind == "fd" for x in listeners) else {}
    notify = os.environ.pop("NOTIFY_SOCKET", "")  # for systemd only, not for children
    os.makedirs(root, exist_ok=True)
    app = make_app(root)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=5,
                           access_log=logging.getLogger("cove.api.access"),
                           access_log_class=AccessLogger)  # fmt: skip
    await runner.setup()
    made: list[str] = []
    locks: list[int] = []
    stopping = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        for listener in listeners:
            if listener.kind == "unix":
                sock, lock = unix_socket(listener.address)
                locks.append(lock)
                made.append(listener.address)
                await web.SockSite(runner, sock).start()
            elif listener.kind == "tcp":
                try:
                    await web.TCPSite(runner, listener.address, listener.port,
                                      ssl_context=context, backlog=BACKLOG).start()  # fmt: skip
                except OSError as exc:
                    raise InvalidArgument(
                        f"-H tcp://{listener.address}:{listener.port}: {exc.strerror or exc}"
                    ) from None
            else:
                await _serve_passed(runner, listener, passed, context)
        shown = ", ".join(hosts or [DEFAULT_HOST])
        log.info("serving the Docker API on %s", shown)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        if ready is not None:
            ready.set()
        sd_notify(f"READY=1\nSTATUS=serving the Docker API on {shown}", notify)
        await stopping.wait()
        log.info("stopping")
        sd_notify("STOPPING=1", notify)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
        for path in made:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        for lock in locks:
            os.close(lock)


async def _serve_passed(runner: web.AppRunner, listener: Listener,
                        passed: dict[int, socket.socket],
                        context: ssl.SSLContext | None) -> None:  # fmt: skip
    if not passed:
        raise InvalidArgument("-H fd://: systemd passed no sockets (LISTEN_FDS, LISTEN_PID)")
    if listener.address:
        fd = int(listener.address)
        if fd not in passed:
            raise InvalidArgument(f"-H fd://{fd}: systemd passed fds {sorted(passed)} only")
        chosen = [passed[fd]]
    else:
        chosen = list(passed.values())
    for sock in chosen:
        tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        await web.SockSite(runner, sock, ssl_context=context if tcp else None).start()
