"""`cove commit`: a container's changes become a new image on top of its own.

The overlay upper dir is written as one layer (`cove.image.layer_diff.diff_tar`: a plain
tar, whiteouts and opaque dirs as OCI ".wh." entries; stored uncompressed, so its digest
is its diff_id, as `cove import` does). The image config is the container's image config
with the container's own settings (command, entrypoint, env, workdir, user, labels) and the
`--change` instructions applied, the new diff_id, and a history entry. A running container
is paused while its upper dir is read (`pause`, docker's default).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cove.engine import events
from cove.engine.container_create import snapshot_key
from cove.engine.containers import ContainerService
from cove.engine.image_import import apply_changes
from cove.engine.state import ContainerRecord
from cove.errors import InvalidArgument
from cove.image.layer_diff import diff_tar
from cove.image.manifest import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, canonical_json
from cove.image.media_types import (
    DOCKER_FOREIGN_LAYER_GZIP,
    DOCKER_LAYER_GZIP,
    OCI_LAYER_GZIP,
    OCI_LAYER_NONDISTRIBUTABLE_GZIP,
)
from cove.image.reference import parse_reference
from cove.image.snapshot import OverlaySnapshotter, choose_snapshotter
from cove.image.store import ImageStore

COMMIT_CHANGES = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME",
                  "WORKDIR", "STOPSIGNAL")  # fmt: skip
_OCI_LAYER_OF = {
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
    DOCKER_FOREIGN_LAYER_GZIP: OCI_LAYER_NONDISTRIBUTABLE_GZIP,
}


def container_config(image_config: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """The image's execution config (`config` of an image config) with what the container
    was created with (CreateOptions as stored in its record) put over it, as docker commit
    keeps the container's Config."""
    config = dict(image_config)
    entrypoint = options.get("entrypoint")
    cmd = options.get("cmd")
    if entrypoint is not None:
        config["Entrypoint"] = list(entrypoint) or None
        if not cmd:
            config["Cmd"] = None  # docker drops the image's Cmd with --entrypoint
    if cmd:
        config["Cmd"] = list(cmd)
    env = list(config.get("Env") or [])
    for item in list(options.get("env") or []):
        name = str(item).split("=", 1)[0]
        env = [e for e in env if e.split("=", 1)[0] != name]
        if "=" in str(item):
            env.append(str(item))
    if env:
        config["Env"] = env
    if options.get("workdir"):
        config["WorkingDir"] = options["workdir"]
    if options.get("user"):
        config["User"] = options["user"]
    labels = dict(config.get("Labels") or {})
    labels.update({str(k): str(v) for k, v in dict(options.get("labels") or {}).items()})
    if labels:
        config["Labels"] = labels
    return {key: value for key, value in config.items() if value is not None}


def _check_changes(changes: Sequence[str]) -> None:
    for change in changes:
        keyword = change.strip().split(" ", 1)[0].upper()
        if keyword not in COMMIT_CHANGES:
            raise InvalidArgument(
                f"--change {change!r}: {keyword} cannot be used here "
                f"(only {', '.join(COMMIT_CHANGES)})"
            )


def _created_by(record: ContainerRecord) -> str:
    try:
        spec = json.loads((Path(record.bundle) / "config.json").read_text())
        return " ".join(spec.get("process", {}).get("args") or [])
    except (OSError, ValueError):
        return ""


def commit(
    root: str,
    term: str,
    reference: str | None = None,
    *,
    changes: Sequence[str] = (),
    message: str = "",
    author: str = "",
    pause: bool = True,
) -> str:
    """Commit the container `term`; returns the new image's id ("sha256:...")."""
    _check_changes(changes)
    ref = None if not reference else parse_reference(reference)
    if ref is not None and ref.digest is not None:
        raise InvalidArgument(f"cannot commit to a digest reference: {reference}")
    service = ContainerService(root)
    record = service.get(term)
    snapshots = choose_snapshotter(root)
    if not isinstance(snapshots, OverlaySnapshotter):
        raise InvalidArgument("commit needs overlay snapshots (this engine root copies layers)")
    mount = snapshots.describe(snapshot_key(record.id))
    paused_here = False
    if pause and record.status == "running":
        service.pause(record.id)
        paused_here = True
    try:
        with ImageStore(os.path.join(root, "images")) as store:
            with tempfile.TemporaryFile(dir=store.tmp_dir) as layer_file:
                summary = diff_tar(mount.lowerdirs, mount.upperdir, layer_file)
                layer_file.seek(0)
                layer = store.put_blob(layer_file, summary.diff_id)
    finally:
        if paused_here:
            service.unpause(record.id)
    with ImageStore(os.path.join(root, "images")) as store:
        base = store.resolve(record.image_id)
        config: dict[str, Any] = json.loads(store.read_blob(base.id))
        manifest: dict[str, Any] = json.loads(store.read_blob(base.manifest_digest))
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        execution = container_config(config.get("config") or {}, record.config)
        config["config"] = apply_changes(execution, tuple(changes))
        config["created"] = created
        config["container"] = record.id
        if author:
            config["author"] = author
        rootfs = dict(config.get("rootfs") or {"type": "layers"})
        rootfs["diff_ids"] = [*list(rootfs.get("diff_ids") or []), summary.diff_id]
        config["rootfs"] = rootfs
        entry: dict[str, Any] = {"created": created, "created_by": _created_by(record)}
        if author:
            entry["author"] = author
        if message:
            entry["comment"] = message
        config["history"] = [*list(config.get("history") or []), entry]
        config_info = store.put_blob(canonical_json(config))
        layers = [
            {**layer_desc, "mediaType": _OCI_LAYER_OF.get(layer_desc.get("mediaType", ""),
                                                          layer_desc.get("mediaType", ""))}
            for layer_desc in manifest.get("layers") or []
        ]  # fmt: skip
        layers.append({"mediaType": OCI_LAYER, "digest": str(layer.digest), "size": layer.size})
        new_manifest = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": str(config_info.digest),
                       "size": config_info.size},
            "layers": layers,
        }  # fmt: skip
        manifest_info = store.put_blob(canonical_json(new_manifest))
        image = store.add_image(manifest_info.digest, names=[] if ref is None else [ref])
    image_id = str(image.id)
    events.emit(root, "commit", record, comment=message, imageID=image_id,
                imageRef=str(ref) if ref is not None else "")  # fmt: skip
    return image_id
