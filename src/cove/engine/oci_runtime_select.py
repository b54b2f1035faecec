"""Choosing the runtime for `--runtime NAME` (`runtime_for`): finding its binary, its traits,
and the hybrid-cgroup workaround when it needs one (see `cove.engine.oci_runtime`).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from cove.engine.oci_runtime_api import COVE_RUNTIME_PATH, DEFAULT_RUNTIME, DEFAULT_TIMEOUT
from cove.engine.oci_runtime_subprocess import SubprocessRuntime
from cove.engine.oci_runtime_traits import hybrid_workaround_prefix, is_cgroup_hybrid, traits_for
from cove.errors import RuntimeNotFound


def _find_binary(name: str) -> str:
    if name == DEFAULT_RUNTIME:
        candidates = [
            str(COVE_RUNTIME_PATH),
            str(Path(sys.executable).parent / "cove-runtime"),
            "cove-runtime",
        ]
    elif "/" in name:
        candidates = [name]
    else:
        candidates = [name, f"/usr/sbin/{name}", f"/usr/bin/{name}"]
    for cand in candidates:
        found = shutil.which(cand)
        if found:
            return os.path.abspath(found)
    if "/" in name:
        why = "no executable file at that path"
    else:
        why = f"not found (looked for {', '.join(candidates)})"
    raise RuntimeNotFound(name, why)


def runtime_for(
    name: str | None,
    engine_root: str | os.PathLike[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> SubprocessRuntime:
    """The runtime for `--runtime NAME`: "cove" (the default; /usr/local/bin/cove-runtime,
    else beside sys.executable, else on PATH), "runc", "crun", another name on PATH, or a
    path to any runc-compatible binary. Its state lives in `<engine_root>/runtime/<name>`,
    where <name> is "cove" or the binary's file name."""
    wanted = name or DEFAULT_RUNTIME
    binary = _find_binary(wanted)
    runtime_name = DEFAULT_RUNTIME if wanted == DEFAULT_RUNTIME else os.path.basename(binary)
    traits = traits_for(binary)
    prefix: tuple[str, ...] = ()
    if traits.refuses_hybrid_cgroups and is_cgroup_hybrid():
        prefix = hybrid_workaround_prefix()
    if runtime_name == DEFAULT_RUNTIME:
        from cove.engine.oci_runtime_library import LibraryRuntime

        return LibraryRuntime(
            runtime_name, binary, prefix, engine_root=engine_root, traits=traits, timeout=timeout
        )
    return SubprocessRuntime(
        runtime_name, binary, prefix, engine_root=engine_root, traits=traits, timeout=timeout
    )
