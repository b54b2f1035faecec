"""`--volumes-from CONTAINER[:ro|:rw]`: the new container mounts what CONTAINER mounts,
its volumes (named, anonymous, the image's) and its bind mounts, at the same paths, as
Docker does. `:ro`/`:rw` sets the mode of all of them; without it each keeps its own. A
path the new container mounts itself stays its own; tmpfs mounts are not shared.

The volumes are then the new container's too (by name), so removing CONTAINER with `-v`
leaves them while the new one uses them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cove.engine.create_options import CreateOptions, MountOption
from cove.engine.state import ContainerStore
from cove.errors import InvalidArgument


def expand(store: ContainerStore, options: CreateOptions) -> CreateOptions:
    """`options` with the mounts of its --volumes-from containers added as -v/--mount."""
    if not options.volumes_from:
        return options
    taken = _destinations(options)
    volumes = list(options.volumes)
    mounts = list(options.mounts)
    for spec in options.volumes_from:
        name, _, mode = spec.partition(":")
        if not name or mode not in ("", "ro", "rw"):
            raise InvalidArgument(f"invalid value '{spec}' for flag --volumes-from: want "
                                  "CONTAINER[:ro|:rw]")  # fmt: skip
        source = store.get(name)  # NoSuchContainer names it
        for entry in source.settings.get("volumes") or []:
            destination = str(entry.get("destination", ""))
            if not destination or destination in taken:
                continue
            writable = bool(entry.get("rw", True)) if not mode else mode == "rw"
            volumes.append(f"{entry['name']}:{destination}:{'rw' if writable else 'ro'}")
            taken.add(destination)
        for bind in _binds(source.config):
            if bind.target in taken:
                continue
            read_only = bind.read_only if not mode else mode == "ro"
            mounts.append(dataclasses.replace(bind, read_only=read_only))
            taken.add(bind.target)
    return dataclasses.replace(options, volumes=volumes, mounts=mounts)


def _destinations(options: CreateOptions) -> set[str]:
    from cove.engine.create_options import parse_mount

    found = set()
    for text in options.volumes:
        parts = text.split(":")
        found.add(parts[0] if len(parts) == 1 else parts[1])
    for item in options.mounts:
        found.add((parse_mount(item) if isinstance(item, str) else item).target)
    for text in options.tmpfs:
        found.add(text.partition(":")[0])
    return {path.rstrip("/") or "/" for path in found}


def _binds(config: Mapping[str, Any]) -> list[MountOption]:
    """The bind mounts a container's -v and --mount made (host paths)."""
    from cove.engine.create_options import parse_mount

    found = []
    for text in config.get("volumes") or []:
        parts = str(text).split(":")
        if len(parts) >= 2 and parts[0].startswith("/"):
            options = parts[2].split(",") if len(parts) == 3 else []
            found.append(MountOption(type="bind", source=parts[0], target=parts[1],
                                     read_only="ro" in options))  # fmt: skip
    for item in config.get("mounts") or []:
        if isinstance(item, str):
            mount = parse_mount(item)
        elif isinstance(item, Mapping):
            mount = MountOption(**{k: v for k, v in item.items()
                                   if k in MountOption.__dataclass_fields__})  # fmt: skip
        else:
            continue
        if mount.type == "bind":
            found.append(mount)
    return found
