"""`cove run --explain`: print the container's isolation steps as the manual recipe writes
them (cove.engine.explain), from the spec and snapshot the engine made, before it starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cove.engine.state import ContainerRecord


def cgroup_paths(cgroups_path: str) -> dict[str, str]:
    """Controller -> the container's cgroup folder on this host ("" for cgroup2)."""
    from cove.runtime.cgroups.layout import host_layout

    rel = cgroups_path.strip("/")
    paths: dict[str, str] = {}
    for hierarchy in host_layout().hierarchies:
        folder = f"{hierarchy.mountpoint}/{rel}"
        if hierarchy.version == 2:
            paths[""] = folder
            continue
        for option in hierarchy.options:
            if not option.startswith("name="):
                paths[option] = folder
    return paths


def print_explanation(root: str, record: ContainerRecord) -> None:
    from cove.engine.container_create import snapshot_key
    from cove.engine.explain import explain, render
    from cove.image.snapshot import OverlaySnapshotter, choose_snapshotter

    spec = json.loads((Path(record.bundle) / "config.json").read_text())
    snapshots = choose_snapshotter(root)
    rootfs_mount = None
    if isinstance(snapshots, OverlaySnapshotter):
        mount = snapshots.describe(snapshot_key(record.id))
        rootfs_mount = {"lowerdir": ":".join(mount.lowerdirs), "upperdir": mount.upperdir,
                        "workdir": mount.workdir, "target": record.rootfs}  # fmt: skip
    cgroups = spec.get("linux", {}).get("cgroupsPath") or f"/cove/{record.id}"
    lines = explain(spec, container_id=record.id, rootfs_mount=rootfs_mount,
                    cgroup_paths=cgroup_paths(cgroups))  # fmt: skip
    sys.stdout.write(render(lines) + "\n")
    sys.stdout.flush()
