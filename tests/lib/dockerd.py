"""Debian's dockerd (docker.io, 20.10) run privately for the tests that compare cove with
Docker: its own containerd, data root, exec root, pidfile, socket and containerd
namespaces, the vfs driver, no iptables, no bridge, no IP forwarding, its own cgroup
parent and trust key, an empty daemon.json.

Both daemons run in a mount and network namespace of their own (``unshare --mount
--propagation private --net``, a tmpfs on /run inside it), so nothing they mount, no
socket they make under /run (containerd's shim sockets are hard-wired to
/run/containerd/s) and no network device they create (user bridge networks) is seen by
the host. The host sees only the folder ``base`` (keep it outside /run), where the
sockets live. :meth:`PrivateDockerd.stop` removes every container through the API, stops
dockerd then containerd by PID, kills by PID any process left in their mount namespace
(shims, containers), removes the cgroup parent and deletes ``base``.

    daemon = start_dockerd(base)      # DockerdUnavailable if not installed / no start
    daemon.docker("ps", "-a")         # the docker CLI against it -> CompletedProcess
    daemon.env                        # DOCKER_HOST and a private DOCKER_CONFIG
    daemon.stop()
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CONTAINERD_CONFIG = """\
version = 2
root = "{base}/containerd/root"
state = "{base}/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{base}/containerd/containerd.sock"

[ttrpc]
  address = "{base}/containerd/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/containerd/opt"
"""

# Inside the private mount namespace: a tmpfs over /run, then containerd (same PID).
NAMESPACE_SHELL = 'mount -t tmpfs -o mode=0755 cove-dockerd-run /run && exec "$@"'


class DockerdUnavailable(Exception):
    """dockerd, containerd or the docker CLI is missing, or the daemon did not start."""


def binaries() -> dict[str, str]:
    """The programs needed; DockerdUnavailable naming what is missing."""
    found = {name: shutil.which(name) for name in ("dockerd", "containerd", "docker", "runc")}
    found.update({name: shutil.which(name) for name in ("unshare", "nsenter", "setpriv")})
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        raise DockerdUnavailable(
            f"{', '.join(missing)} not found: Debian's docker.io (dockerd 20.10, containerd, "
            "runc) and util-linux are needed; tools/install.sh --test installs them"
        )
    return {name: str(path) for name, path in found.items()}


def _die_with_parent(tools: dict[str, str]) -> list[str]:
    """A prefix that makes the daemon get SIGTERM if the process that started it dies
    without calling stop() (a killed test run): setpriv sets the parent-death signal and
    execs, so the PID stays the daemon's."""
    return [tools["setpriv"], "--pdeathsig", "TERM", "--"]


