"""The per-container monitor: starting `cove-monitor` beside a new container, and reading
back what it leaves (is it alive, the exit file).

`cove-monitor` (native/cove-monitor.c, about 300 kB of memory per container) plays the role
conmon plays for Podman: it is the container init's parent, holds the container's stdio,
writes the log in Docker's json-file format, serves attach clients on a unix socket, runs
the healthcheck (`cove container healthcheck ID`) every interval if there is one, and
when init exits writes the exit file and execs the exit command (`cove container cleanup
ID`, which applies the restart policy), so that neither the CLI nor the API server has to
stay alive.

How a container gets its monitor (`launch`):

    step  who          what
    1     engine (E)   pipes: sync; stdout + stderr (no tty) ; stdin (-i, no tty)
    2     E            fork F0; F0 forks F and exits at once: F is not E's child, so a
                       long-lived E (the API server) never reaps monitors
    3     F            "f <pid>" on sync; setsid; PR_SET_CHILD_SUBREAPER; closes every
                       fd it does not pass on (an inherited flock would outlive E's use)
    4     F            container stdio on fds 0-2; runtime create (cove: in this process;
                       runc/crun: a subprocess); init waits on its exec FIFO and is F's
                       child or re-parented to F; with a tty F receives the pty master
    5     F            reads init's pid; fds 0-2 -> /dev/null; exec cove-monitor (same pid)
    6     monitor      listens on the attach socket; "<pid>" on sync, closes it
          E            reads sync: "warning: ..." lines, then the pid, or "error: WHY"
                       (F failed: its create undid itself; E undoes the rest)
    7     E            (attaches, then) runtime start

`cove run` forks F when the command begins (cove.engine.monitor_ahead): F loads the
runtime on the second core meanwhile, and `launch` only hands it the options. While F
works, E runs the caller's `meanwhile` (the network's leases, what the start loads).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cove.engine.oci_runtime_api import OCIRuntime
from cove.errors import CoveError, MonitorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.monitor_ahead import LauncherAhead

MONITOR_ENV = "COVE_MONITOR"
INSTALLED_MONITOR = "/usr/local/libexec/cove/cove-monitor"
# Attach sockets live under a short folder: a unix socket path is at most 107 bytes, and
# engine roots (a test's temporary folder) can be long.
SOCKET_DIR = "/run/cove/attach"
EXIT_FILE = "exit.json"
PID_FILE = "init.pid"
LAUNCH_TIMEOUT = 60.0


@dataclass(frozen=True)
class Launched:
    """A container created under its monitor: init waits for `start`."""

    monitor_pid: int
    monitor_start: int
    container_pid: int
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ExitStatus:
    """What the monitor recorded when init exited (128+N when killed by signal N)."""

    exit_code: int
    signal: int
    finished_at: str


def monitor_binary() -> str:
    candidates = [os.environ.get(MONITOR_ENV, ""), INSTALLED_MONITOR]
    candidates.append(str(Path(sys.executable).parent / "cove-monitor"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise MonitorError(
        f"cove-monitor is not installed (looked for {INSTALLED_MONITOR}; "
        "tools/install.sh builds it)"
    )


def attach_socket_path(container_id: str) -> str:
    return f"{SOCKET_DIR}/{container_id[:32]}.sock"


def exit_file_path(container_dir: Path) -> Path:
    return container_dir / EXIT_FILE


def log_file_path(container_dir: Path, container_id: str) -> Path:
    return container_dir / f"{container_id}-json.log"


def cove_command() -> list[str]:
    """How a monitor calls back into cove (its exit command)."""
    explicit = os.environ.get("COVE_ENGINE_BIN")
    if explicit:
        return [explicit]
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == "cove" and os.path.isfile(argv0):
        return [os.path.abspath(argv0)]
    found = shutil.which("cove")
    if found:
        return [found]
    return [sys.executable, "-m", "cove.cli.engine"]


# --- liveness and the exit file ------------------------------------------------------------


def process_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat (clock ticks after boot); 0 when there is no such pid."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = data[data.rfind(b")") + 2 :].split()
    if rest[0] in (b"Z", b"X"):
        return 0  # a zombie (or a dead task) is as good as gone
    return int(rest[19])


def monitor_alive(pid: int, start: int) -> bool:
    return pid > 0 and start > 0 and process_start_time(pid) == start


def read_exit_file(path: Path) -> ExitStatus | None:
    try:
        data = json.loads(path.read_text())
        return ExitStatus(int(data["exit_code"]), int(data.get("signal", 0)),
                          str(data.get("finished_at", "")))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def wait_for_exit(pid: int, start: int, timeout: float | None) -> bool:
    """Wait until the monitor `pid` is gone (pidfd: no polling); False on timeout."""
    if not monitor_alive(pid, start):
        return True
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        if not monitor_alive(pid, start):  # the pid was recycled before we opened it
            return True
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)


# --- launching ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorOptions:
    container_id: str
    bundle: Path
    container_dir: Path
    tty: bool = False
    stdin: bool = False
    log_max_size: int = 0
    log_max_file: int = 1
    exit_command: Sequence[str] = ()
    # Healthchecks: every `health_interval_ms` the monitor runs `health_command` (never two
    # at once); 0 runs none. See cove.engine.healthcheck.
    health_interval_ms: int = 0
    health_command: Sequence[str] = ()
    # The container has a network namespace of its own: its loopback is brought up, as
    # Docker's --network none has it (a runtime leaves every device of a new netns down).
    loopback: bool = False


def launch(
    runtime: OCIRuntime,
    options: MonitorOptions,
    meanwhile: Callable[[], None] | None = None,
    ahead: LauncherAhead | None = None,
) -> Launched:
    """Create the container with a monitor as its parent (see the module docstring). A
    caller with threads (the API server) must not fork: it launches through a fresh
    interpreter instead (cove.engine.monitor_spawn). `meanwhile` runs in this process
    while the runtime creates the container in another (it has a core of its own): it must
    not touch the container. `ahead`: an F forked when the command began (see
    cove.engine.monitor_ahead), told to go on now."""
    if _threaded():
        from cove.engine.monitor_spawn import launch_in_subprocess

        if meanwhile is not None:  # (first: the fork server's launch is one call)
            meanwhile()
        return launch_in_subprocess(runtime, options)
    os.makedirs(SOCKET_DIR, mode=0o700, exist_ok=True)
    sync_r = ahead.go(runtime, options) if ahead is not None else _fork_f(runtime, options)
    try:
        failure: BaseException | None = None
        if meanwhile is not None:
            try:
                meanwhile()
            except BaseException as exc:  # raised once the launch is done, so it can be undone
                failure = exc
        launched = _read_sync(sync_r)
        if failure is not None:
            raise failure
        return launched
    finally:
        os.close(sync_r)


def _fork_f(runtime: OCIRuntime, options: MonitorOptions) -> int:
    """Steps 1-2: the pipes, F0 and F; returns the sync pipe's read end."""
    binary = monitor_binary()
    sync_r, sync_w = os.pipe()
    ends: list[int] = []  # the fds F needs; closed in E once F has them
    try:
        if options.tty:
            out_r = out_w = err_r = err_w = in_r = in_w = -1
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            ends += [out_r, out_w, err_r, err_w]
            in_r, in_w = os.pipe() if options.stdin else (-1, -1)
            if in_r >= 0:
                ends += [in_r, in_w]
        first = os.fork()
        if first == 0:  # F0
            try:
                if os.fork() == 0:  # F
                    os.close(sync_r)
                    become_monitor(runtime, options, binary, sync_w,
                                   (out_r, out_w, err_r, err_w, in_r, in_w))  # fmt: skip
            finally:
                os._exit(0)
        os.waitpid(first, 0)
    except BaseException:
        os.close(sync_r)
        raise
    finally:
        os.close(sync_w)
        for fd in ends:
            os.close(fd)
    return sync_r


