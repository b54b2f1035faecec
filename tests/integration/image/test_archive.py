"""`cove save` / `cove load`, checked against skopeo: skopeo reads what cove writes (as a
docker-archive and as an oci-archive), and cove loads what skopeo writes."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.integration.image.test_import import cove

pytestmark = pytest.mark.root

# `save` and `load` are run through run_module until they are registered in COMMANDS.
_RUN_VERB = (
    "import sys\n"
    "from cove.cli.engine import Context, run_module\n"
    "module, root, *args = sys.argv[1:]\n"
    "sys.stdout.flush()\n"
    "status = run_module(module, 'cove ' + module, '', args, Context(root, False))\n"
    "sys.stdout.flush()\n"
    "sys.exit(status)\n"
)


def verb(
    module: str, root: Path, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", _RUN_VERB, module, str(root), *args],
        input=stdin if stdin is not None else b"", capture_output=True, timeout=120,
    )  # fmt: skip


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("skopeo")
    if binary is None:
        pytest.skip("skopeo (Debian package) is not installed")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def rootfs_tar(busybox_rootfs: Path, tmp_path: Path) -> Path:
    path = tmp_path / "rootfs.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    return path


@pytest.fixture
def engine(tmp_path: Path, rootfs_tar: Path) -> Path:
    """An engine root holding busybox as `bb:latest`."""
    root = tmp_path / "engine"
    res = cove(root, "import", "--change", 'CMD ["sh"]', str(rootfs_tar), "bb:latest")
    assert res.returncode == 0, res.stderr
    return root


def inspect(root: Path, name: str) -> dict[str, object]:
    res = cove(root, "image", "inspect", name)
    assert res.returncode == 0, res.stderr
    found: dict[str, object] = json.loads(res.stdout)[0]
    return found


def test_skopeo_reads_cove_docker_archive(engine: Path, tmp_path: Path) -> None:
    archive = tmp_path / "bb.tar"
    res = verb("image_save", engine, "-o", str(archive), "bb")
    assert res.returncode == 0, res.stderr
    # to a pipe: the same bytes (the archive is deterministic)
    piped = verb("image_save", engine, "bb:latest")
    assert piped.returncode == 0 and piped.stdout == archive.read_bytes()
    info = skopeo("inspect", f"docker-archive:{archive}")
    assert info.returncode == 0, info.stderr
    diff_ids = inspect(engine, "bb")["RootFS"]["Layers"]  # type: ignore[index]
    assert json.loads(info.stdout)["Layers"] == diff_ids
    copied = skopeo("copy", f"docker-archive:{archive}", f"oci:{tmp_path / 'oci'}:copied")
    assert copied.returncode == 0, copied.stderr
    # the docker-archive is an OCI layout too, as docker's are
    as_oci = skopeo("inspect", f"oci-archive:{archive}:latest")
    assert as_oci.returncode == 0, as_oci.stderr


def test_cove_loads_skopeo_docker_archive(engine: Path, tmp_path: Path) -> None:
    archive = tmp_path / "from-skopeo.tar"
    copied = skopeo("copy", f"oci:{engine / 'images'}:latest", f"docker-archive:{archive}:bb:sk")
    assert copied.returncode == 0, copied.stderr
    fresh = tmp_path / "fresh"
    res = verb("image_load", fresh, "-i", str(archive))
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == "Loaded image: bb:sk\n"
    listed = cove(fresh, "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert listed.stdout.split() == ["bb:sk"]
    ours, theirs = inspect(engine, "bb"), inspect(fresh, "bb:sk")
    assert theirs["RootFS"] == ours["RootFS"]
    assert theirs["Id"] == ours["Id"]


def test_oci_archive_both_ways(engine: Path, tmp_path: Path) -> None:
    archive = tmp_path / "bb.oci.tar"
    res = verb("image_save", engine, "--format", "oci-archive", "-o", str(archive), "bb")
    assert res.returncode == 0, res.stderr
    info = skopeo("inspect", f"oci-archive:{archive}:latest")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["Digest"] == inspect(engine, "bb")["Descriptor"]["digest"]  # type: ignore[index]
    back = tmp_path / "back.tar"
    copied = skopeo("copy", f"oci-archive:{archive}:latest", f"oci-archive:{back}:bb:back")
    assert copied.returncode == 0, copied.stderr
    fresh = tmp_path / "fresh"
    res = verb("image_load", fresh, "--input", str(back))
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == "Loaded image: bb:back\n"
    assert inspect(fresh, "bb:back")["RootFS"] == inspect(engine, "bb")["RootFS"]
    # a gzip-compressed copy (skopeo compresses the layers): cove keeps the layers as they
    # are, and decompresses them again when it writes a docker-archive
    compressed = tmp_path / "gz.oci.tar"
    copied = skopeo("copy", "--dest-compress", f"oci-archive:{archive}:latest",
                    f"oci-archive:{compressed}:bb:gz")  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    res = verb("image_load", fresh, "-i", str(compressed))
    assert res.returncode == 0, res.stderr
    layers = inspect(fresh, "bb:gz")
    assert layers["RootFS"] == inspect(engine, "bb")["RootFS"]
    docker_archive = tmp_path / "gz-as-docker.tar"
    res = verb("image_save", fresh, "-o", str(docker_archive), "bb:gz")
    assert res.returncode == 0, res.stderr
    info = skopeo("inspect", f"docker-archive:{docker_archive}")
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["Layers"] == layers["RootFS"]["Layers"]  # type: ignore[index]


def test_gzipped_docker_archive_loads_from_stdin(engine: Path, tmp_path: Path) -> None:
    saved = verb("image_save", engine, "bb")
    assert saved.returncode == 0, saved.stderr
    fresh = tmp_path / "fresh"
    res = verb("image_load", fresh, "-q", stdin=gzip.compress(saved.stdout))
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode() == "Loaded image: bb:latest\n"
    assert inspect(fresh, "bb")["Id"] == inspect(engine, "bb")["Id"]


def test_hostile_archive_registers_nothing(engine: Path, tmp_path: Path) -> None:
    saved = verb("image_save", engine, "bb").stdout
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as out, tarfile.open(fileobj=io.BytesIO(saved)) as src:
        for info in src:
            data = src.extractfile(info) if info.isfile() else None
            if info.name == "manifest.json" and data is not None:
                document = json.loads(data.read())
                document[0]["Layers"] = ["../../../../etc/passwd"]
                raw = json.dumps(document).encode()
                info.size = len(raw)
                data = io.BytesIO(raw)
            out.addfile(info, data)
    fresh = tmp_path / "fresh"
    res = verb("image_load", fresh, "-i", str(evil))
    assert res.returncode == 1
    assert "archive entry 'manifest.json'" in res.stderr.decode()
    assert "../../../../etc/passwd" in res.stderr.decode()
    assert cove(fresh, "images", "-q").stdout == ""
    assert list((fresh / "images" / "blobs" / "sha256").iterdir()) == []
