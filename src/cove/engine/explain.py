"""`cove run --explain`: a container's isolation, step by step, as shell commands.

`explain(spec, ...)` reads an OCI runtime spec (config.json as a dict) and writes, in the
order cove-runtime performs them, the commands a person would type as root to build the
same container by hand: the overlay root, the cgroup files and the values written to them,
unshare, the mounts, the device nodes, pivot_root, the hidden paths, the limits and the
privileges dropped, and finally the exec. Each step is a numbered heading ("# 3.
namespaces") with a "# why:" line where the reason is not obvious.

It is a reading aid, not a script to run: a few steps have no command of their own
(seccomp, the eBPF device filter of cgroup v2) and appear as comments, and a masked path is
shown as a tmpfs since the spec does not say whether it is a file or a folder. The cgroup
files and units are the runtime's own (cove.runtime.cgroups.v1 / v2), and so are the
default devices, /dev links and device cgroup rules, so the text follows the runtime.
Nothing here touches the system.

The steps by isolation area: the root filesystem, mounts, devices and hidden paths in
`explain_rootfs`, the cgroups in `explain_cgroups`, the namespaces, limits and the program
in `explain_process`, the privileges (seccomp, capabilities, user) in `explain_security`;
the parsed spec and the shell helpers they share in `explain_context`.
"""

from __future__ import annotations

from typing import Any

from cove.engine.explain_cgroups import cgroups
from cove.engine.explain_context import Context
from cove.engine.explain_process import identity, namespaces, program
from cove.engine.explain_rootfs import devices, finalize, mounts, root_filesystem, switch_root
from cove.engine.explain_security import privileges
from cove.oci.runtime_spec import parse_spec


def explain(
    spec: dict[str, Any],
    *,
    container_id: str,
    rootfs_mount: dict[str, str] | None,
    cgroup_paths: dict[str, str],
) -> list[str]:
    """The steps of creating and starting the container of `spec`, as shell lines.

    `rootfs_mount` is the overlay snapshot under the root ("lowerdir", "upperdir",
    "workdir", "target"; other keys become overlay options) or None for a plain folder.
    `cgroup_paths` maps each cgroup v1 controller to the container's cgroup folder in it
    ("" for a cgroup2 folder: alone on a v2 host, beside the controllers on a hybrid one).
    Raises InvalidSpec when `spec` is not a runtime spec cove-runtime could read.
    """
    ctx = Context.build(parse_spec(spec), container_id, cgroup_paths)
    sections: list[tuple[str, list[str]]] = [
        ("root filesystem", root_filesystem(ctx, rootfs_mount)),
        ("control groups", cgroups(ctx)),
        ("namespaces", namespaces(ctx)),
        ("mounts, inside the new mount namespace", mounts(ctx)),
        ("device nodes", devices(ctx)),
        ("switch to the new root", switch_root(ctx)),
        ("kernel settings and hidden paths", finalize(ctx)),
        ("hostname and limits", identity(ctx)),
        ("privileges", privileges(ctx)),
        ("the program", program(ctx)),
    ]
    lines: list[str] = []
    number = 0
    for title, body in sections:
        if not body:
            continue
        number += 1
        if lines:
            lines.append("")
        lines.append(f"# {number}. {title}")
        lines.extend(body)
    return lines


def render(lines: list[str]) -> str:
    """The lines as one text to print (newline-terminated)."""
    return "".join(line + "\n" for line in lines)