def _threaded() -> bool:
    threading = sys.modules.get("threading")  # never imported: no threads were started
    return threading is not None and threading.active_count() > 1


def _read_sync(sync_r: int) -> Launched:
    """Read F's and the monitor's lines until the monitor says it is ready. Not until EOF:
    the container's init holds a copy of the pipe until it execs. F's pid (from its first
    line) is watched through a pidfd, so a launcher that dies is noticed at once."""
    buffer = b""
    warnings: list[str] = []
    launcher = pidfd = -1
    container_pid = 0
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    try:
        while True:
            while b"\n" in buffer:
                raw, buffer = buffer.split(b"\n", 1)
                line = raw.decode(errors="replace")
                if line.startswith("f "):
                    launcher = int(line[2:])
                    try:
                        pidfd = os.pidfd_open(launcher)
                    except ProcessLookupError:
                        pidfd = -1
                elif line.startswith("warning: "):
                    warnings.append(line[9:])
                elif line.startswith("error: "):
                    raise CoveError(line[7:])
                elif line.startswith("ready "):
                    container_pid = int(line.split()[2])
                elif line.strip().isdigit() and container_pid:
                    pid = int(line)
                    return Launched(pid, process_start_time(pid), container_pid, warnings)
            left = deadline - time.monotonic()
            watched = [sync_r] + ([pidfd] if pidfd >= 0 else [])
            ready, _, _ = select.select(watched, [], [], max(left, 0))
            if not ready:
                if launcher > 0:
                    _kill(launcher)
                raise MonitorError(f"the container did not come up in {LAUNCH_TIMEOUT:g}s")
            if sync_r in ready:
                chunk = os.read(sync_r, 4096)
                if chunk:
                    buffer += chunk
                    continue
            if pidfd in ready or not ready or sync_r in ready:
                # the launcher or the monitor is gone (or EOF): take what is left, then stop
                rest = _drain(sync_r)
                if rest:
                    buffer += rest
                    pidfd_closed, pidfd = pidfd, -1
                    if pidfd_closed >= 0:
                        os.close(pidfd_closed)
                    continue
                text = buffer.decode(errors="replace").strip()
                raise MonitorError(
                    "the container monitor exited before it was ready"
                    + (f": {text}" if text else "")
                )
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _drain(fd: int) -> bytes:
    ready, _, _ = select.select([fd], [], [], 0)
    if not ready:
        return b""
    return os.read(fd, 65536)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def become_monitor(
    runtime: OCIRuntime,
    options: MonitorOptions,
    binary: str,
    sync_w: int,
    pipes: tuple[int, int, int, int, int, int],
) -> None:
    """Process F: create the container, then exec the monitor. Never returns. Pipe ends
    of -1 are not there (a tty; no stdin)."""
    out_r, out_w, err_r, err_w, in_r, in_w = pipes

    def say(line: str) -> None:
        # Best effort: if E died (kill -9 of the CLI) the container is still made and
        # supervised; `cove system check` stops one that was never started.
        try:
            os.write(sync_w, (line.rstrip("\n").replace("\n", " ") + "\n").encode())
        except OSError:
            pass

    try:
        say(f"f {os.getpid()}")
        if os.getsid(0) != os.getpid():  # (an F forked ahead made its session already)
            os.setsid()
        from cove.sys.constants import PR_SET_CHILD_SUBREAPER
        from cove.sys.linux import LinuxSyscalls

        LinuxSyscalls().prctl(PR_SET_CHILD_SUBREAPER, 1)
        keep = {sync_w, out_r, out_w, err_r, err_w, in_r, in_w} - {-1}
        _close_fds_except(keep)
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(in_r if in_r >= 0 else null, 0)
        os.dup2(out_w if out_w >= 0 else null, 1)
        os.dup2(err_w if err_w >= 0 else null, 2)
        for fd in (in_r, out_w, err_w):
            if fd > 2:
                os.close(fd)
        pid_file = options.container_dir / PID_FILE
        masters: list[int] = []
        _create(runtime, options, pid_file, masters, say)
        container_pid = int(pid_file.read_text())
        if options.loopback:
            bring_up_loopback(container_pid)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        argv = [binary, "--pid", str(container_pid),
                "--exit-file", str(exit_file_path(options.container_dir)),
                "--attach-socket", attach_socket_path(options.container_id),
                "--log-path", str(log_file_path(options.container_dir, options.container_id)),
                "--sync-fd", str(sync_w)]  # fmt: skip
        passed = [sync_w]
        if masters:
            argv += ["--pty-fd", str(masters[0])]
            passed.append(masters[0])
        else:
            argv += ["--stdout-fd", str(out_r), "--stderr-fd", str(err_r)]
            passed += [out_r, err_r]
        if in_w >= 0:
            argv += ["--stdin-fd", str(in_w)]
            passed.append(in_w)
        if options.log_max_size > 0:
            argv += ["--log-max-size", str(options.log_max_size),
                     "--log-max-file", str(max(options.log_max_file, 1))]  # fmt: skip
        for word in options.exit_command:
            argv += ["--exit-command", word]
        if options.health_interval_ms > 0 and options.health_command:
            argv += ["--health-interval-ms", str(options.health_interval_ms)]
            for word in options.health_command:
                argv += ["--health-command", word]
        for fd in passed:
            os.set_inheritable(fd, True)
        say(f"ready {os.getpid()} {container_pid}")
        os.execv(binary, argv)
    except BaseException as exc:
        try:
            say(f"error: {exc}")
        finally:
            os._exit(1)


