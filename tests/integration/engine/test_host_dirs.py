"""The host folders of `cove image bootstrap --from-host` images in containers
(`cove.engine.host_dirs`): copy-on-write per container, so writes, deletions and installs
inside go to the container's own upper dirs (in its snapshot folder) and never to the host;
they last as long as the container (stop/start keeps them, rm removes them, `system check
--repair` removes those of a half-made one), are made inside the container's mount
namespace only, and are neither in `cove diff` nor in `cove commit`. `--read-only` keeps
them read-only; a host path overlayfs options cannot carry falls back to read-only binds."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.engine.test_crash_repair import CRASHING_CLI, SRC, repaired
from tests.integration.engine.test_lifecycle import (
    LOOP,
    last_resort,
    ok,
    poll,
    remove_everything,
)
from tests.integration.image.test_import import cove, cove_cli

pytestmark = pytest.mark.root


@pytest.fixture
def seed(tmp_path: Path) -> Iterator[Path]:
    """An engine root with host:seed; emptied and checked for leftovers afterwards."""
    root = tmp_path / "engine"
    ok(root, "image", "bootstrap", "--from-host", "host:seed")
    yield root
    try:
        remove_everything(root)
    except BaseException:
        last_resort(root)
        raise


def snapshot_of(root: Path, container: str) -> Path:
    cid = ok(root, "inspect", "-f", "{{.Id}}", container).strip()
    return root / "snapshots" / f"ctr-{cid[:32]}"


def spec_mounts(root: Path, container: str) -> dict[str, dict[str, Any]]:
    cid = ok(root, "inspect", "-f", "{{.Id}}", container).strip()
    config = json.loads((root / "containers" / cid / "bundle" / "config.json").read_text())
    return {m["destination"]: m for m in config["mounts"]}


def test_writes_go_to_the_containers_copy_and_go_with_it(seed: Path) -> None:
    mark = f"cove-host-dirs-{uuid.uuid4().hex[:12]}"
    assert not Path("/etc/debian_version").is_symlink()
    script = (
        f"echo run >> /usr/{mark}; echo e > /etc/{mark}; echo v > /var/lib/{mark}; "
        f"rm /etc/debian_version; echo r > /root/{mark}; cat /usr/{mark}; "
        "tail -1 /usr/sbin/policy-rc.d; grep -c ' overlay ' /proc/self/mountinfo"
    )
    assert ok(seed, "run", "--name", "cw", "host:seed", "sh", "-c", script).split() == [
        "run", "exit", "101", "4"  # /, /usr, /etc, /var/lib
    ]  # fmt: skip
    for folder in ("/usr", "/etc", "/var/lib"):
        assert not os.path.lexists(f"{folder}/{mark}"), folder
    assert Path("/etc/debian_version").read_text().startswith("12.")
    host = snapshot_of(seed, "cw") / "host"
    assert sorted(p.name for p in host.iterdir()) == ["etc", "usr", "var_lib"]
    assert (host / "usr" / "upper" / mark).read_text() == "run\n"
    assert (host / "var_lib" / "upper" / mark).read_text() == "v\n"
    whiteout = os.lstat(host / "etc" / "upper" / "debian_version")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0  # overlayfs' deletion
    for name, source in (("usr", "/usr"), ("etc", "/etc"), ("var_lib", "/var/lib")):
        upper, real = os.stat(host / name / "upper"), os.stat(source)
        assert (upper.st_mode, upper.st_uid, upper.st_gid) == (
            real.st_mode, real.st_uid, real.st_gid
        ), name  # fmt: skip
    mounts = spec_mounts(seed, "cw")
    assert mounts["/usr"]["type"] == "overlay" and mounts["/etc"]["type"] == "overlay"
    assert any(str(o).startswith("upperdir=") for o in mounts["/var/lib"]["options"])
    # a second start finds the copy as the first left it
    assert ok(seed, "start", "-a", "cw").split()[:2] == ["run", "run"]
    # diff and commit see the root snapshot only: /root, not the host's folders
    diff = ok(seed, "diff", "cw").splitlines()
    assert f"A /root/{mark}" in diff
    assert not [line for line in diff if mark in line and "/root/" not in line], diff
    ok(seed, "commit", "cw", "committed:1")
    script = f"cat /root/{mark}; cat /usr/{mark} 2>&1; tail -1 /usr/sbin/policy-rc.d"
    again = cove(seed, "run", "--rm", "committed:1", "sh", "-c", script)
    assert again.stdout.splitlines()[0] == "r" and "No such file" in again.stdout
    assert again.stdout.splitlines()[-1] == "exit 101"
    snapshot = snapshot_of(seed, "cw")
    ok(seed, "rm", "cw")
    assert not snapshot.exists()
    assert str(seed) not in Path("/proc/self/mountinfo").read_text()


def test_the_overlays_are_in_the_containers_namespace_only(seed: Path) -> None:
    cid = ok(seed, "run", "-d", "host:seed", "sh", "-c", LOOP).strip()
    upper = str(snapshot_of(seed, cid) / "host" / "usr" / "upper")
    pid = ok(seed, "inspect", "-f", "{{.State.Pid}}", cid).strip()
    assert f"upperdir={upper}" in Path(f"/proc/{pid}/mountinfo").read_text()
    assert upper not in Path("/proc/self/mountinfo").read_text()
    ok(seed, "rm", "-f", cid)


def test_cp_of_a_running_container_walks_into_them(tmp_path: Path) -> None:
    host = tmp_path / "host"
    (host / "usr" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", host / "usr" / "bin" / "busybox")
    for applet in ("sh", "sleep"):
        (host / "usr" / "bin" / applet).symlink_to("busybox")
    (host / "bin").symlink_to("usr/bin")
    root = tmp_path / "engine"
    ok(root, "image", "bootstrap", "--from-host", "--host-root", str(host), "fake:1")
    try:
        script = f"echo made > /usr/made; {LOOP}"
        cid = ok(root, "run", "-d", "fake:1", "sh", "-c", script).strip()
        poll(lambda: "made" in ok(root, "exec", cid, "sh", "-c", "ls /usr"), "the write")
        out = subprocess.run([cove_cli(), "--root", str(root), "cp", f"{cid}:/", "-"],
                             capture_output=True, timeout=60)  # fmt: skip
        assert out.returncode == 0, out.stderr
        with tarfile.open(fileobj=io.BytesIO(out.stdout)) as tar:
            names = set(tar.getnames())
        assert {"usr/bin/busybox", "usr/made", "usr/sbin/policy-rc.d"} <= names, sorted(names)
        assert not (host / "usr" / "made").exists()
    finally:
        remove_everything(root)


def test_read_only_keeps_them_read_only(seed: Path) -> None:
    script = ("for d in /usr /etc /var/lib; do touch $d/x 2>&1; done; "
              "tail -1 /usr/sbin/policy-rc.d")  # fmt: skip
    res = cove(seed, "run", "--rm", "--read-only", "host:seed", "sh", "-c", script)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 4 and all("Read-only file system" in line for line in lines[:3]), lines
    assert lines[3] == "exit 101"  # the skeleton's /usr over the host's: a read-only overlay
    cid = ok(seed, "create", "--read-only", "host:seed", "true").strip()
    mounts = spec_mounts(seed, cid)
    usr, etc = mounts["/usr"], mounts["/etc"]
    assert usr["type"] == "overlay" and "ro" in usr["options"]
    assert not any(str(o).startswith("upperdir=") for o in usr["options"])
    assert (etc["type"], etc["source"]) == ("bind", "/etc")
    assert etc["options"] == ["rbind", "ro", "rprivate"]
    assert not (snapshot_of(seed, cid) / "host").exists()
    ok(seed, "rm", cid)


def test_a_host_path_overlayfs_cannot_name_stays_read_only(tmp_path: Path) -> None:
    host = tmp_path / "a,b" / "host"
    (host / "usr" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", host / "usr" / "bin" / "busybox")
    (host / "usr" / "bin" / "sh").symlink_to("busybox")
    (host / "bin").symlink_to("usr/bin")
    root = tmp_path / "engine"
    ok(root, "image", "bootstrap", "--from-host", "--host-root", str(host), "fake:1")
    try:
        res = cove(root, "run", "--rm", "fake:1", "sh", "-c", "echo x > /usr/x")
        assert res.returncode != 0 and "Read-only file system" in res.stderr
        assert "read-only in this container: overlayfs options cannot name" in res.stderr
        assert not (host / "usr" / "x").exists()
    finally:
        remove_everything(root)


def test_repair_removes_the_copies_of_a_half_made_container(seed: Path, tmp_path: Path) -> None:
    cli = tmp_path / "crashing-cove"
    cli.write_text(CRASHING_CLI.format(src=str(SRC)))
    argv = [sys.executable, "-I", str(cli), "--root", str(seed), "run", "-d", "host:seed", "true"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "COVE_TEST_CRASH": "specgen"})  # fmt: skip
    assert res.returncode == -signal.SIGKILL, res.stderr
    (host,) = seed.glob("snapshots/ctr-*/host")  # made before the spec: the crash left them
    assert sorted(p.name for p in host.iterdir()) == ["etc", "usr", "var_lib"]
    assert repaired(seed) == {}
    assert not host.parent.exists()
