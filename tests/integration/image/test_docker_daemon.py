"""cove's archives against the real Docker daemon (Debian's docker.io: dockerd 20.10): `docker
load` reads what `cove save` writes, and `cove load` reads what `docker save` writes, the
image id unchanged both ways. dockerd runs privately: its own data root, socket and
containerd namespace, no iptables, no bridge, the vfs driver; stopped by its pid."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.image.test_import import cove

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    binary, client = shutil.which("dockerd"), shutil.which("docker")
    if binary is None or client is None:
        pytest.skip("dockerd and docker (Debian package docker.io) are not installed")
    base = tmp_path_factory.mktemp("dockerd")
    sock = base / "docker.sock"
    log = (base / "log").open("w")
    daemon = subprocess.Popen(
        [binary, "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "pid"), "-H", f"unix://{sock}", "--iptables=false",
         "--ip6tables=false", "--bridge=none", "--storage-driver=vfs",
         "--containerd-namespace", "cove-tests", "--containerd-plugins-namespace",
         "cove-tests-plugins"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([client, "version"], env=env, capture_output=True).returncode:
            if daemon.poll() is not None or time.monotonic() > deadline:
                pytest.fail("dockerd did not start: " + (base / "log").read_text()[-2000:])
            time.sleep(0.2)
        yield env
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        subprocess.run(["umount", "-R", str(base / "exec")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


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
