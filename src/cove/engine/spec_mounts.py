"""Part of `cove.engine.specgen`: the spec's mounts. Docker's defaults (/proc, /dev, /dev/shm
sized by `--shm-size`...), the image's host folders (`cove.engine.host_dirs`), and
`--volume`, `--mount` and `--tmpfs` checked and converted, parents before children; a user
mount replaces the defaults at or under its destination.

Volumes (`-v NAME:/dst`, `-v /dst`, `--mount type=volume`, the image's VOLUME paths no mount
covers) are the engine's to create: `volume_requests` lists what a container asks for, the
engine resolves each to a host folder, and `_mounts` gets them as a mapping: a volume's name,
or an anonymous volume's destination, to that folder (bound into the container).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cove.engine.create_options import (
    DEFAULT_SHM_SIZE,
    PROPAGATIONS,
    CreateOptions,
    MountOption,
    parse_bytes,
    parse_mount,
)
from cove.engine.host_dirs import HostDir, read_only_binds, spec_mount
from cove.engine.host_info import HostInfo
from cove.engine.volume_names import check_volume_name
from cove.errors import InvalidArgument
from cove.image.image_config import ExecutionConfig

# --- mounts ------------------------------------------------------------------------------


def _default_mounts(shm_size: int, privileged: bool) -> list[dict[str, Any]]:
    ro = [] if privileged else ["ro"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": [*ro, "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size}"]},
    ]  # fmt: skip


def _destination(path: str, flag: str, text: str) -> str:
    if not path.startswith("/"):
        raise InvalidArgument(
            f"invalid value '{text}' for flag {flag}: the destination {path!r} must be absolute"
        )
    clean = posixpath.normpath(path)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    if clean == "/":
        raise InvalidArgument(f"invalid value '{text}' for flag {flag}: cannot mount over /")
    return clean


def _bind_source(source: str, flag: str, text: str, host: HostInfo) -> str:
    if not source.startswith("/"):
        raise InvalidArgument(
            f"invalid value '{text}' for flag {flag}: the bind source {source!r} must be an"
            " absolute host path"
        )
    clean = posixpath.normpath(source)
    try:
        host.stat(clean)
    except OSError:
        raise InvalidArgument(
            f"invalid value '{text}' for flag {flag}: bind source path does not exist: {clean}"
        ) from None
    return clean


def _bind(source: str, destination: str, read_only: bool, propagation: str,
          recursive: bool = True) -> dict[str, Any]:  # fmt: skip
    mount_options = ["rbind" if recursive else "bind"]
    if read_only:
        mount_options.append("ro")
    mount_options.append(propagation or "rprivate")
    return {"destination": destination, "type": "bind", "source": source,
            "options": mount_options}  # fmt: skip


def is_volume_source(source: str) -> bool:
    """-v's SRC names a volume (not a host path): it starts with neither / nor ."""
    return not source.startswith(("/", "."))


def _volume_mode(text: str, volume: bool) -> tuple[bool, str, bool]:
    """-v's OPTS: (read_only, propagation, nocopy)."""
    parts = text.split(":")
    read_only, propagation, nocopy = False, "", False
    for option in parts[2].split(",") if len(parts) == 3 else ():
        if option == "ro":
            read_only = True
        elif option == "rw":
            read_only = False
        elif option in PROPAGATIONS:
            propagation = option
        elif option == "nocopy" and volume:
            nocopy = True
        elif option in ("z", "Z", "consistent", "cached", "delegated", ""):
            continue  # SELinux relabel, Docker Desktop hints: nothing to do here
        else:
            raise InvalidArgument(
                f"invalid value '{text}' for flag --volume: unknown option {option!r}"
            )
    return read_only, propagation, nocopy


def _volume_source(key: str, volumes: Mapping[str, str] | None, flag: str, text: str) -> str:
    if volumes is None or key not in volumes:
        raise InvalidArgument(
            f"invalid value '{text}' for flag {flag}: volume {key!r} was not prepared (volumes"
            " are created by the engine's volume service)"
        )
    return volumes[key]


