"""Part of `cove.engine.specgen`: the container's namespaces (`--pid`, `--ipc`, `--uts`,
`--cgroupns`, and `--network`'s) and what the IPC mode does to /dev/shm, as Docker does.

    --pid     "" (its own), host, container:NAME
    --ipc     "" / private (its own), shareable (its own; other containers may join it:
              its /dev/shm is a tmpfs the engine mounts at <container dir>/shm, see
              `cove.engine.shared_ipc`), host (the host's, and the host's /dev/shm),
              container:NAME (NAME's, which must be shareable, and NAME's /dev/shm),
              none (its own, without /dev/shm)
    --uts     "" (its own), host (the host's: no --hostname then)
    --cgroupns "" (private on a cgroup v2 host, the host's on v1, Docker's default),
              private, host

container:NAME paths are /proc/<NAME's init>/ns/...: written at create and rewritten
before each start, since NAME's init changes when it restarts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cove.engine.create_options import CreateOptions
from cove.engine.host_info import HostInfo
from cove.errors import InvalidArgument

CONTAINER_PREFIX = "container:"
MODES = {
    "pid": ("", "host"),
    "ipc": ("", "private", "shareable", "host", "none"),
    "uts": ("", "host"),
    "cgroupns": ("", "private", "host"),
}
JOINABLE = ("pid", "ipc")  # the modes that take container:NAME
SHM_OPTIONS = ["nosuid", "noexec", "nodev"]


def mode_of(options: CreateOptions, kind: str) -> str:
    value: str = getattr(options, kind)
    return value.strip()


def check_modes(options: CreateOptions) -> None:
    """Each mode is one Docker has (and cove runs); --hostname and --uts host conflict."""
    for kind, allowed in MODES.items():
        mode = mode_of(options, kind)
        if mode in allowed:
            continue
        if kind in JOINABLE and mode.startswith(CONTAINER_PREFIX) and mode[len(CONTAINER_PREFIX) :]:
            continue
        choices = ", ".join(a for a in allowed if a)
        more = " or container:NAME" if kind in JOINABLE else ""
        raise InvalidArgument(f"invalid value '{mode}' for flag --{kind}: want {choices}{more}")
    if mode_of(options, "uts") == "host" and options.hostname:
        raise InvalidArgument("conflicting options: --hostname and --uts host")
    if mode_of(options, "uts") == "host" and options.domainname:
        raise InvalidArgument("conflicting options: a domain name and --uts host")


def joined(options: CreateOptions) -> dict[str, str]:
    """{kind: NAME} for each container:NAME mode (pid, ipc)."""
    found = {}
    for kind in JOINABLE:
        mode = mode_of(options, kind)
        if mode.startswith(CONTAINER_PREFIX):
            found[kind] = mode[len(CONTAINER_PREFIX) :]
    return found


def namespaces(
    options: CreateOptions,
    network: str,
    network_namespace: str,
    host: HostInfo,
    joined_paths: Mapping[str, str],
) -> list[dict[str, str]]:
    """The spec's namespace list. `joined_paths`: {kind: /proc/PID/ns/KIND} for the modes
    that join another container's."""
    found: list[dict[str, str]] = [{"type": "mount"}]
    if network.startswith(CONTAINER_PREFIX):
        found.append({"type": "network", "path": network_namespace})
    elif network != "host":
        found.append({"type": "network"})
    if mode_of(options, "uts") != "host":
        found.append({"type": "uts"})
    for kind in ("pid", "ipc"):
        mode = mode_of(options, kind)
        if mode == "host":
            continue
        if kind in joined_paths:
            found.append({"type": kind, "path": joined_paths[kind]})
        else:
            found.append({"type": kind})
    cgroupns = mode_of(options, "cgroupns")
    if cgroupns == "private" or (cgroupns == "" and host.cgroup_v2):
        found.append({"type": "cgroup"})
    return found


def shm_mount(options: CreateOptions, mounts: list[dict[str, Any]], shm_source: str) -> None:
    """/dev/shm as the IPC mode wants it, in place: the default tmpfs; the host's; none; or
    a bind of `shm_source` (a shareable container's own, or the one it joins)."""
    mode = mode_of(options, "ipc")
    index = next((i for i, m in enumerate(mounts) if m["destination"] == "/dev/shm"), None)
    if index is None or mounts[index].get("type") != "tmpfs":
        return  # the user mounted something there: theirs
    if mode == "none":
        del mounts[index]
    elif mode == "host":
        mounts[index] = {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                         "options": ["rbind", "rprivate", *SHM_OPTIONS]}  # fmt: skip
    elif shm_source:
        mounts[index] = {"destination": "/dev/shm", "type": "bind", "source": shm_source,
                         "options": ["rbind", "rprivate", *SHM_OPTIONS]}  # fmt: skip
