"""Helpers for the `cove build` integration tests (test_build_*.py): a context folder from
a dict, the build command, the image's stored config, and the leftovers check."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.integration.image.test_import import cove, cove_cli


@pytest.fixture
def engine(tmp_path: Path, busybox_rootfs: Path) -> Path:
    """An engine root with busybox imported as bb:1 (as tests/integration/engine/test_run.py)."""
    root = tmp_path / "engine"
    rootfs_tar = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs_tar, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    assert cove(root, "import", str(rootfs_tar), "bb:1").returncode == 0
    return root


def write_context(folder: Path, files: dict[str, str | bytes]) -> Path:
    """Files of a build context (`name: text`); the folder is made."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return folder


def build(
    root: Path,
    context: Path | str,
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: int = 120,
) -> subprocess.CompletedProcess[bytes]:
    """`cove build ARGS CONTEXT` (progress in plain lines on stderr, the id on stdout)."""
    environment = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    return subprocess.run(
        [cove_cli(), "--root", str(root), "build", "--progress", "plain", *args, str(context)],
        input=stdin, capture_output=True, timeout=timeout,
        env={**environment, "LC_ALL": "C.UTF-8", **(env or {})},
    )  # fmt: skip


def text(res: subprocess.CompletedProcess[Any]) -> tuple[str, str]:
    """(stdout, stderr) as text."""
    out, err = res.stdout, res.stderr
    if isinstance(out, bytes):
        out = out.decode("utf-8", "replace")
    if isinstance(err, bytes):
        err = err.decode("utf-8", "replace")
    return out, err


def built(root: Path, context: Path | str, *args: str) -> tuple[str, str]:
    """Build, which must succeed: (image id, progress text)."""
    res = build(root, context, *args)
    out, err = text(res)
    assert res.returncode == 0, err
    image_id = out.strip().splitlines()[-1]
    assert image_id.startswith("sha256:") and len(image_id) == 71, out
    return image_id, err


def run_in(root: Path, image: str, *command: str) -> str:
    """`cove run --rm IMAGE COMMAND`'s stdout (the run must succeed)."""
    res = cove(root, "run", "--rm", "--network", "none", image, *command)
    assert res.returncode == 0, res.stderr
    return res.stdout


def inspect(root: Path, image: str) -> dict[str, Any]:
    res = cove(root, "image", "inspect", image)
    assert res.returncode == 0, res.stderr
    found: dict[str, Any] = json.loads(res.stdout)[0]
    return found


def stored_config(root: Path, image: str) -> dict[str, Any]:
    """The image's config document as stored (every field, Healthcheck and Shell too)."""
    image_id = inspect(root, image)["Id"]
    blob = root / "images" / "blobs" / "sha256" / image_id.split(":", 1)[1]
    config: dict[str, Any] = json.loads(blob.read_bytes())
    return config


def layer_names(root: Path, image: str, index: int) -> list[str]:
    """The entry names of the image's layer `index` (its manifest's order)."""
    descriptor = inspect(root, image)["Descriptor"]["digest"].split(":", 1)[1]
    manifest = json.loads((root / "images" / "blobs" / "sha256" / descriptor).read_bytes())
    digest = manifest["layers"][index]["digest"].split(":", 1)[1]
    with tarfile.open(root / "images" / "blobs" / "sha256" / digest) as tar:
        return tar.getnames()


def nothing_left(root: Path) -> None:
    """No container, no mount under the root, no snapshot, no build scratch folder, and no
    blob that no image uses (a failed step's layer)."""
    from cove.image.store import ImageStore

    assert cove(root, "ps", "-a", "-q").stdout == ""
    assert str(root) not in Path("/proc/self/mountinfo").read_text()
    snapshots = root / "snapshots"
    assert not snapshots.exists() or list(snapshots.iterdir()) == []
    scratch = root / "build" / "tmp"
    assert not scratch.exists() or list(scratch.iterdir()) == []
    with ImageStore(str(root / "images")) as store:
        used: set[str] = set()
        for record in store.images():
            used.add(str(record.manifest_digest))
            used.add(str(record.id))
            used.update(str(layer.digest) for layer in store.manifest(record).layers)
        assert {str(d) for d in store.blobs()} <= used
