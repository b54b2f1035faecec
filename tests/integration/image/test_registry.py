"""`cove push` / `cove pull` / `cove login` against Debian's `docker-registry` (the
distribution registry) started by each test on 127.0.0.1, checked with skopeo.

Network rule: only loopback. Every registry here is one the test starts itself.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.image.digest import Digest
from cove.image.manifest import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, canonical_json
from cove.image.registry.push import push
from cove.image.store import ImageStore

pytestmark = pytest.mark.root

REGISTRY = "/usr/bin/docker-registry"

# Runs a cove verb in-process through run_module: pull/push/login/logout are not in the
# COMMANDS table until the engine CLI registers them.
_CLI = """
import os, sys
from cove.cli.engine import Context, run, run_module
verbs = {"pull": "image_pull", "push": "image_push", "login": "login", "logout": "logout"}
root, verb, *rest = sys.argv[1:]
if verb in verbs:
    ctx = Context(os.path.abspath(root), False)
    sys.exit(run_module(verbs[verb], "cove " + verb, verb, rest, ctx))
sys.exit(run(["--root", root, verb, *rest]))
"""


def cove(
    root: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI, str(root), *args], input=stdin,
        capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _need_registry() -> None:
    if not os.path.exists(REGISTRY):
        print(f"skipping: {REGISTRY} is missing (apt-get install docker-registry)")
        pytest.skip(f"{REGISTRY} is missing (Debian package docker-registry)")


class Registry:
    def __init__(self, folder: Path, htpasswd: Path | None = None) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = folder / "config.yml"
        lines = [
            "version: 0.1",
            "log:",
            "  level: error",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {folder / 'data'}",
            "http:",
            f"  addr: {self.address}",
        ]
        if htpasswd is not None:
            lines += ["auth:", "  htpasswd:", "    realm: cove-test", f"    path: {htpasswd}"]
        config.write_text("\n".join(lines) + "\n")
        self.log = open(folder / "registry.log", "wb")  # closed in stop()
        self.process = subprocess.Popen(
            [REGISTRY, "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise AssertionError(
            f"docker-registry did not start: {(folder / 'registry.log').read_text()}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    _need_registry()
    folder = tmp_path / "registry"
    folder.mkdir()
    server = Registry(folder)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rootfs_tar(busybox_rootfs: Path, tmp_path: Path) -> Path:
    path = tmp_path / "rootfs.tar"
    with tarfile.open(path, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    return path


def skopeo() -> str:
    found = shutil.which("skopeo")
    if found is None:
        print("skipping: skopeo is not installed")
        pytest.skip("skopeo (Debian package) is not installed")
    return found


def test_push_inspect_pull_same_id(tmp_path: Path, registry: Registry, rootfs_tar: Path) -> None:
    root = tmp_path / "one"
    res = cove(root, "import", str(rootfs_tar), "bb:local")
    assert res.returncode == 0, res.stderr
    image_id = res.stdout.strip()
    target = f"{registry.address}/test/bb:1"
    assert cove(root, "tag", "bb:local", target).returncode == 0
    res = cove(root, "push", target)
    assert res.returncode == 0, res.stderr
    assert "Pushed" in res.stdout and "1: digest: sha256:" in res.stdout
    done = subprocess.run(
        [skopeo(), "inspect", "--tls-verify=false", f"docker://{target}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["Os"] == "linux" and len(info["Layers"]) == 1
    # a second push finds the layer there
    res = cove(root, "push", target)
    assert res.returncode == 0 and "Layer already exists" in res.stdout, res.stderr
    fresh = tmp_path / "two"
    res = cove(fresh, "pull", target)
    assert res.returncode == 0, res.stderr
    assert "Pull complete" in res.stdout and f"Digest: {info['Digest']}" in res.stdout
    assert res.stdout.strip().splitlines()[-1] == target
    listed = cove(fresh, "images", "--no-trunc", "--format", "{{.ID}}").stdout.split()
    assert listed == [image_id]
    res = cove(fresh, "pull", "-q", target)
    assert res.returncode == 0 and res.stdout == f"{target}\n"
    # cross-repository mount: the fresh store knows test/bb holds the layer
    assert cove(fresh, "tag", target, f"{registry.address}/other/bb:2").returncode == 0
    res = cove(fresh, "push", f"{registry.address}/other/bb:2")
    assert res.returncode == 0, res.stderr
    assert "Mounted from test/bb" in res.stdout
    # an unknown tag
    res = cove(fresh, "pull", f"{registry.address}/test/bb:nope")
    assert res.returncode == 1 and "manifest unknown" in res.stderr


def test_skopeo_copy_then_pull(tmp_path: Path, registry: Registry, rootfs_tar: Path) -> None:
    root = tmp_path / "src"
    res = cove(root, "import", str(rootfs_tar), "bb:sk")
    assert res.returncode == 0, res.stderr
    image_id = res.stdout.strip()
    target = f"{registry.address}/copied/bb:v1"
    done = subprocess.run(
        [skopeo(), "copy", "--dest-tls-verify=false", f"oci:{root / 'images'}:sk",
         f"docker://{target}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    fresh = tmp_path / "dst"
    res = cove(fresh, "pull", "--platform", "linux/amd64", target)
    assert res.returncode == 0, res.stderr
    ids = cove(fresh, "images", "--no-trunc", "--format", "{{.ID}}").stdout.split()
    assert ids == [image_id]


def _multi_layer_image(store: ImageStore, count: int, size: int) -> str:
    layers, diff_ids = [], []
    for n in range(count):
        buf = _tar_with(f"layer{n}/data", os.urandom(size))
        diff_ids.append(str(Digest.of(buf)))
        blob = gzip.compress(buf, compresslevel=1)
        info = store.put_blob(blob)
        layers.append({"mediaType": OCI_LAYER_GZIP, "digest": str(info.digest), "size": info.size})
    config = canonical_json({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })  # fmt: skip
    config_info = store.put_blob(config)
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": str(config_info.digest),
                   "size": config_info.size},
        "layers": layers,
    })  # fmt: skip
    record = store.add_image(store.put_blob(manifest).digest, names=["multi:1"])
    return str(record.id)


def _tar_with(name: str, data: bytes) -> bytes:
    import io

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_multi_layer_chunked_push_parallel_pull(tmp_path: Path, registry: Registry) -> None:
    root = tmp_path / "multi"
    with ImageStore(root / "images") as store:
        image_id = _multi_layer_image(store, 4, 3 << 20)
        target = f"{registry.address}/multi/img:1"
        # small chunks: the big layers go up in several PATCH requests
        result = push(store, target, source="multi:1", chunk_size=1 << 20)
    assert result.size > 0
    done = subprocess.run(
        [skopeo(), "inspect", "--tls-verify=false", f"docker://{target}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["Layers"]) == 4
    fresh = tmp_path / "fresh"
    res = cove(fresh, "pull", target)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count("Pull complete") == 4
    ids = cove(fresh, "images", "--no-trunc", "--format", "{{.ID}}").stdout.split()
    assert ids == [image_id]


def _htpasswd(path: Path, user: str, password: str) -> bool:
    tool = shutil.which("htpasswd")
    if tool is not None:
        done = subprocess.run([tool, "-Bbc", str(path), user, password], capture_output=True)
        return done.returncode == 0
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError:
        return False
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    path.write_text(f"{user}:{hashed}\n")
    return True


def test_htpasswd_login_pull_push_logout(
    tmp_path: Path, registry: Registry, rootfs_tar: Path
) -> None:
    _need_registry()
    folder = tmp_path / "secured"
    folder.mkdir()
    passwd = folder / "htpasswd"
    if not _htpasswd(passwd, "alice", "s3cret"):
        print("skipping: neither htpasswd (apache2-utils) nor the bcrypt module is available")
        pytest.skip("no bcrypt tool: apt-get install apache2-utils or pip install bcrypt")
    secured = Registry(folder, passwd)
    try:
        env = {"DOCKER_CONFIG": str(tmp_path / "docker-config")}
        root = tmp_path / "engine"
        assert cove(root, "import", str(rootfs_tar), "bb:x").returncode == 0
        target = f"{secured.address}/private/bb:1"
        assert cove(root, "tag", "bb:x", target).returncode == 0
        res = cove(root, "push", target, env=env)
        assert res.returncode == 1 and "unauthorized" in res.stderr.lower(), res.stderr
        res = cove(root, "login", "-u", "alice", "--password-stdin", secured.address,
                   stdin="wrong\n", env=env)  # fmt: skip
        assert res.returncode == 1 and "unauthorized" in res.stderr.lower(), res.stderr
        res = cove(root, "login", "-u", "alice", "--password-stdin", secured.address,
                   stdin="s3cret\n", env=env)  # fmt: skip
        assert res.returncode == 0 and "Login Succeeded" in res.stdout, res.stderr
        config = tmp_path / "docker-config" / "config.json"
        assert config.stat().st_mode & 0o777 == 0o600
        assert secured.address in json.loads(config.read_text())["auths"]
        res = cove(root, "push", target, env=env)
        assert res.returncode == 0, res.stderr
        fresh = tmp_path / "fresh"
        res = cove(fresh, "pull", target, env=env)
        assert res.returncode == 0, res.stderr
        res = cove(root, "logout", secured.address, env=env)
        assert res.returncode == 0 and "Removing login credentials" in res.stdout
        assert secured.address not in json.loads(config.read_text())["auths"]
        res = cove(tmp_path / "third", "pull", target, env=env)
        assert res.returncode == 1 and "unauthorized" in res.stderr.lower(), res.stderr
    finally:
        secured.stop()
