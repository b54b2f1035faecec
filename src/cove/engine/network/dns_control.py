"""The DNS responder of an engine root (`dns.py`): what it answers, starting and stopping it.

    <root>/networks/dns.json   what to answer, per user network (see dns_table.py);
                               written atomically by `update`, read by the responder
    <root>/networks/dns.pid    "PID START\\n": the responder's pid and start time (clock ticks
                               after boot, /proc/PID/stat field 22), so that a recycled pid
                               is never taken for it
    <root>/networks/dns.lock   flock(2): one `update` at a time (so one responder)
    <root>/networks/dns.log    what the responder has to say (binds, upstream failures)

- `update(root)` writes dns.json from the networks and their leases (`NetworkService`) and
  the running containers (`ContainerStore`: names, --dns servers, the order of their
  networks, their init's pid); then the responder runs exactly while
  some user network has a running container: started when it is needed and not running,
  sent SIGHUP when dns.json changed, stopped (SIGTERM, by pid) when nothing is left to
  answer. Call it after every change of what a name resolves to: a container started,
  stopped or died, removed, renamed, connected to or disconnected from a network.
- A user network is a bridge network other than the default one, "bridge": as Docker, the
  default network gets no name resolution (`nameserver_for` is None there). A container's
  nameserver is the responder on its first user network (`attach.embedded_dns`), where it
  resolves the names of all its user networks.
- `serve(root, detach)` is `cove --root R network dns-serve [--detach]`. Detached (how
  `start` runs it): the process it forks serves, in a new session (start_new_session),
  stdio on /dev/null; the forking process exits once that one is listening and has written
  the pid file, with status 1 and the reason on stderr when it could not.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cove.errors import NetworkError

if TYPE_CHECKING:
    from cove.engine.network.records import Lease, Network

DNS_JSON = "dns.json"
PID_FILE = "dns.pid"
LOCK_FILE = "dns.lock"
LOG_FILE = "dns.log"
DEFAULT_NETWORK = "bridge"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
SERVE_VERB = ("network", "dns-serve")


class DNSError(NetworkError):
    """The DNS responder cannot be started, stopped or fed (names the engine root)."""


def networks_dir(root: str) -> str:
    return os.path.join(root, "networks")


# --- what to answer --------------------------------------------------------------------------


def is_user_network(network: Network) -> bool:
    """A network whose containers resolve each other's names: a bridge network with a
    gateway, other than the default network "bridge"."""
    return network.driver == "bridge" and network.name != DEFAULT_NETWORK and bool(network.gateway)


def nameserver_for(network: Network) -> str | None:
    """What a container on `network` lists as its nameserver: the network's gateway, where
    the responder listens, on a user network; None on the default network (and host, none),
    whose containers use the host's resolvers."""
    return network.gateway if is_user_network(network) else None


@dataclass(frozen=True)
class Running:
    """What the responder needs of a running container: its name, the pid of its init, its
    own --dns servers (queries for other names go to them, from its namespace), and the
    ids of its networks in its order (eth0's first: settings["networks"])."""

    name: str
    pid: int = 0
    dns: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()


def running_containers(root: str) -> dict[str, Running]:
    """Container id -> `Running`, for the running (and paused) containers of the root."""
    if not os.path.exists(os.path.join(root, "containers.db")):
        return {}
    from cove.engine.state import ContainerStore

    found: dict[str, Running] = {}
    with ContainerStore(root) as store:
        for record in store.list():
            if record.status not in ("running", "paused"):
                continue
            endpoints = record.settings.get("networks")
            order = [str(e.get("network_id")) for e in endpoints or () if isinstance(e, dict)]
            servers = tuple(str(server) for server in record.config.get("dns") or ())
            found[record.id] = Running(record.name, record.pid, servers, tuple(order))
    return found


