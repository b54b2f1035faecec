"""The seed's nginx, for real: from `cove image bootstrap --from-host host:seed`, a detached
container runs `apt-get update && apt-get install -y nginx && nginx -g "daemon off;"` with
port 80 published, and the host fetches nginx's page; `stop` and `rm` leave nothing mounted
and nothing of nginx on the host.

No internet: apt reads a local repository of nginx's .debs (downloaded once by
`tools/install.sh --test` into /var/cache/cove-tests/debs), served by `python3 -m
http.server` in a network namespace of the test's own, linked to the host by a veth on
10.254.253.0/30 (test_network's `upstream` uses 10.254.254.0/30: the two may run at once).
The container's copy of /etc/apt points at it; the host's sources stay as they are."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.engine.test_lifecycle import last_resort
from tests.integration.image.test_import import cove
from tests.lib.netns import serving_namespace

pytestmark = pytest.mark.root

DEBS = Path(os.environ.get("COVE_TEST_DEBS", "/var/cache/cove-tests/debs"))
REPO_HOST, REPO_PEER, REPO_PORT = "10.254.253.1", "10.254.253.2", 8080
APT_TIMEOUT = 120.0  # apt-get update + install in the container, generously
SOURCES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")


def ok(root: Path, *args: str) -> str:
    res = cove(root, *args)
    assert res.returncode == 0, f"cove {' '.join(args)}: {res.returncode}: {res.stderr}"
    return res.stdout


def the_debs() -> list[Path]:
    debs = sorted(DEBS.glob("*.deb")) if DEBS.is_dir() else []
    names = {deb.name.split("_", 1)[0] for deb in debs}
    if not {"nginx", "nginx-common"} <= names:
        pytest.fail(f"nginx's .debs are not in {DEBS}: run `tools/install.sh --test` (it downloads"
                    " them once for this test)")  # fmt: skip
    return debs


def write_repository(folder: Path, debs: list[Path]) -> None:
    """A flat apt repository (`deb [trusted=yes] URL ./`): the .debs and a Packages file of
    their control fields plus Filename, Size and SHA256."""
    folder.mkdir()
    stanzas = []
    for deb in debs:
        data = deb.read_bytes()
        (folder / deb.name).write_bytes(data)
        fields = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True,
                                check=True).stdout.rstrip("\n")  # fmt: skip
        stanzas.append(f"{fields}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"SHA256: {hashlib.sha256(data).hexdigest()}\n")  # fmt: skip
    (folder / "Packages").write_text("\n".join(stanzas))


@pytest.fixture
def apt_repo(tmp_path: Path) -> Iterator[str]:
    """The local repository's URL, served from a network namespace of the test's own."""
    repo = tmp_path / "repo"
    write_repository(repo, the_debs())
    tag = f"{os.getpid() % 0xFFFF:04x}"
    with serving_namespace(
        f"covetest-apt-{tag}",
        (f"cvta{tag}", f"cvtb{tag}"),
        (REPO_HOST, REPO_PEER),
        ["-m", "http.server", "--bind", REPO_PEER, "--directory", str(repo), str(REPO_PORT)],
        REPO_PORT,
        quiet=True,
        not_listening="the repository's server does not listen",
    ):
        yield f"http://{REPO_PEER}:{REPO_PORT}/"


@pytest.fixture
def seed(tmp_path: Path) -> Iterator[Path]:
    """An engine root with host:seed; what a failed test leaves is stopped and removed."""
    root = tmp_path / "engine"
    ok(root, "image", "bootstrap", "--from-host", "host:seed")
    try:
        yield root
    finally:
        if cove(root, "ps", "-a", "-q").stdout.strip():
            last_resort(root)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def mounts(tmp_path: Path) -> set[str]:
    """The host's mounts (target, type, source), less those that other tests and engines
    running on this machine at the same time make and remove: in their own temporary
    folders (engine roots, volumes) and their network namespaces."""
    out = subprocess.run(["findmnt", "-rn", "-o", "TARGET,FSTYPE,SOURCE"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    mine = str(tmp_path) + "/"
    found = set()
    for line in out.splitlines():
        target = line.split(" ", 1)[0]
        if target.startswith("/run/netns/") and "covetest-apt-" not in target:
            continue
        if target.startswith("/tmp/") and not target.startswith(mine):
            continue
        found.add(line)
    return found


def sources_digest() -> dict[str, str]:
    found = {}
    for top in SOURCES:
        paths = [Path(top)] if Path(top).is_file() else sorted(Path(top).glob("*"))
        for path in paths:
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def nginx_on_the_host() -> bool:
    installed = subprocess.run(["dpkg", "-s", "nginx"], capture_output=True).returncode == 0
    return installed or os.path.lexists("/usr/sbin/nginx")


def test_seed_nginx_answers_the_host_and_leaves_nothing(
    seed: Path, apt_repo: str, tmp_path: Path
) -> None:
    assert not nginx_on_the_host(), "nginx is installed on this host: the test proves nothing"
    before, sources = mounts(tmp_path), sources_digest()
    assert sources, "the host has no apt sources to keep"
    port = free_port()
    script = (
        "rm -f /etc/apt/sources.list /etc/apt/sources.list.d/* && "
        f"echo 'deb [trusted=yes] {apt_repo} ./' > /etc/apt/sources.list.d/local.list && "
        'apt-get update && apt-get install -y nginx && nginx -g "daemon off;"'
    )
    started = time.monotonic()
    ok(seed, "run", "-d", "-p", f"{port}:80", "--name", "web", "host:seed", "sh", "-c", script)
    page, deadline = "", started + APT_TIMEOUT
    while "Welcome to nginx" not in page:
        state = ok(seed, "inspect", "-f", "{{.State.Status}}", "web").strip()
        assert state == "running" and time.monotonic() < deadline, (
            f"no nginx page after {time.monotonic() - started:.0f} s (container {state}):\n"
            + cove(seed, "logs", "web").stdout[-3000:]
        )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                page = response.read().decode()
        except OSError:
            time.sleep(0.5)
    print(f"nginx answered {time.monotonic() - started:.1f} s after run")
    logs = cove(seed, "logs", "web")
    # Debian's package scripts asked to start nginx and policy-rc.d said no: one nginx, ours
    assert "policy-rc.d denied execution of start" in logs.stdout + logs.stderr
    masters = [line for line in ok(seed, "top", "web").splitlines() if "nginx: master" in line]
    assert len(masters) == 1, masters
    # the install went to the container's copy of /usr and /var/lib, never to the host's
    uppers = sorted(seed.glob("snapshots/ctr-*/host/usr/upper"))
    assert len(uppers) == 1 and (uppers[0] / "sbin" / "nginx").is_file()
    assert (uppers[0].parent.parent / "var_lib" / "upper" / "dpkg" / "status").is_file()
    assert not nginx_on_the_host()
    # the copy-on-write mounts are the container's: the host's mount table never has them
    assert "host/usr/upper" not in Path("/proc/self/mountinfo").read_text()

    ok(seed, "stop", "web")
    ok(seed, "rm", "web")
    assert mounts(tmp_path) == before
    assert str(seed) not in Path("/proc/self/mountinfo").read_text()
    assert list(seed.glob("snapshots/ctr-*")) == [] and list(seed.glob("**/upper")) == []
    assert not nginx_on_the_host()
    assert sources_digest() == sources  # the container removed its copy of them only
