"""What a runtime binary supports (`RuntimeTraits`, known by name or probed from its
`--help`), and the hybrid-cgroup workaround for runtimes that refuse such hosts (see
`cove.engine.oci_runtime`).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cove.engine.oci_runtime_api import UNIFIED_MOUNT
from cove.errors import RuntimeNotFound

# --- runtime traits and the hybrid workaround ----------------------------------------------


@dataclass(frozen=True)
class RuntimeTraits:
    """What a runtime binary supports (see the module docstring)."""

    log_format: str = "json"
    has_events: bool = True
    refuses_hybrid_cgroups: bool = False


KNOWN_TRAITS: dict[str, RuntimeTraits] = {
    "cove": RuntimeTraits(),
    "cove-runtime": RuntimeTraits(),
    "runc": RuntimeTraits(),
    "crun": RuntimeTraits(has_events=False, refuses_hybrid_cgroups=True),
}


def cgroup_mounts(
    mounts_file: str | os.PathLike[str] = "/proc/self/mounts",
) -> list[tuple[str, str, str]]:
    """(mount point, fstype, options) of every cgroup/cgroup2 mount."""
    found: list[tuple[str, str, str]] = []
    try:
        text = Path(mounts_file).read_text()
    except OSError:
        return found
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
            found.append((fields[1].replace("\\040", " "), fields[2], fields[3]))
    return found


def is_cgroup_hybrid(mounts_file: str | os.PathLike[str] = "/proc/self/mounts") -> bool:
    """cgroup v1 controllers mounted beside a cgroup2 mount at /sys/fs/cgroup/unified."""
    mounts = cgroup_mounts(mounts_file)
    has_v1 = any(fstype == "cgroup" for _, fstype, _ in mounts)
    unified = any(mnt == str(UNIFIED_MOUNT) and fstype == "cgroup2" for mnt, fstype, _ in mounts)
    return has_v1 and unified


def hybrid_workaround_prefix() -> tuple[str, ...]:
    """The argv prefix that runs the runtime (the next word, `$0`) in a private mount
    namespace with the cgroup2 mount at /sys/fs/cgroup/unified unmounted."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise RuntimeNotFound("hybrid workaround", "unshare(1) is not installed")
    script = f'umount {UNIFIED_MOUNT} && exec "$0" "$@"'
    return (unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", script)


@functools.lru_cache(maxsize=32)
def _probe_traits(binary: str, mtime_ns: int) -> RuntimeTraits:
    del mtime_ns  # part of the cache key only
    try:
        res = subprocess.run(
            [binary, "--help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
        text = (res.stdout + res.stderr).decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    return RuntimeTraits(
        log_format="json" if "log-format" in text else "text",
        has_events=re.search(r"^\s*events\b", text, re.MULTILINE) is not None,
    )


def traits_for(binary: str) -> RuntimeTraits:
    """Known traits by the binary's name, else probed from `BINARY --help` (cached)."""
    known = KNOWN_TRAITS.get(os.path.basename(binary))
    if known is not None:
        return known
    try:
        mtime = os.stat(binary).st_mtime_ns
    except OSError:
        mtime = 0
    return _probe_traits(binary, mtime)
