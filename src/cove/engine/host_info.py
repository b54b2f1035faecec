"""What the spec generator needs to know about the host, read once, replaceable in tests.

`HostInfo.probe()` reads the live host: the cgroup layout (v2 only, or v1/hybrid), this
process's own resource limits and whether it may raise them (CAP_SYS_RESOURCE), the
capabilities it can hand out (its bounding set), the online CPUs and memory nodes, swap
accounting, the kernel release and architecture, and how to stat a host device.
"""

from __future__ import annotations

import os
import resource
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from cove.runtime.capabilities import CAPABILITY_NAMES

CAP_SYS_RESOURCE = 24

# The rlimit names of `--ulimit` and their kernel numbers (RLIMIT_LOCKS is 10; Python's
# resource module does not export it).
RLIMITS: dict[str, int] = {
    "cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
    "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11, "msgqueue": 12,
    "nice": 13, "rtprio": 14, "rttime": 15,
}  # fmt: skip
UNLIMITED = 2**64 - 1  # RLIM_INFINITY as the runtime spec writes it (a uint64)


def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return None


def parse_id_list(text: str) -> set[int]:
    """A kernel list like "0-3,8,10-11" -> {0, 1, 2, 3, 8, 10, 11}; ValueError if bad."""
    result: set[int] = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(part)
        start, end = int(low), int(high) if dash else int(low)
        if end < start:
            raise ValueError(part)
        result.update(range(start, end + 1))
    return result


def _own_caps(field_name: str) -> int:
    text = _read("/proc/self/status") or ""
    for line in text.splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1], 16)
    return 0


def _rlimit_hard() -> dict[str, int]:
    limits = {}
    for name, number in RLIMITS.items():
        try:
            _soft, hard = resource.getrlimit(number)
        except (ValueError, OSError):
            continue
        limits[name] = UNLIMITED if hard == resource.RLIM_INFINITY else hard
    return limits


def _cgroup_v2_only() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _swap_limit(v2: bool) -> bool:
    if v2:
        controllers = (_read("/sys/fs/cgroup/cgroup.controllers") or "").split()
        return "memory" in controllers and os.path.exists("/proc/swaps")
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


_SKIP_DIRS = {"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"}


def host_devices(root: str = "/dev") -> list[tuple[str, os.stat_result]]:
    """Every character and block device under /dev (for --privileged), as Docker lists
    them: not the pty, shm, mqueue folders, not /dev/console or /dev/ptmx."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            path = os.path.join(folder, name)
            if path in (os.path.join(root, "console"), os.path.join(root, "ptmx")):
                continue  # the container gets its own (its console; pts/ptmx of its devpts)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                found.append((path, info))
    return found


@dataclass
class HostInfo:
    cgroup_v2: bool = False
    rlimit_hard: dict[str, int] = field(default_factory=dict)
    can_raise_rlimits: bool = False
    nr_open: int = 1048576
    capabilities: tuple[str, ...] = CAPABILITY_NAMES  # what the engine can hand out
    cpus_online: set[int] = field(default_factory=lambda: {0})
    mems_online: set[int] = field(default_factory=lambda: {0})
    swap_limit: bool = True
    kernel: tuple[int, int] = (6, 1)
    machine: str = "x86_64"
    hostname: str = "localhost"
    stat: Callable[[str], os.stat_result] = os.stat
    devices: Callable[[], list[tuple[str, os.stat_result]]] = host_devices

    @classmethod
    def probe(cls) -> HostInfo:
        from cove.engine.seccomp_default import kernel_version

        v2 = _cgroup_v2_only()
        bounding = _own_caps("CapBnd")
        last = _read("/proc/sys/kernel/cap_last_cap")
        known = CAPABILITY_NAMES[: int(last) + 1] if last and last.isdigit() else CAPABILITY_NAMES
        caps = tuple(name for number, name in enumerate(known) if bounding >> number & 1)
        try:
            cpus = parse_id_list(_read("/sys/devices/system/cpu/online") or "")
        except ValueError:
            cpus = set()
        try:
            mems = parse_id_list(_read("/sys/devices/system/node/online") or "0")
        except ValueError:
            mems = {0}
        nr_open = _read("/proc/sys/fs/nr_open")
        return cls(
            cgroup_v2=v2,
            rlimit_hard=_rlimit_hard(),
            can_raise_rlimits=bool(_own_caps("CapEff") >> CAP_SYS_RESOURCE & 1),
            nr_open=int(nr_open) if nr_open and nr_open.isdigit() else 1048576,
            capabilities=caps,
            cpus_online=cpus or set(range(os.cpu_count() or 1)),
            mems_online=mems or {0},
            swap_limit=_swap_limit(v2),
            kernel=kernel_version(),
            machine=os.uname().machine,
            hostname=socket.gethostname(),
        )
