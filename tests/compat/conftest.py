"""`cove serve` driven by the real Docker clients: the docker CLI (Debian's docker.io
gives the client; /usr/local/bin/docker where installed) and the Docker SDK for Python.

Session fixture
    api         an ApiServer: `cove --root ROOT serve -H unix://SOCKET` with a busybox
                image imported as busybox:latest (and bb:1); its log is printed when a
                test fails
Per-test fixtures
    docker      run the docker CLI against the server: docker("ps", "-a") -> CompletedProcess
    client      a docker.DockerClient connected to the server
    (autouse)   after each test every container, user network and unused volume the test
                left is removed, so tests do not see each other's objects
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.integration.image.test_import import cove_cli
from tests.lib.dockerd import DockerdUnavailable, PrivateDockerd, start_dockerd

pytestmark = pytest.mark.root

DockerCli = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class ApiServer:
    root: Path
    socket: Path
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def cove(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The engine CLI on the server's root (to check what the API did)."""
        return subprocess.run([cove_cli(), "--root", str(self.root), *args],
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip


def docker_binary() -> str:
    found = shutil.which("docker")
    if found is None:
        pytest.fail("the docker CLI is not installed: run tools/install.sh --test")
    return found


def wait_for_socket(path: Path, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"cove serve exited ({process.returncode}):\n{log.read_text()}")
        if path.exists():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                return
            except OSError:
                pass
            finally:
                probe.close()
        time.sleep(0.05)
    pytest.fail(f"cove serve did not listen on {path}:\n{log.read_text()}")


@pytest.fixture(scope="session")
def api(busybox_rootfs: Path) -> Iterator[ApiServer]:
    if os.geteuid() != 0:
        pytest.skip("needs root (cove serve runs real containers)")
    work = Path(tempfile.mkdtemp(prefix="cove-api-", dir="/tmp"))
    root = work / "root"
    rootfs_tar = work / "rootfs.tar"
    with tarfile.open(rootfs_tar, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    imported = subprocess.run([cove_cli(), "--root", str(root), "import", str(rootfs_tar),
                               "busybox:latest"], capture_output=True, text=True)  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    tagged = subprocess.run([cove_cli(), "--root", str(root), "tag", "busybox:latest", "bb:1"],
                            capture_output=True, text=True)  # fmt: skip
    assert tagged.returncode == 0, tagged.stderr
    sock = work / "api.sock"
    log = work / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [cove_cli(), "--root", str(root), "serve", "-H", f"unix://{sock}",
             "--log-level", "debug"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = ApiServer(root, sock, log, process)
    try:
        wait_for_socket(sock, process, log)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        leftovers = server.cove("ps", "-aq").stdout.split()
        if leftovers:
            server.cove("rm", "-f", *leftovers)
        server.cove("system", "check", "--repair")
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(autouse=True)
def _clean_between_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "api" not in request.fixturenames:
        return
    server: ApiServer = request.getfixturevalue("api")
    leftovers = server.cove("ps", "-aq").stdout.split()
    if leftovers:
        server.cove("rm", "-f", "-v", *leftovers)
    server.cove("network", "prune", "-f")
    server.cove("volume", "prune", "-f")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("api")
    if report.failed and isinstance(server, ApiServer) and server.log.exists():
        tail = server.log.read_text(errors="replace")[-6000:]
        report.sections.append(("cove serve log (tail)", tail))


@pytest.fixture
def docker(api: ApiServer, tmp_path: Path) -> DockerCli:
    config = tmp_path / "docker-config"
    config.mkdir()
    env = {**os.environ, "DOCKER_HOST": api.url, "DOCKER_CONFIG": str(config),
           "DOCKER_BUILDKIT": "0", "DOCKER_CLI_HINTS": "false"}  # fmt: skip
    binary = docker_binary()

    def run(*args: str, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return subprocess.run([binary, *args], input=input, capture_output=True, text=True,
                              env=env, timeout=timeout)  # fmt: skip

    return run


@pytest.fixture
def client(api: ApiServer) -> Iterator[Any]:
    docker_sdk = pytest.importorskip("docker", reason="PyPI docker (the SDK) is not installed")
    sdk = docker_sdk.DockerClient(base_url=api.url, timeout=60)
    try:
        yield sdk
    finally:
        sdk.close()


# --- the same flows against Debian's dockerd -----------------------------------------------
#
# Session fixture
#     dockerd            a private dockerd 20.10 (tests/lib/dockerd.py: its own containerd,
#                        data root, sockets and namespaces, no iptables, no bridge) holding
#                        the busybox image of `api` (busybox:latest and bb:1, loaded from a
#                        `cove save` archive, so the image id is the same in both engines)
# Per-test fixture
#     engine_under_test  parametrized "cove" / "dockerd": EngineUnderTest(name, docker,
#                        client), the docker CLI runner and a docker-py client for that
#                        engine; objects the test leaves (containers, networks, volumes,
#                        image tags) are removed afterwards


class EngineUnderTest(NamedTuple):
    name: str
    docker: DockerCli
    client: Any


@pytest.fixture(scope="session")
def dockerd(api: ApiServer) -> Iterator[PrivateDockerd]:
    base = Path(tempfile.mkdtemp(prefix="cove-dockerd-", dir="/tmp"))
    try:
        daemon = start_dockerd(base)
    except DockerdUnavailable as exc:
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"the private dockerd is needed for the parity tests: {exc}")
    try:
        archive = base / "busybox.tar"
        saved = api.cove("save", "-o", str(archive), "busybox:latest", "bb:1")
        assert saved.returncode == 0, saved.stderr
        loaded = daemon.docker("load", "-i", str(archive))
        assert loaded.returncode == 0, f"docker load into dockerd: {loaded.stderr}"
        archive.unlink()
        yield daemon
    finally:
        forced = daemon.stop()
        assert not forced, f"the private dockerd did not stop cleanly: {forced}"


def _cli_runner(url: str, config: Path) -> DockerCli:
    config.mkdir(exist_ok=True)
    env = {**os.environ, "DOCKER_HOST": url, "DOCKER_CONFIG": str(config),
           "DOCKER_BUILDKIT": "0", "DOCKER_CLI_HINTS": "false"}  # fmt: skip
    binary = docker_binary()

    def run(*args: str, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:  # fmt: skip
        return subprocess.run([binary, *args], input=input, capture_output=True, text=True,
                              env=env, timeout=timeout)  # fmt: skip

    return run


def _image_tags(run: DockerCli) -> set[str]:
    listed = run("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert listed.returncode == 0, listed.stderr
    return {tag for tag in listed.stdout.split() if not tag.endswith(":<none>")}


@pytest.fixture(params=["cove", "dockerd"])
def engine_under_test(
    request: pytest.FixtureRequest, api: ApiServer, tmp_path: Path
) -> Iterator[EngineUnderTest]:
    import docker as docker_sdk  # type: ignore[import-untyped]

    name = str(request.param)
    if name == "cove":
        url = api.url
    else:
        daemon: PrivateDockerd = request.getfixturevalue("dockerd")
        url = daemon.url
    run = _cli_runner(url, tmp_path / f"docker-config-{name}")
    tags_before = _image_tags(run)
    sdk = docker_sdk.DockerClient(base_url=url, timeout=60)
    try:
        yield EngineUnderTest(name, run, sdk)
    finally:
        sdk.close()
        # cove's containers, networks and volumes: the autouse clean-up (it sees `api`)
        if name == "dockerd":
            ids = run("ps", "-aq").stdout.split()
            if ids:
                run("rm", "-f", "-v", *ids)
            run("network", "prune", "-f")
            volumes = run("volume", "ls", "-q").stdout.split()
            if volumes:
                run("volume", "rm", "-f", *volumes)
        new_tags = _image_tags(run) - tags_before
        if new_tags:
            run("rmi", "-f", *sorted(new_tags))
