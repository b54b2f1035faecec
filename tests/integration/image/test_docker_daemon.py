"""cove's archives against the real Docker daemon (Debian's docker.io: dockerd 20.10): `docker
load` reads what `cove save` writes, and `cove load` reads what `docker save` writes, the
image id unchanged both ways. dockerd runs privately (tests/lib/dockerd.py: its own
containerd, data root, sockets and namespaces, no iptables, no bridge, the vfs driver);
stopped by its pid."""

from __future__ import annotations

import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.image.test_import import cove
from tests.lib.dockerd import DockerdUnavailable, binaries, start_dockerd

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    try:
        binaries()
    except DockerdUnavailable as exc:
        pytest.skip(str(exc))
    daemon = start_dockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        yield daemon.env
    finally:
        daemon.stop()


def docker(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


@pytest.fixture
def engine(tmp_path: Path, busybox_rootfs: Path) -> Path:
    root = tmp_path / "engine"
    rootfs = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    assert cove(root, "import", "--change", 'CMD ["sh"]', str(rootfs), "covebb:1").returncode == 0
    return root


def image_id(root: Path, name: str) -> str:
    res = cove(root, "image", "inspect", "--format", "{{.Id}}", name)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def test_docker_loads_what_cove_saves(
    dockerd: dict[str, str], engine: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "saved.tar"
    assert cove(engine, "save", "-o", str(archive), "covebb:1").returncode == 0
    loaded = docker(dockerd, "load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    assert "Loaded image: covebb:1" in loaded.stdout
    inspected = docker(dockerd, "image", "inspect", "--format", "{{.Id}} {{json .Config.Cmd}}",
                       "covebb:1")  # fmt: skip
    assert inspected.stdout.split() == [image_id(engine, "covebb:1"), '["sh"]']
    assert docker(dockerd, "rmi", "covebb:1").returncode == 0


def test_cove_loads_what_docker_saves(
    dockerd: dict[str, str], engine: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "saved.tar"
    assert cove(engine, "save", "-o", str(archive), "covebb:1").returncode == 0
    assert docker(dockerd, "load", "-i", str(archive)).returncode == 0
    assert docker(dockerd, "tag", "covebb:1", "fromdocker:2").returncode == 0
    from_docker = tmp_path / "docker-saved.tar"
    assert docker(dockerd, "save", "-o", str(from_docker), "fromdocker:2").returncode == 0
    other = tmp_path / "other-engine"
    res = cove(other, "load", "-i", str(from_docker))
    assert res.returncode == 0, res.stderr
    assert image_id(other, "fromdocker:2") == image_id(engine, "covebb:1")
    run = cove(other, "run", "--rm", "fromdocker:2", "sh", "-c", "echo loaded")
    assert run.returncode == 0 and run.stdout == "loaded\n", run.stderr
    docker(dockerd, "rmi", "covebb:1", "fromdocker:2")
