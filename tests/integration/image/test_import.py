"""`cove import` and the image verbs, checked with the ecosystem's tools: skopeo reads
cove's OCI layout, umoci unpacks it into a bundle, and cove-runtime runs that bundle."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.lib.runtimes import find_binary

pytestmark = pytest.mark.root


def cove_cli() -> str:
    """The engine CLI (not the runtime): on PATH, or beside the test's Python."""
    found = shutil.which("cove") or shutil.which(str(Path(sys.executable).parent / "cove"))
    assert found is not None, "cove is not installed (tools/install.sh)"
    return found


def cove(root: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    binary = cove_cli()
    return subprocess.run(
        [binary, "--root", str(root), *args],
        input=None if stdin is None else stdin.decode("latin-1"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.fixture
def rootfs_tar(busybox_rootfs: Path, tmp_path: Path) -> Path:
    path = tmp_path / "rootfs.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    return path


def test_import_list_tag_inspect_remove(tmp_path: Path, rootfs_tar: Path) -> None:
    root = tmp_path / "engine"
    res = cove(root, "import", "--change", 'CMD ["sh"]', "--change", "WORKDIR /tmp",
               str(rootfs_tar), "bb:one")  # fmt: skip
    assert res.returncode == 0, res.stderr
    image_id = res.stdout.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    listed = cove(root, "images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
    assert listed.split() == ["bb:one", image_id[7:19]]
    assert cove(root, "tag", "bb:one", "localhost:5000/bb:two").returncode == 0
    inspect = json.loads(cove(root, "image", "inspect", image_id[7:15]).stdout)
    assert inspect[0]["Id"] == image_id
    assert sorted(inspect[0]["RepoTags"]) == ["bb:one", "localhost:5000/bb:two"]
    assert inspect[0]["Config"]["Cmd"] == ["sh"] and inspect[0]["Config"]["WorkingDir"] == "/tmp"
    # by name: only that name goes while another remains
    res = cove(root, "rmi", "bb:one")
    assert res.stdout.strip() == "Untagged: bb:one"
    res = cove(root, "rmi", "localhost:5000/bb:two")
    assert f"Deleted: {image_id}" in res.stdout
    assert cove(root, "images", "-q").stdout == ""
    assert list((root / "images" / "blobs" / "sha256").iterdir()) == []


def test_unknown_image_and_bad_names(tmp_path: Path) -> None:
    root = tmp_path / "engine"
    res = cove(root, "image", "inspect", "nothing-here")
    assert res.returncode == 1 and "no such image: nothing-here" in res.stderr
    res = cove(root, "import", "/no/such/file.tar", "x")
    assert res.returncode == 1 and "/no/such/file.tar" in res.stderr
    res = cove(root, "tag", "nothing-here", "x")
    assert res.returncode == 1
    res = cove(root, "import", "--change", "RUN rm -rf /", "/dev/null", "x")
    assert res.returncode == 1 and "RUN cannot be used here" in res.stderr


def test_skopeo_reads_the_layout(tmp_path: Path, rootfs_tar: Path) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        pytest.skip("skopeo (Debian package) is not installed")
    root = tmp_path / "engine"
    assert cove(root, "import", str(rootfs_tar), "bb:skopeo").returncode == 0
    done = subprocess.run([skopeo, "inspect", f"oci:{root / 'images'}:skopeo"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["Os"] == "linux" and len(info["Layers"]) == 1


def test_umoci_unpacks_it_and_cove_runtime_runs_it(tmp_path: Path, rootfs_tar: Path) -> None:
    umoci = shutil.which("umoci")
    runtime = find_binary("cove-runtime")
    if umoci is None:
        pytest.skip("umoci (Debian package) is not installed")
    assert runtime is not None
    root = tmp_path / "engine"
    res = cove(root, "import", "--change", 'CMD ["sh", "-c", "echo from-an-image $$"]',
               str(rootfs_tar), "bb:umoci")  # fmt: skip
    assert res.returncode == 0, res.stderr
    bundle = tmp_path / "bundle"
    done = subprocess.run([umoci, "unpack", "--image", f"{root / 'images'}:umoci", str(bundle)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(config))
    state = tmp_path / "state"
    container_id = f"umoci-{os.getpid()}"
    command = [runtime, "--root", str(state), "run", "--bundle", str(bundle), container_id]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "from-an-image 1"


def test_image_mount_gives_a_rootfs_cove_runtime_runs(tmp_path: Path, rootfs_tar: Path) -> None:
    """The image's layers are unpacked once and overlay-mounted (as podman image mount);
    a bundle whose root is that mount runs; unmount leaves no mount and rmi no layer."""
    runtime = find_binary("cove-runtime")
    assert runtime is not None
    root = tmp_path / "engine"
    assert cove(root, "import", str(rootfs_tar), "bb:mount").returncode == 0
    res = cove(root, "image", "mount", "bb:mount")
    assert res.returncode == 0, res.stderr
    merged = Path(res.stdout.strip())
    try:
        assert (merged / "bin" / "busybox").is_file()
        assert cove(root, "image", "mount", "bb:mount").stdout.strip() == str(merged)
        busy = cove(root, "rmi", "bb:mount")
        assert busy.returncode == 1 and "is mounted" in busy.stderr
        bundle = tmp_path / "bundle"
        bundle.mkdir()
        assert subprocess.run([runtime, "spec", "--bundle", str(bundle)]).returncode == 0
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["/bin/sh", "-c", "ls /bin | wc -l"]
        config["root"] = {"path": str(merged), "readonly": True}
        (bundle / "config.json").write_text(json.dumps(config))
        command = [runtime, "--root", str(tmp_path / "state"), "run", "--bundle", str(bundle),
                   f"mounted-{os.getpid()}"]  # fmt: skip
        ran = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        assert int(ran.stdout.strip()) > 100
    finally:
        assert cove(root, "image", "unmount", "bb:mount").returncode == 0
    assert str(root) not in Path("/proc/self/mountinfo").read_text()
    assert cove(root, "rmi", "bb:mount").returncode == 0
    assert list((root / "layers").iterdir()) == []