def _listening(path: Path) -> bool:
    if not path.exists():
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, mount namespace link) for every process visible now."""
    found: dict[int, tuple[int, str]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            mnt = os.readlink(f"/proc/{entry.name}/ns/mnt")
        except (OSError, IndexError, ValueError):
            continue
        found[int(entry.name)] = (ppid, mnt)
    return found


@dataclass
class PrivateDockerd:
    base: Path
    containerd: subprocess.Popen[bytes]
    daemon: subprocess.Popen[bytes] | None = None
    cgroup_parent: str = ""
    mount_ns: str = ""  # "mnt:[inode]" of the daemons' namespace, pinned by mount_ns_fd
    mount_ns_fd: int = -1
    docker_bin: str = "docker"
    logs: list[IO[bytes]] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.base / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def log(self) -> Path:
        return self.base / "dockerd.log"

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.url,
                "DOCKER_CONFIG": str(self.base / "client-config"),
                "DOCKER_CLI_HINTS": "false"}  # fmt: skip

    def docker(
        self, *args: str, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.docker_bin, *args], input=input, capture_output=True,
                              text=True, env=self.env, timeout=timeout)  # fmt: skip

    def log_tail(self, chars: int = 3000) -> str:
        parts = []
        for name in ("containerd.log", "dockerd.log"):
            path = self.base / name
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-chars:])
        return "\n".join(parts)

    def stop(self) -> list[str]:
        """Stop everything started for this daemon and delete its state; returns what
        had to be forced (for the caller to report), empty when all went cleanly."""
        forced: list[str] = []
        if self.daemon is not None and self.daemon.poll() is None:
            try:
                ids = self.docker("ps", "-aq", timeout=30).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, timeout=120)
            except (OSError, subprocess.TimeoutExpired) as exc:
                forced.append(f"removing containers: {exc}")
        if self.daemon is not None:
            _stop_process(self.daemon, timeout=30)
        _stop_process(self.containerd, timeout=15)
        forced += self._kill_namespace_leftovers()
        if self.mount_ns_fd >= 0:
            os.close(self.mount_ns_fd)
        self.mount_ns, self.mount_ns_fd = "", -1  # a second stop() touches no process
        for handle in self.logs:
            handle.close()
        forced += self._remove_cgroups()
        shutil.rmtree(self.base, ignore_errors=True)
        return forced

    def _kill_namespace_leftovers(self) -> list[str]:
        """Processes still in the private mount namespace (containerd shims) and their
        descendants (containers): SIGKILL by PID. The namespace is held open (mount_ns_fd)
        so that its inode number cannot have been reused by another one."""
        if not self.mount_ns:
            return []
        table = _processes()
        doomed = {pid for pid, (_, mnt) in table.items() if mnt == self.mount_ns}
        grew = True
        while grew:
            children = {pid for pid, (ppid, _) in table.items() if ppid in doomed} - doomed
            grew = bool(children)
            doomed |= children
        doomed.discard(os.getpid())
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        found = len(doomed)
        deadline = time.monotonic() + 10
        while doomed and time.monotonic() < deadline:
            doomed = {pid for pid in doomed if Path(f"/proc/{pid}").exists()}
            time.sleep(0.05)
        report = [f"killed {found} processes left in the daemons' namespace"] if found else []
        return report + ([f"{len(doomed)} of them still alive"] if doomed else [])

    def _remove_cgroups(self) -> list[str]:
        if not self.cgroup_parent:
            return []
        left = []
        name = self.cgroup_parent.strip("/")
        root = Path("/sys/fs/cgroup")
        for hierarchy in [root, *(p for p in root.iterdir() if p.is_dir())]:
            top = hierarchy / name
            if not top.is_dir():
                continue
            inner = sorted((p for p in top.rglob("*") if p.is_dir()),
                           key=lambda p: len(p.parts), reverse=True)  # fmt: skip
            for folder in [*inner, top]:
                try:
                    folder.rmdir()
                except OSError:
                    left.append(str(folder))
        return [f"cgroups left: {', '.join(left)}"] if left else []


def start_dockerd(base: Path, timeout: float = 60) -> PrivateDockerd:
    """Start containerd and dockerd privately under ``base`` (created; must be short
    enough for unix socket paths and outside /run). DockerdUnavailable with the logs'
    tail when something is missing or the daemon does not answer in ``timeout``."""
    tools = binaries()
    if str(base.resolve()).startswith("/run/"):
        raise DockerdUnavailable(f"{base}: the private daemons hide /run; use another folder")
    (base / "containerd").mkdir(parents=True, exist_ok=True)
    (base / "client-config").mkdir()
    config = base / "containerd.toml"
    config.write_text(CONTAINERD_CONFIG.format(base=base))
    # The trust key would go to /etc/docker/key.json; only daemon.json can move it.
    (base / "daemon.json").write_text(json.dumps({"deprecated-key-path": str(base / "key.json")}))
    cd_log = (base / "containerd.log").open("wb")
    containerd = subprocess.Popen(
        [*_die_with_parent(tools), tools["unshare"], "--mount", "--propagation", "private",
         "--net", "--",
         "sh", "-c", NAMESPACE_SHELL, "sh", tools["containerd"], "--config", str(config)],
        stdout=cd_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    daemon = PrivateDockerd(base, containerd, docker_bin=tools["docker"], logs=[cd_log])
    try:
        _start(daemon, tools, timeout)
    except BaseException:
        daemon.stop()
        raise
    return daemon


def _start(daemon: PrivateDockerd, tools: dict[str, str], timeout: float) -> None:
    base = daemon.base
    containerd_sock = base / "containerd" / "containerd.sock"
    deadline = time.monotonic() + timeout
    while not _listening(containerd_sock):
        if daemon.containerd.poll() is not None or time.monotonic() > deadline:
            raise DockerdUnavailable("containerd did not start:\n" + daemon.log_tail())
        time.sleep(0.05)
    daemon.mount_ns_fd = os.open(f"/proc/{daemon.containerd.pid}/ns/mnt", os.O_RDONLY)
    daemon.mount_ns = os.readlink(f"/proc/{daemon.containerd.pid}/ns/mnt")
    daemon.cgroup_parent = f"/cove-tests-dockerd-{os.getpid()}-{base.name}"
    log = daemon.log.open("wb")
    daemon.logs.append(log)
    daemon.daemon = subprocess.Popen(
        [*_die_with_parent(tools), tools["nsenter"], f"--target={daemon.containerd.pid}",
         "--mount", "--net", "--",
         tools["dockerd"], "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "dockerd.pid"), "-H", daemon.url,
         "--containerd", str(containerd_sock), "--containerd-namespace", "cove-tests",
         "--containerd-plugins-namespace", "cove-tests-plugins",
         "--config-file", str(base / "daemon.json"),
         "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
         "--bridge=none", "--storage-driver=vfs", "--cgroup-parent", daemon.cgroup_parent,
         "--shutdown-timeout", "5"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    while True:
        if _listening(daemon.socket):
            probe = daemon.docker("version", "--format", "{{.Server.Version}}", timeout=30)
            if probe.returncode == 0:
                return
        if daemon.daemon.poll() is not None or time.monotonic() > deadline:
            raise DockerdUnavailable("dockerd did not start:\n" + daemon.log_tail())
        time.sleep(0.1)