def records(
    root: str, names: Mapping[str, str | Running] | None = None
) -> dict[str, dict[str, object]]:
    """dns.json's content (see `dns_table`): for each user network, its gateway, subnet,
    whether it is internal, the names of its running containers (name, 12-digit short id,
    the lease's aliases; lowercased) with their addresses, each address's name (PTR), and
    the containers as clients (their user networks, whether they have egress, their --dns
    servers). `names` (container id -> name or `Running`) replaces the engine's running
    containers (tests)."""
    if not os.path.isdir(networks_dir(root)):
        return {}
    from cove.engine.network.networks import NetworkService

    running = {
        container_id: entry if isinstance(entry, Running) else Running(entry)
        for container_id, entry in (running_containers(root) if names is None else names).items()
    }
    data: dict[str, dict[str, object]] = {}
    with NetworkService(root) as service:
        networks = [network for network in service.list() if not network.pseudo]
        leases = {network.id: service.leases(network) for network in networks}
        held: dict[str, list[tuple[Network, Lease]]] = {}  # container id -> its leases
        for network in networks:
            for lease in leases[network.id]:
                if lease.container_id in running:
                    held.setdefault(lease.container_id, []).append((network, lease))
        for network in networks:
            if not is_user_network(network):
                continue
            table: dict[str, list[str]] = {}
            ptr: dict[str, str] = {}
            clients: dict[str, dict[str, object]] = {}
            for lease in leases[network.id]:
                container = running.get(lease.container_id)
                if container is None or not container.name:
                    continue
                name = container.name
                for key in (name, lease.container_id[:12], *lease.aliases):
                    key = key.lower().removesuffix(".")
                    if key and lease.ip not in table.setdefault(key, []):
                        table[key].append(lease.ip)
                ptr[lease.ip] = name
                clients[lease.ip] = _client(container, held[lease.container_id])
            data[network.id] = {
                "name": network.name, "gateway": network.gateway, "subnet": network.subnet,
                "internal": network.internal,
                "records": {key: sorted(ips, key=_ip_key) for key, ips in sorted(table.items())},
                "ptr": dict(sorted(ptr.items(), key=lambda item: _ip_key(item[0]))),
                "clients": dict(sorted(clients.items(), key=lambda item: _ip_key(item[0]))),
            }  # fmt: skip
    return data


def _client(container: Running, leases: list[tuple[Network, Lease]]) -> dict[str, object]:
    """A container as a client of the responder (see `dns_table`)."""
    order = {network_id: index for index, network_id in enumerate(container.networks)}
    mine = sorted((network for network, _ in leases if is_user_network(network)),
                  key=lambda n: (order.get(n.id, len(order)), n.name))  # fmt: skip
    entry: dict[str, object] = {
        "networks": [network.id for network in mine],
        "egress": any(not network.internal for network, _ in leases),
    }
    if container.dns:
        entry.update(dns=list(container.dns), pid=container.pid,
                     start=start_time(container.pid) if container.pid > 0 else 0)  # fmt: skip
    return entry


def _ip_key(ip: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in ip.split("."))


def update(root: str, names: Mapping[str, str | Running] | None = None) -> None:
    """Write dns.json afresh, then start, signal or stop the responder (module docstring).
    `names` (container id -> name or `Running`, taken as running) is for tests. `DNSError`
    when the responder cannot be started or dns.json cannot be written."""
    directory = networks_dir(root)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        raise DNSError(f"cannot create {directory}: {err.strerror}") from None
    with _locked(os.path.join(directory, LOCK_FILE)):
        data = records(root, names)
        changed = _write_if_changed(os.path.join(directory, DNS_JSON), data)
        wanted = any(entry["records"] for entry in data.values())
        pid = running(root)
        if wanted and pid is None:
            start(root)
        elif not wanted and pid is not None:
            stop(root)
        elif pid is not None and changed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)


