"""What `cove info` prints and the API's GET /info answers: the engine and the host, in
Docker's /info shape (one function for both).

    ID                  <root>/engine-id, a random id made the first time it is asked for
    Containers...       counts from the container records (stale ones cleaned up first)
    Driver              "overlay2" when container roots are overlay mounts, else "vfs"
    MemoryLimit...      what the host's cgroups offer (v1 controllers or the v2 tree)
    Runtimes            cove, runc and crun where their binaries are installed

Fields cove has no counterpart for carry Docker's neutral value (Swarm inactive, empty
proxies, no commits, no plugins beyond the local volume driver and the json-file log).
"""

from __future__ import annotations

import contextlib
import os
import platform
import threading
import time
import uuid
from typing import Any

from cove.engine.host_info import HostInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.containers import ContainerService

ENGINE_ID_FILE = "engine-id"
CGROUP_V1 = "/sys/fs/cgroup"
RUNTIME_NAMES = ("cove", "runc", "crun")
# Docker's names for the file systems its storage drivers sit on.
BACKING_FS = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs"}


def engine_id(root: str) -> str:
    """The engine root's id (Docker's daemon ID), made once and kept in the root."""
    path = os.path.join(root, ENGINE_ID_FILE)
    with contextlib.suppress(OSError):
        with open(path, encoding="ascii") as file:
            found = file.read().strip()
        if found:
            return found
    made = str(uuid.uuid4())
    with contextlib.suppress(OSError):
        os.makedirs(root, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w", encoding="ascii") as file:
            file.write(made + "\n")
        try:
            os.link(tmp, path)  # the first writer wins; the others read its id
        except FileExistsError:
            with open(path, encoding="ascii") as file:
                made = file.read().strip() or made
        finally:
            os.unlink(tmp)
    return made


def os_release() -> tuple[str, str]:
    """(PRETTY_NAME, VERSION_ID) of /etc/os-release."""
    values: dict[str, str] = {}
    with contextlib.suppress(OSError):
        with open("/etc/os-release", encoding="utf-8") as file:
            for line in file:
                key, sep, value = line.strip().partition("=")
                if sep:
                    values[key] = value.strip().strip('"')
    return values.get("PRETTY_NAME", "Linux"), values.get("VERSION_ID", "")


def memory_total() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo", encoding="ascii") as file:
            for line in file:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    return 0


def backing_filesystem(path: str, mountinfo: str = "/proc/self/mountinfo") -> str:
    """The file system type of the mount holding `path` (Docker's name for it)."""
    target = os.path.realpath(path)
    while not os.path.exists(target) and target != "/":
        target = os.path.dirname(target)
    best, kind = "", "unknown"
    with contextlib.suppress(OSError):
        with open(mountinfo, encoding="utf-8", errors="replace") as file:
            for line in file:
                fields = line.split()
                if " - " not in line or len(fields) < 5:
                    continue
                point = fields[4].replace("\\040", " ")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best = point
                    kind = line.split(" - ", 1)[1].split()[0]
    return BACKING_FS.get(kind, kind)


def cgroup_features(host: HostInfo, v1_root: str = CGROUP_V1) -> dict[str, bool]:
    """What the resource flags can use: Docker's MemoryLimit, CpuCfsPeriod, CPUShares..."""
    if host.cgroup_v2:
        controllers = set(_read(os.path.join(v1_root, "cgroup.controllers")).split())
        cpu, memory, pids = "cpu" in controllers, "memory" in controllers, "pids" in controllers
        return {
            "MemoryLimit": memory, "SwapLimit": host.swap_limit, "CpuCfsPeriod": cpu,
            "CpuCfsQuota": cpu, "CPUShares": cpu, "CPUSet": "cpuset" in controllers,
            "PidsLimit": pids, "OomKillDisable": False, "KernelMemoryTCP": False,
        }  # fmt: skip

    def has(*parts: str) -> bool:
        return os.path.exists(os.path.join(v1_root, *parts))

    return {
        "MemoryLimit": has("memory", "memory.limit_in_bytes"), "SwapLimit": host.swap_limit,
        "CpuCfsPeriod": has("cpu", "cpu.cfs_period_us"),
        "CpuCfsQuota": has("cpu", "cpu.cfs_quota_us"), "CPUShares": has("cpu", "cpu.shares"),
        "CPUSet": has("cpuset"), "PidsLimit": has("pids", "cgroup.procs"),
        "OomKillDisable": has("memory", "memory.oom_control"),
        "KernelMemoryTCP": has("memory", "memory.kmem.tcp.limit_in_bytes"),
    }  # fmt: skip


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as file:
            return file.read().strip()
    except OSError:
        return ""


def runtimes() -> dict[str, dict[str, str]]:
    """The runtimes `--runtime` can use here: {name: {"path": binary}}."""
    from cove.engine.oci_runtime_select import _find_binary
    from cove.errors import RuntimeNotFound

    found: dict[str, dict[str, str]] = {}
    for name in RUNTIME_NAMES:
        try:
            found[name] = {"path": _find_binary(name)}
        except RuntimeNotFound:
            continue
    return found


def storage_driver(root: str) -> tuple[str, list[list[str]]]:
    """Docker's Driver and DriverStatus for the snapshotter of `root`."""
    from cove.image.snapshot import OverlaySnapshotter, choose_snapshotter

    backing = ["Backing Filesystem", backing_filesystem(root)]
    try:
        overlay = isinstance(choose_snapshotter(root), OverlaySnapshotter)
    except OSError:
        overlay = False
    if not overlay:
        return "vfs", [backing]
    return "overlay2", [backing, ["Supports d_type", "true"], ["Using metacopy", "false"],
                        ["Native Overlay Diff", "true"], ["userxattr", "false"]]  # fmt: skip


def count_images(root: str) -> int:
    images_dir = os.path.join(root, "images")
    if not os.path.isdir(images_dir):
        return 0
    from cove.image.store import ImageStore

    with ImageStore(images_dir) as store:
        return len(store.images())


def system_time(now_ns: int | None = None) -> str:
    """Go's RFC3339Nano in local time, as Docker's SystemTime."""
    from cove.engine.events import format_time

    return format_time(time.time_ns() if now_ns is None else now_ns)


def system_info(
    root: str,
    containers: ContainerService | None = None,
    *,
    version: str = "",
    event_listeners: int = 0,
) -> dict[str, Any]:
    """Docker's /info document for the engine at `root` (`containers`: a service to list
    the records with; one is made when not given)."""
    from cove import __version__
    from cove.engine.oci_runtime_api import DEFAULT_RUNTIME

    if containers is None:
        from cove.engine.containers import ContainerService

        containers = ContainerService(root)
    os.makedirs(root, exist_ok=True)
    records = containers.list(all_containers=True)
    running = sum(1 for r in records if r.status in ("running", "restarting"))
    paused = sum(1 for r in records if r.status == "paused")
    host = HostInfo.probe()
    features = cgroup_features(host)
    driver, driver_status = storage_driver(root)
    pretty, version_id = os_release()
    warnings = []
    if not features["SwapLimit"]:
        warnings.append("WARNING: No swap limit support")
    if _read("/proc/sys/net/ipv4/ip_forward") != "1":
        warnings.append("WARNING: IPv4 forwarding is disabled")
    return {
        "ID": engine_id(root),
        "Containers": len(records),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(records) - running - paused,
        "Images": count_images(root),
        "Driver": driver,
        "DriverStatus": driver_status,
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "none"],
            "Authorization": None,
            "Log": ["json-file"],
        },
        **features,
        "IPv4Forwarding": _read("/proc/sys/net/ipv4/ip_forward") == "1",
        "BridgeNfIptables": _read("/proc/sys/net/bridge/bridge-nf-call-iptables") == "1",
        "BridgeNfIp6tables": _read("/proc/sys/net/bridge/bridge-nf-call-ip6tables") == "1",
        "Debug": False,
        "NFd": _count_entries("/proc/self/fd"),
        "NGoroutines": threading.active_count(),
        "SystemTime": system_time(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if host.cgroup_v2 else "1",
        "NEventsListener": event_listeners,
        "KernelVersion": platform.release(),
        "OperatingSystem": pretty,
        "OSVersion": version_id,
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {
                "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True}
            },
            "Mirrors": [],
        },
        "NCPU": len(host.cpus_online) or os.cpu_count() or 1,
        "MemTotal": memory_total(),
        "GenericResources": None,
        "DockerRootDir": os.path.abspath(root),
        "HttpProxy": os.environ.get("HTTP_PROXY", os.environ.get("http_proxy", "")),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", os.environ.get("https_proxy", "")),
        "NoProxy": os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")),
        "Name": host.hostname,
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": version or __version__,
        "Runtimes": runtimes(),
        "DefaultRuntime": DEFAULT_RUNTIME,
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        # Containers outlive whatever started them (each has its own monitor): Docker's
        # live restore, always on.
        "LiveRestoreEnabled": True,
        "Isolation": "",
        "InitBinary": "cove-init",
        "ContainerdCommit": {"ID": ""},
        "RuncCommit": {"ID": ""},
        "InitCommit": {"ID": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "CDISpecDirs": [],
        "Warnings": warnings,
    }


def _count_entries(path: str) -> int:
    try:
        return len(os.listdir(path))
    except OSError:
        return 0
