"""bootstrap: the --from-host image (skeleton layer, host-binds label or a copied layer) and
Debian's policy-rc.d in every bootstrap image; a fake host in a temporary folder, no root."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from cove.image.bootstrap import (
    HOST_BINDS_LABEL,
    POLICY_RC_D,
    POLICY_RC_D_PATH,
    _skeleton,
    bootstrap_from_host,
    host_binds,
    write_policy_rc_d,
)
from cove.image.store import ImageStore


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A merged-/usr host: usr/bin with a file, etc, var/lib, and bin and lib as links."""
    root = tmp_path / "host"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "etc").mkdir()
    (root / "var" / "lib").mkdir(parents=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "lib").symlink_to("usr/lib")
    return root


def members(layer: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        return {info.name: info for info in tar.getmembers()}


def test_skeleton_has_policy_rc_d_the_links_and_the_folders(host: Path) -> None:
    layer = _skeleton(str(host), ["usr", "etc", "var/lib"])
    found = members(layer)
    policy = found[POLICY_RC_D_PATH]
    assert policy.isfile() and policy.mode == 0o755 and policy.size == len(POLICY_RC_D)
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        extracted = tar.extractfile(POLICY_RC_D_PATH)
        assert extracted is not None and extracted.read() == POLICY_RC_D
    assert POLICY_RC_D.rstrip().endswith(b"exit 101")
    assert found["usr"].isdir() and found["usr/sbin"].isdir() and found["var/lib"].isdir()
    assert found["tmp"].mode == 0o1777
    assert (found["bin"].issym(), found["bin"].linkname) == (True, "usr/bin")
    assert "lib64" not in found  # the host has no such link


def test_policy_rc_d_forbids_every_action(tmp_path: Path) -> None:
    write_policy_rc_d(str(tmp_path))
    script = tmp_path / POLICY_RC_D_PATH
    assert os.stat(script).st_mode & 0o777 == 0o755
    assert subprocess.run([str(script), "nginx", "start"]).returncode == 101
    script.write_text("#!/bin/sh\nexit 0\n")
    write_policy_rc_d(str(tmp_path))  # a tree that has its own keeps it
    assert script.read_text() == "#!/bin/sh\nexit 0\n"


def test_from_host_records_the_host_folders(tmp_path: Path, host: Path) -> None:
    with ImageStore(tmp_path / "images") as store:
        bound = bootstrap_from_host(store, "host:seed", str(host))
        copied = bootstrap_from_host(store, "host:copied", str(host), copy=True)
        bound_config = store.config(bound)
        copied_config = store.config(copied)
    assert len(bound_config.diff_ids) == 1 and len(copied_config.diff_ids) == 2
    labels = bound_config.config.labels
    assert json.loads(labels[HOST_BINDS_LABEL])[0] == {"source": f"{host}/usr",
                                                       "destination": "/usr"}  # fmt: skip
    assert host_binds(labels) == [(f"{host}/usr", "/usr"), (f"{host}/etc", "/etc"),
                                  (f"{host}/var/lib", "/var/lib")]  # fmt: skip
    assert HOST_BINDS_LABEL not in copied_config.config.labels
