"""memory (v1): memory, memory+swap and kernel memory limits; usage figures.

Spec field                         kernel file (cgroup-v1/memory.rst)
memory.limit                       memory.limit_in_bytes          (-1 = unlimited)
memory.reservation                 memory.soft_limit_in_bytes
memory.swap (memory+swap)          memory.memsw.limit_in_bytes    (only with swap accounting)
memory.kernel                      memory.kmem.limit_in_bytes     (skipped when absent)
memory.kernelTCP                   memory.kmem.tcp.limit_in_bytes
memory.swappiness                  memory.swappiness
memory.disableOOMKiller            memory.oom_control             ("1" disables it)

As runc reads them, a byte limit of 0 means "not set", and an unlimited memory limit with
no swap value makes memory+swap unlimited too. The kernel keeps memory.limit_in_bytes at or
below memory.memsw.limit_in_bytes at every moment, so which of the two goes first depends
on the current values: both orders are tried (`write_settling`).
"""

from __future__ import annotations

import errno

from cove.errors import CgroupError
from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources, Memory

FIELD = "linux.resources.memory"
LIMIT = "memory.limit_in_bytes"
SOFT_LIMIT = "memory.soft_limit_in_bytes"
MEMSW_LIMIT = "memory.memsw.limit_in_bytes"
KMEM_LIMIT = "memory.kmem.limit_in_bytes"
KMEM_TCP_LIMIT = "memory.kmem.tcp.limit_in_bytes"


class MemoryController:
    name = "memory"

    def apply(self, path: str, resources: LinuxResources) -> None:
        memory = resources.memory
        if memory is None:
            return
        _set_limit_and_swap(path, memory)
        if memory.reservation:
            _files.write(path, SOFT_LIMIT, memory.reservation, f"{FIELD}.reservation")
        if memory.kernel:
            _set_kernel(path, memory.kernel)
        if memory.kernel_tcp:
            if not _files.exists(path, KMEM_TCP_LIMIT):
                raise _files.unsupported(f"{FIELD}.kernelTCP", KMEM_TCP_LIMIT, path)
            _files.write(path, KMEM_TCP_LIMIT, memory.kernel_tcp, f"{FIELD}.kernelTCP")
        if memory.swappiness is not None:
            _files.write(path, "memory.swappiness", memory.swappiness, f"{FIELD}.swappiness")
        if memory.disable_oom_killer is not None:
            value = 1 if memory.disable_oom_killer else 0
            _files.write(path, "memory.oom_control", value, f"{FIELD}.disableOOMKiller")

    def stats(self, path: str, data: dict[str, Any]) -> None:
        raw = _files.read_keyed(path, "memory.stat")
        data["memory"] = {
            "cache": raw.get("cache", 0),
            "usage": _usage(path, "memory"),
            "swap": _usage(path, "memory.memsw"),
            "kernel": _usage(path, "memory.kmem"),
            "kernelTCP": _usage(path, "memory.kmem.tcp"),
            "raw": raw,
        }


CONTROLLER = MemoryController()


def oom_count(path: str) -> int:
    """How many processes the OOM killer killed in the cgroup.

    Read from oom_kill in memory.oom_control (Linux 4.13 and later). Older kernels do not
    count kills: memory.failcnt (how often the limit was hit) stands in for it there.
    """
    control = _files.read_keyed(path, "memory.oom_control")
    if "oom_kill" in control:
        return control["oom_kill"]
    return _files.read_int(path, "memory.failcnt")


def _set_limit_and_swap(path: str, memory: Memory) -> None:
    limit = memory.limit or None
    swap = memory.swap or None
    if not _files.exists(path, MEMSW_LIMIT):
        swap = None  # no swap accounting in this kernel: memory+swap cannot be limited
    elif limit == -1 and swap is None:
        swap = -1
    if memory.check_before_update and limit is not None and limit != -1:
        usage = _files.read_int(path, "memory.usage_in_bytes")
        if limit < usage:
            raise CgroupError(
                f"{FIELD}.limit: {limit} is below the current usage ({usage}) of {path}"
            )
    steps: list[tuple[str, object, str]] = []
    if limit is not None:
        steps.append((LIMIT, limit, f"{FIELD}.limit"))
    if swap is not None:
        steps.append((MEMSW_LIMIT, swap, f"{FIELD}.swap"))

    def explain(name: str, exc: OSError) -> str:
        """The reason behind the kernel's bare EBUSY/EINVAL for the memory limit."""
        if name != LIMIT:
            return ""
        if exc.errno == errno.EBUSY:
            usage = _files.read_int(path, "memory.usage_in_bytes")
            peak = _files.read_int(path, "memory.max_usage_in_bytes")
            return f" (current usage {usage}, peak {peak})"
        if exc.errno == errno.EINVAL and swap is None and _files.exists(path, MEMSW_LIMIT):
            memsw = _files.read_int(path, MEMSW_LIMIT)
            return f" (above the memory+swap limit {memsw}: set {FIELD}.swap too)"
        return ""

    _files.write_settling(path, steps, explain)


def _set_kernel(path: str, kernel: int) -> None:
    field = f"{FIELD}.kernel"
    if not _files.exists(path, KMEM_LIMIT):
        return  # removed from recent kernels: nothing to limit, as runc
    try:
        _files.write_raw(path, KMEM_LIMIT, str(kernel))
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL):
            raise CgroupError(
                f"{field}: kernel memory limits are not supported by this kernel "
                f"(cannot set {kernel} in {path}: {exc.strerror})"
            ) from None
        raise _files.failure(field, kernel, path, exc) from None


def _usage(path: str, prefix: str) -> dict[str, int]:
    return {
        "limit": _files.read_int(path, f"{prefix}.limit_in_bytes"),
        "usage": _files.read_int(path, f"{prefix}.usage_in_bytes"),
        "max": _files.read_int(path, f"{prefix}.max_usage_in_bytes"),
        "failcnt": _files.read_int(path, f"{prefix}.failcnt"),
    }
