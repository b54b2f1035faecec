"""The engine's side of `--pid`/`--ipc container:NAME` and `--ipc shareable`
(`cove.engine.spec_namespaces` writes the spec):

- joining: the path of NAME's namespace, /proc/<NAME's init>/ns/KIND, goes into the spec at
  create and again before every start (NAME's init changes when it restarts); NAME must
  be running then.
- /dev/shm: a shareable container's is a tmpfs that the engine mounts at `<container
  dir>/shm` before its start and unmounts after its exit, so that a container that joins
  its IPC namespace binds the same one. A container joins only a shareable one's, as in
  Docker. `leftover_shm_mounts` finds those a crash left (for `system check`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cove.engine.state import ContainerRecord, ContainerStore
from cove.errors import CoveError, InvalidArgument, InvalidState

CONTAINER_PREFIX = "container:"
SHM_DIR = "shm"
DEFAULT_SHM_SIZE = 64 << 20
ACTIVE = ("running", "paused")


def _mode(config: Mapping[str, Any], kind: str) -> str:
    return str(config.get(kind) or "").strip()


def _donor(store: ContainerStore, config: Mapping[str, Any], kind: str) -> ContainerRecord | None:
    mode = _mode(config, kind)
    if not mode.startswith(CONTAINER_PREFIX):
        return None
    return store.get(mode[len(CONTAINER_PREFIX) :])  # NoSuchContainer when it is not there


def joined_paths(
    store: ContainerStore, config: Mapping[str, Any], *, running: bool
) -> dict[str, str]:
    """{kind: /proc/PID/ns/KIND} for the pid and ipc modes that join a container. With
    `running`, that container must run (a start); else a stopped one gives "" (a create:
    the start fills it in)."""
    paths = {}
    for kind in ("pid", "ipc"):
        donor = _donor(store, config, kind)
        if donor is None:
            continue
        if donor.status in ACTIVE and donor.pid > 0:
            paths[kind] = f"/proc/{donor.pid}/ns/{kind}"
        elif running:
            raise InvalidState(f"cannot join the {kind.upper()} namespace of container "
                               f"{donor.name or donor.id[:12]}: it is not running")  # fmt: skip
        else:
            paths[kind] = ""
    return paths


def shm_source(store: ContainerStore, container_id: str, config: Mapping[str, Any]) -> str:
    """The host folder bound at the container's /dev/shm ("" for the spec's own tmpfs)."""
    mode = _mode(config, "ipc")
    if mode == "shareable":
        return str(store.container_dir(container_id) / SHM_DIR)
    donor = _donor(store, config, "ipc")
    if donor is None:
        return ""
    if _mode(donor.config, "ipc") != "shareable":
        raise InvalidArgument(
            f"cannot join the IPC namespace of container {donor.name or donor.id[:12]}: it is "
            "not shareable (run it with --ipc shareable)"
        )
    return str(store.container_dir(donor.id) / SHM_DIR)


def before_start(store: ContainerStore, record: ContainerRecord) -> None:
    """Before the runtime's create: a shareable container's /dev/shm mounted; the paths of
    the namespaces it joins rewritten in its spec."""
    if _mode(record.config, "ipc") == "shareable":
        mount_shm(store.container_dir(record.id) / SHM_DIR, _shm_size(record.config))
    paths = joined_paths(store, record.config, running=True)
    if paths:
        _rewrite(Path(record.bundle) / "config.json", paths)


def after_exit(store: ContainerStore, record: ContainerRecord) -> None:
    """After the container's exit (and before its removal): its /dev/shm unmounted."""
    if _mode(record.config, "ipc") == "shareable":
        unmount_shm(store.container_dir(record.id) / SHM_DIR)


def mount_shm(folder: Path, size: int) -> None:
    from cove.sys.constants import MS_NODEV, MS_NOEXEC, MS_NOSUID
    from cove.sys.linux import LinuxSyscalls

    if _is_mount_point(folder):
        return
    folder.mkdir(mode=0o755, exist_ok=True)
    try:
        LinuxSyscalls().mount("shm", str(folder), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                              f"mode=1777,size={size}")  # fmt: skip
    except CoveError as exc:
        raise CoveError(f"cannot mount the shareable /dev/shm at {folder}: {exc}") from None


def unmount_shm(folder: Path) -> None:
    from cove.sys.constants import MNT_DETACH
    from cove.sys.linux import LinuxSyscalls

    while _is_mount_point(folder):
        try:
            LinuxSyscalls().umount2(str(folder), MNT_DETACH)
        except CoveError:
            return


def leftover_shm_mounts(store: ContainerStore, live: set[str]) -> list[Path]:
    """Shareable /dev/shm mounts of containers that are not running (a crash left them)."""
    from cove.engine.volume_data import mounts_under

    base = store.container_dir("x").parent
    found = []
    for point in mounts_under(str(base)):
        path = Path(point)
        if path.name == SHM_DIR and path.parent.parent == base and path.parent.name not in live:
            found.append(path)
    return found


def _shm_size(config: Mapping[str, Any]) -> int:
    from cove.engine.create_options import parse_bytes

    given = config.get("shm_size")
    if given in (None, "", 0):
        return DEFAULT_SHM_SIZE
    assert isinstance(given, (str, int))
    return parse_bytes(given, "--shm-size")


def _rewrite(spec_path: Path, paths: Mapping[str, str]) -> None:
    spec = json.loads(spec_path.read_text())
    for namespace in spec.get("linux", {}).get("namespaces", []):
        kind = namespace.get("type")
        if kind in paths:
            namespace["path"] = paths[kind]
    tmp = spec_path.with_name("config.json.tmp")
    tmp.write_text(json.dumps(spec))
    os.replace(tmp, spec_path)


def _is_mount_point(folder: Path) -> bool:
    from cove.engine.volume_data import mounts_under

    return str(folder) in mounts_under(str(folder))