def _create(
    runtime: OCIRuntime,
    options: MonitorOptions,
    pid_file: Path,
    masters: list[int],
    say: Callable[[str], None],
) -> None:
    from cove.engine.oci_runtime_library import LibraryRuntime

    if isinstance(runtime, LibraryRuntime):
        runtime.create_here(
            options.container_id,
            options.bundle,
            pid_file=pid_file,
            on_console=masters.append if options.tty else None,
            warn=lambda message: say(f"warning: {message}"),
        )
        return
    if not options.tty:
        runtime.create(options.container_id, options.bundle, pid_file=pid_file,
                       stdio=(0, 1, 2))  # fmt: skip
        return
    import socket

    path = f"{SOCKET_DIR}/console-{os.getpid()}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(1)
        runtime.create(options.container_id, options.bundle, pid_file=pid_file,
                       console_socket=path, stdio=(0, 1, 2))  # fmt: skip
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        if not fds:
            raise MonitorError("the runtime sent no terminal on the console socket")
        masters.append(fds[0])
    finally:
        listener.close()
        try:
            os.unlink(path)
        except OSError:
            pass


SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def bring_up_loopback(pid: int) -> None:
    """Set `lo` up in the network namespace of `pid`, from this single-threaded process:
    enter the namespace, one ioctl, and come back (the monitor and its exit command must
    live in the host's namespace)."""
    import fcntl
    import socket
    import struct

    from cove.sys.constants import CLONE_NEWNET
    from cove.sys.linux import LinuxSyscalls

    calls = LinuxSyscalls()
    own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        calls.setns(target, CLONE_NEWNET)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                request = struct.pack("16sH14x", b"lo", 0)
                flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
                fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
        finally:
            calls.setns(own, CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(own)


def _close_fds_except(keep: set[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
