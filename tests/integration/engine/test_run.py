"""`cove run` (foreground), `cove ps`, `cove rm` on real containers from an imported
busybox image: exit codes, cleanup, limits, and the same results through runc and crun."""

from __future__ import annotations

import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.integration.image.test_import import cove, cove_cli

pytestmark = pytest.mark.root


@pytest.fixture
def engine(tmp_path: Path, busybox_rootfs: Path) -> Path:
    root = tmp_path / "engine"
    rootfs_tar = tmp_path / "rootfs.tar"
    with tarfile.open(rootfs_tar, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    assert cove(root, "import", str(rootfs_tar), "bb:1").returncode == 0
    return root


def nothing_left(root: Path) -> None:
    assert str(root) not in Path("/proc/self/mountinfo").read_text()
    snapshots = root / "snapshots"
    assert not snapshots.exists() or not any(p.name.startswith("ctr-") for p in snapshots.iterdir())
    runtime_state = root / "runtime"
    for runtime_dir in runtime_state.glob("*") if runtime_state.exists() else []:
        assert [p.name for p in runtime_dir.iterdir() if not p.name.startswith(".")] == []
    containers = root / "containers"
    assert not containers.exists() or [p.name for p in containers.iterdir()] == []


def test_run_rm_gives_output_and_exit_code(engine: Path) -> None:
    res = cove(engine, "run", "--rm", "bb:1", "sh", "-c", "echo hi from $(hostname); exit 3")
    assert res.returncode == 3, res.stderr
    assert res.stdout.startswith("hi from ")
    assert len(res.stdout.split()[-1]) == 12  # hostname: the short container id
    assert cove(engine, "ps", "-a", "-q").stdout == ""
    nothing_left(engine)


def test_kept_container_is_listed_then_removed(engine: Path) -> None:
    assert cove(engine, "run", "--name", "keeper", "bb:1", "true").returncode == 0
    listed = cove(engine, "ps", "-a").stdout
    assert "keeper" in listed and "Exited (0)" in listed
    assert cove(engine, "ps").stdout.count("\n") == 1  # only the header: nothing running
    conflict = cove(engine, "run", "--name", "keeper", "bb:1", "true")
    assert conflict.returncode == 125 and "already in use" in conflict.stderr
    assert cove(engine, "rm", "keeper").returncode == 0
    assert cove(engine, "ps", "-a", "-q").stdout == ""
    nothing_left(engine)


def test_docker_exit_codes_and_nothing_created(engine: Path) -> None:
    assert cove(engine, "run", "--rm", "bb:1", "/no/such/program").returncode == 127
    assert cove(engine, "run", "--rm", "--pull", "never", "no-such-image", "true").returncode == 125
    bad = cove(engine, "run", "--rm", "--memory", "5x", "bb:1", "true")
    assert bad.returncode == 125 and "--memory" in bad.stderr
    assert cove(engine, "ps", "-a", "-q").stdout == ""
    nothing_left(engine)


@pytest.mark.parametrize("runtime", ["cove", "runc", "crun"])
def test_same_results_through_each_runtime(engine: Path, runtime: str) -> None:
    script = ("cat /sys/fs/cgroup/pids/pids.max; grep CapEff /proc/self/status; "
              "ip -o link | wc -l; exit 7")  # fmt: skip
    res = cove(engine, "run", "--rm", "--runtime", runtime, "--pids-limit", "77",
               "--network", "none", "bb:1", "sh", "-c", script)  # fmt: skip
    assert res.returncode == 7, res.stderr
    pids, caps, links = res.stdout.split("\n")[:3]
    assert pids == "77"
    assert caps.split()[1] == "00000000a80425fb"  # docker's 14 default capabilities
    assert links == "1"  # --network none: only lo
    nothing_left(engine)


def test_ctrl_c_reaches_the_container(engine: Path) -> None:
    process = subprocess.Popen(
        # PID 1 ignores signals it has no handler for (as with docker): the shell traps it.
        [cove_cli(), "--root", str(engine), "run", "--rm", "bb:1", "sh", "-c",
         "trap 'exit 143' TERM; sleep 60 & wait"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and cove(engine, "ps", "-q").stdout == "":
        time.sleep(0.1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 128 + signal.SIGTERM
    nothing_left(engine)