def _write_if_changed(path: str, data: object) -> bool:
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    try:
        with open(path, encoding="utf-8") as file:
            if file.read() == text:
                return False
    except (OSError, ValueError):
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise DNSError(f"cannot write {path}: {err.strerror}") from None
    return True


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise DNSError(f"cannot open {path}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# --- the process -----------------------------------------------------------------------------


def start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (clock ticks after boot); 0 when gone or a zombie."""
    from cove.engine.monitor import process_start_time

    return process_start_time(pid)


def running(root: str) -> int | None:
    """The responder's pid, or None when it does not run (a stale pid file is ignored)."""
    try:
        with open(os.path.join(networks_dir(root), PID_FILE), encoding="ascii") as file:
            pid_text, _, start_text = file.read().strip().partition(" ")
        pid, start = int(pid_text), int(start_text)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and start > 0 and start_time(pid) == start else None


def start(root: str) -> int:
    """Start the responder (`cove --root R network dns-serve --detach`); its pid once it
    listens. `DNSError` when it cannot start."""
    import subprocess

    from cove.engine.monitor import cove_command

    command = [*cove_command(), "--root", root, *SERVE_VERB, "--detach"]
    try:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True, cwd="/",
        )  # fmt: skip
    except OSError as err:
        raise DNSError(f"cannot start the dns responder of {root}: {err}") from None
    try:
        _, err_text = proc.communicate(timeout=START_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise DNSError(
            f"the dns responder of {root} did not start in {START_TIMEOUT:.0f} s"
        ) from None
    pid = running(root)
    if proc.returncode != 0 or pid is None:
        reason = err_text.decode(errors="replace").strip() or f"exit status {proc.returncode}"
        raise DNSError(f"cannot start the dns responder of {root}: {reason}")
    return pid


def stop(root: str) -> bool:
    """Stop the responder (SIGTERM; SIGKILL after STOP_TIMEOUT); False if it did not run."""
    pid = running(root)
    if pid is None:
        return False
    start = start_time(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while start_time(pid) == start and time.monotonic() < deadline:
        time.sleep(0.01)
    if start_time(pid) == start:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while start_time(pid) == start:
            time.sleep(0.01)
    _remove_pid_file(root, pid)
    return True


def _remove_pid_file(root: str, pid: int) -> None:
    """Remove the pid file if it still names `pid`."""
    path = os.path.join(networks_dir(root), PID_FILE)
    try:
        with open(path, encoding="ascii") as file:
            if file.read().split(" ")[0] == str(pid):
                os.unlink(path)
    except OSError:
        pass


def _write_pid_file(root: str) -> None:
    pid = os.getpid()
    path = os.path.join(networks_dir(root), PID_FILE)
    tmp = f"{path}.{pid}.tmp"
    with open(tmp, "w", encoding="ascii") as file:
        file.write(f"{pid} {start_time(pid)}\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


def serve(root: str, detach: bool = False) -> int:
    """`cove network dns-serve`: serve in the foreground until SIGTERM; with `detach`, in a
    child process, once it is ready (module docstring). The exit status."""
    os.makedirs(networks_dir(root), exist_ok=True)
    if not detach:
        return _serve(root, None)
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(reader)
        status = 1
        try:
            status = _serve(root, writer)
        except BaseException as exc:  # the parent reports it: nothing may escape a fork
            with contextlib.suppress(OSError):
                os.write(writer, f"error: {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(status)
    os.close(writer)
    message = b""
    while chunk := os.read(reader, 4096):
        message += chunk
    os.close(reader)
    if message.startswith(b"ok"):
        return 0
    text = message.decode(errors="replace").removeprefix("error: ").strip()
    sys.stderr.write(f"Error: {text or 'the dns responder exited at once'}\n")
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child, os.WNOHANG)
    return 1


def _serve(root: str, ready: int | None) -> int:
    from cove.engine.network import dns
    from cove.engine.network.dns_forward import upstreams_from_env

    other = running(root)
    if other is not None and other != os.getpid():
        message = f"the dns responder of {root} already runs (pid {other})"
        if ready is not None:
            os.write(ready, f"error: {message}\n".encode())
        else:
            sys.stderr.write(f"Error: {message}\n")
        return 1
    server = dns.Server(root, upstreams=upstreams_from_env(),
                        log_path=os.path.join(networks_dir(root), LOG_FILE))  # fmt: skip
    try:
        server.setup_signals()
        server.reload(force=True)
        _write_pid_file(root)
        server.log(f"started (pid {os.getpid()})")
        if ready is not None:
            os.chdir("/")
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
            os.write(ready, b"ok\n")
            os.close(ready)
        server.run()
    finally:
        server.close()
        _remove_pid_file(root, os.getpid())
    server.log("stopped")
    return 0