def _volume_flag(
    text: str, host: HostInfo, volumes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """-v SRC:DST[:OPTS] (SRC a host path or a volume name), or -v DST (anonymous)."""
    parts = text.split(":")
    if len(parts) == 1:
        destination = _destination(parts[0], "--volume", text)
        return _bind(_volume_source(destination, volumes, "--volume", text), destination,
                     False, "")  # fmt: skip
    if len(parts) > 3:
        raise InvalidArgument(f"invalid value '{text}' for flag --volume: expected SRC:DST[:OPTS]")
    volume = is_volume_source(parts[0])
    if volume:
        source = _volume_source(parts[0], volumes, "--volume", text)
    else:
        source = _bind_source(parts[0], "--volume", text, host)
    destination = _destination(parts[1], "--volume", text)
    read_only, propagation, _nocopy = _volume_mode(text, volume)
    return _bind(source, destination, read_only, propagation)


_TMPFS_DEFAULTS = ("nosuid", "nodev", "noexec")
_TMPFS_OPPOSITES = {"exec": "noexec", "suid": "nosuid", "dev": "nodev"}


def _tmpfs(destination: str, extra: list[str]) -> dict[str, Any]:
    options = list(_TMPFS_DEFAULTS)
    for option in extra:
        opposite = _TMPFS_OPPOSITES.get(option)
        if opposite in options:
            options.remove(opposite)
        elif option in options:
            continue
        options.append(option)
    return {"destination": destination, "type": "tmpfs", "source": "tmpfs", "options": options}


def _tmpfs_flag(text: str) -> dict[str, Any]:
    path, _, option_text = text.partition(":")
    destination = _destination(path, "--tmpfs", text)
    extra = [o.strip() for o in option_text.split(",") if o.strip()]
    for option in extra:
        key, sep, value = option.partition("=")
        if key == "size" and sep:
            parse_bytes(value, "--tmpfs size")
        elif key == "mode" and sep and not re.fullmatch(r"[0-7]{3,4}", value):
            raise InvalidArgument(f"invalid value '{text}' for flag --tmpfs: mode must be octal")
    return _tmpfs(destination, extra)


def _mount_flag(
    item: str | MountOption, host: HostInfo, volumes: Mapping[str, str] | None = None
) -> dict[str, Any]:
    mount = parse_mount(item) if isinstance(item, str) else item
    text = item if isinstance(item, str) else f"type={mount.type},target={mount.target}"
    destination = _destination(mount.target, "--mount", text)
    if mount.type == "volume":
        source = _volume_source(mount.source or destination, volumes, "--mount", text)
        return _bind(source, destination, mount.read_only, "")
    if mount.type == "bind":
        source = _bind_source(mount.source, "--mount", text, host)
        return _bind(source, destination, mount.read_only, mount.propagation,
                     recursive=not mount.nonrecursive)  # fmt: skip
    if mount.type == "tmpfs":
        extra = []
        if mount.tmpfs_size is not None:
            extra.append(f"size={mount.tmpfs_size}")
        if mount.tmpfs_mode is not None:
            extra.append(f"mode={mount.tmpfs_mode:o}")
        if mount.read_only:
            extra.append("ro")
        return _tmpfs(destination, extra)
    raise InvalidArgument(
        f"invalid value '{text}' for flag --mount: unsupported type {mount.type!r}"
    )


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _mounts(
    execution: ExecutionConfig,
    options: CreateOptions,
    host: HostInfo,
    privileged: bool,
    volumes: Mapping[str, str] | None = None,
    host_dirs: Sequence[HostDir] | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """(spec mounts, the image's volumes that no mount covers). `volumes`: the host folders
    of the volumes the engine prepared (see the module docstring); the image's volumes
    among them are mounted too. `host_dirs`: the image's host folders as the engine
    prepared them (`cove.engine.host_dirs.plan`: copy-on-write overlays); without them,
    read-only binds."""
    shm_size = DEFAULT_SHM_SIZE
    if _is_set(options.shm_size):
        assert options.shm_size is not None
        shm_size = parse_bytes(options.shm_size, "--shm-size")
        if shm_size <= 0:
            raise InvalidArgument(
                f"invalid value '{options.shm_size}' for flag --shm-size: must be more than 0"
            )
    if host_dirs is None:
        host_dirs = read_only_binds(execution.labels)
    image_binds = [spec_mount(host_dir) for host_dir in host_dirs]
    user: list[dict[str, Any]] = []
    user += [_volume_flag(text, host, volumes) for text in options.volumes]
    user += [_mount_flag(item, host, volumes) for item in options.mounts]
    user += [_tmpfs_flag(text) for text in options.tmpfs]
    seen: set[str] = set()
    for mount in user:
        if mount["destination"] in seen:
            raise InvalidArgument(f"duplicate mount point: {mount['destination']}")
        seen.add(mount["destination"])
    image_volumes = _image_volumes(execution, seen)
    for path in image_volumes:
        if volumes is not None and path in volumes:
            user.append(_bind(volumes[path], path, False, ""))
            seen.add(path)
    defaults = [
        m for m in _default_mounts(shm_size, privileged)
        if not any(_under(m["destination"], d) for d in seen)
    ]  # fmt: skip
    # parents before children, as Docker sorts them (stable: same depth keeps its order)
    user.sort(key=lambda m: m["destination"].count("/"))
    return image_binds + defaults + user, image_volumes


def _image_volumes(execution: ExecutionConfig, covered: set[str]) -> list[str]:
    """The image's VOLUME paths (normalised, each once) that no mount in `covered` takes."""
    found: list[str] = []
    for volume in execution.volumes:
        path = posixpath.normpath("/" + volume.lstrip("/"))
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if path != "/" and path not in covered and path not in found:
            found.append(path)
    return found


# --- volumes the engine prepares -----------------------------------------------------------


@dataclass(frozen=True)
class VolumeRequest:
    """A volume a container asks for. `name` "" is an anonymous volume (its `key` is then
    its destination). `labels`, `options` and `driver` apply when the volume is created
    (--mount's volume-label, volume-opt, volume-driver); `mode` is -v's OPTS text."""

    name: str
    destination: str
    read_only: bool = False
    nocopy: bool = False
    mode: str = ""
    driver: str = "local"
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.name or self.destination


def volume_requests(execution: ExecutionConfig, options: CreateOptions) -> list[VolumeRequest]:
    """The volumes `options` and the image ask for, in order: -v, --mount, then the image's
    VOLUME paths no mount covers. Checks volume names; the rest is checked by `_mounts`."""
    requests: list[VolumeRequest] = []
    covered: set[str] = set()
    for text in options.volumes:
        parts = text.split(":")
        if len(parts) == 1:
            destination = _destination(parts[0], "--volume", text)
            requests.append(VolumeRequest("", destination))
        elif len(parts) <= 3:
            destination = _destination(parts[1], "--volume", text)
            if is_volume_source(parts[0]):
                check_volume_name(parts[0])
                read_only, _propagation, nocopy = _volume_mode(text, True)
                requests.append(VolumeRequest(parts[0], destination, read_only, nocopy,
                                              parts[2] if len(parts) == 3 else ""))  # fmt: skip
        else:
            continue  # _volume_flag says what is wrong
        covered.add(destination)
    for item in options.mounts:
        mount = parse_mount(item) if isinstance(item, str) else item
        text = item if isinstance(item, str) else f"type={mount.type},target={mount.target}"
        destination = _destination(mount.target, "--mount", text)
        covered.add(destination)
        if mount.type == "volume":
            if mount.source:
                check_volume_name(mount.source)
            requests.append(VolumeRequest(
                mount.source, destination, mount.read_only, mount.volume_nocopy,
                driver=mount.volume_driver or "local", labels=dict(mount.volume_labels),
                options=dict(mount.volume_options),
            ))  # fmt: skip
    for text in options.tmpfs:
        covered.add(_destination(text.partition(":")[0], "--tmpfs", text))
    requests += [VolumeRequest("", path) for path in _image_volumes(execution, covered)]
    return requests


def _is_set(value: object) -> bool:
    return value is not None and value != ""
