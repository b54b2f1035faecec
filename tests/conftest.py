"""Shared fixtures: a busybox rootfs with the coveprobe helper, bundles, runtime drivers.

Session fixtures
    coveprobe        Path of the static probe binary built from tests/helper/coveprobe.c
    busybox_rootfs   Path of a pristine rootfs (never modify it; bundles copy it)
    reference_spec   dict: `runc spec` output (falls back to `crun spec`)

Per-test fixtures
    bundle           factory: bundle(name="bundle") -> tests.lib.bundle.Bundle
    runtime          tests.lib.runtimes.Runtime, parametrized over cove, runc, crun
    make_runtime     factory: make_runtime(name) -> Runtime (for cove-only tests)
    short_tmp        a short directory under /tmp (for unix socket paths)

Tests that need root are skipped when not running as root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lib.bundle import Bundle, make_bundle
from tests.lib.runtimes import RUNTIME_NAMES, Runtime, mounts_under, runtime_argv

# Network safety: the engine's DNS responder forwards names it does not know to the host's
# resolvers. Tests send no traffic beyond loopback and their own namespaces, so in every
# test (and every cove process a test starts) it forwards to a closed port on loopback.
os.environ.setdefault("COVE_DNS_UPSTREAMS", "127.0.0.1:9")

TESTS_DIR = Path(__file__).resolve().parent
PROBE_SOURCE = TESTS_DIR / "helper" / "coveprobe.c"
BUSYBOX = Path("/bin/busybox")

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
nobody:x:1000:1000:unprivileged test user:/tmp:/bin/sh
"""
GROUP = """\
root:x:0:
wheel:x:10:
users:x:100:
nobody:x:1000:
"""


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (real namespaces and mounts)")


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cove-session")


@pytest.fixture(scope="session")
def coveprobe(session_dir: Path) -> Path:
    """Build the probe once per session with `gcc -static -O2`."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed: cannot build tests/helper/coveprobe.c")
    out = session_dir / "coveprobe"
    res = subprocess.run(
        [gcc, "-static", "-O2", "-Wall", "-o", str(out), str(PROBE_SOURCE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if res.returncode != 0:
        pytest.fail(f"building coveprobe failed:\n{res.stderr}")
    return out


@pytest.fixture(scope="session")
def busybox_rootfs(session_dir: Path, coveprobe: Path) -> Path:
    """A minimal rootfs: static busybox with applet links, users, and /bin/coveprobe."""
    _need_root()
    if not BUSYBOX.is_file():
        pytest.skip("/bin/busybox (busybox-static) not installed")
    rootfs = session_dir / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp", "root", "srv"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "root").chmod(0o700)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    # inside the chroot the links point at /bin/busybox of the rootfs, not the host's
    subprocess.run(
        ["chroot", str(rootfs), "/bin/busybox", "--install", "-s", "/bin"],
        check=True,
        timeout=60,
    )
    (rootfs / "etc" / "passwd").write_text(PASSWD)
    (rootfs / "etc" / "group").write_text(GROUP)
    (rootfs / "etc" / "hostname").write_text("rootfs\n")
    shutil.copy2(coveprobe, rootfs / "bin" / "coveprobe")
    return rootfs


@pytest.fixture(scope="session")
def reference_spec(session_dir: Path) -> dict[str, Any]:
    """The default config of the reference runtime (`runc spec`, else `crun spec`)."""
    spec_dir = session_dir / "reference-spec"
    spec_dir.mkdir(exist_ok=True)
    for name in ("runc", "crun"):
        binary = shutil.which(name) or shutil.which(f"/usr/sbin/{name}")
        if binary is None:
            continue
        res = subprocess.run(
            [binary, "spec"], cwd=spec_dir, capture_output=True, text=True, timeout=30
        )
        path = spec_dir / "config.json"
        if res.returncode == 0 and path.exists():
            data: dict[str, Any] = json.loads(path.read_text())
            return data
    pytest.skip("neither runc nor crun available to produce a reference config.json")


@pytest.fixture
def bundle(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    busybox_rootfs: Path,
    reference_spec: dict[str, Any],
) -> Callable[..., Bundle]:
    """Factory: `bundle(name="bundle")` -> a fresh Bundle under this test's tmp_path.

    The rootfs copies of a test that passed are removed once all its fixtures
    are torn down (containers deleted); a failed test keeps them for debugging.
    """

    def factory(name: str = "bundle") -> Bundle:
        b = make_bundle(tmp_path, busybox_rootfs, reference_spec, name=name)
        request.node.stash.setdefault(_ROOTFS_COPIES, []).append(b.rootfs)
        return b

    return factory


_ROOTFS_COPIES = pytest.StashKey[list[Path]]()
_TEST_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if report.failed:
        item.stash[_TEST_FAILED] = True


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    outcome = yield
    copies = item.stash.get(_ROOTFS_COPIES, [])
    failed = item.stash.get(_TEST_FAILED, False) or outcome.excinfo is not None  # type: ignore[attr-defined]
    if failed:
        return
    for rootfs in copies:
        # never recurse into something mounted there (a leaked bind mount could be the host)
        if rootfs.is_dir() and not mounts_under(rootfs):
            shutil.rmtree(rootfs, ignore_errors=True)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short path under /tmp: unix socket paths must stay below 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="cove-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _make_runtime(name: str, root: Path, watch: Path) -> Runtime:
    _need_root()
    argv, why = runtime_argv(name)
    if argv is None:
        print(f"skipping {name}: {why}")
        pytest.skip(why)
    return Runtime(name, argv, root, watch=[watch])


@pytest.fixture
def make_runtime(tmp_path: Path) -> Iterator[Callable[[str], Runtime]]:
    """Factory for a driver of one named runtime, cleaned up and leak-checked at teardown."""
    made: list[Runtime] = []

    def factory(name: str = "cove") -> Runtime:
        rt = _make_runtime(name, tmp_path / f"state-{name}-{len(made)}", tmp_path)
        made.append(rt)
        return rt

    yield factory
    problems = [f"{rt.name}: {p}" for rt in made for p in rt.cleanup()]
    if problems:
        pytest.fail("leaks after test:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(params=RUNTIME_NAMES)
def runtime(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """The runtime under test: cove, runc, then crun, each with its own --root."""
    rt = _make_runtime(str(request.param), tmp_path / "state", tmp_path)
    yield rt
    problems = rt.cleanup()
    if problems:
        pytest.fail(f"{rt.name} leaked:\n" + "\n".join(problems), pytrace=False)
