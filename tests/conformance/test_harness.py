"""Self-tests of the harness: bundles, results, and the leak checks of Runtime.cleanup().

The leak checks are exercised against runc (skipped if it is not installed) by
deliberately leaving things behind.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lib.bundle import Bundle
from tests.lib.probe import key_values, last_json
from tests.lib.runtimes import (
    Result,
    Runtime,
    _unescape_mount_field,
    mounts_under,
    process_state,
    runtime_argv,
)

BundleFactory = Callable[..., Bundle]


def test_busybox_rootfs_layout(busybox_rootfs: Path) -> None:
    sh = busybox_rootfs / "bin" / "sh"
    assert sh.is_symlink()
    # relative to the container root, never a host path outside the rootfs
    assert str(sh.readlink()) in ("/bin/busybox", "busybox")
    assert (busybox_rootfs / "bin" / "coveprobe").is_file()
    passwd = (busybox_rootfs / "etc" / "passwd").read_text()
    assert "root:x:0:0:" in passwd
    assert ":x:1000:1000:" in passwd
    for d in ("proc", "sys", "dev", "tmp", "root", "etc"):
        assert (busybox_rootfs / d).is_dir()


def test_bundle_is_a_private_copy(bundle: BundleFactory, busybox_rootfs: Path) -> None:
    b = bundle()
    (b.rootfs / "etc" / "passwd").write_text("changed\n")
    assert (busybox_rootfs / "etc" / "passwd").read_text() != "changed\n"
    assert not (b.rootfs / "bin" / "busybox").samefile(busybox_rootfs / "bin" / "busybox")


def test_bundle_config_editing(bundle: BundleFactory) -> None:
    b = bundle()
    assert b.config["process"]["terminal"] is False
    assert b.config["root"] == {"path": "rootfs", "readonly": False}
    b.probe("exit", "3").set_env("A", "1").set_env("A", "2")
    b.add_namespace("cgroup").add_namespace("cgroup")
    b.set_rlimit("RLIMIT_CORE", 1, 2).set_rlimit("RLIMIT_CORE", 3, 4)
    b.add_capability("CAP_SYS_CHROOT")
    b.save_if_dirty()
    on_disk = json.loads(b.config_path.read_text())
    assert on_disk["process"]["args"] == ["/bin/coveprobe", "exit", "3"]
    assert [e for e in on_disk["process"]["env"] if e.startswith("A=")] == ["A=2"]
    assert b.namespaces().count("cgroup") == 1
    assert [r for r in on_disk["process"]["rlimits"] if r["type"] == "RLIMIT_CORE"] == [
        {"type": "RLIMIT_CORE", "soft": 3, "hard": 4}
    ]
    assert "CAP_SYS_CHROOT" in on_disk["process"]["capabilities"]["bounding"]
    # a raw config is never overwritten by later edits
    b.write_raw("{broken")
    b.config["hostname"] = "x"
    b.save_if_dirty()
    assert b.config_path.read_text() == "{broken"


def test_bundle_ids_are_unique(bundle: BundleFactory) -> None:
    assert bundle("one").id != bundle("two").id


def test_result_helpers() -> None:
    ok = Result(["x"], 0, '{"a": 1}\n', "")
    assert ok.ok and ok.check() is ok and ok.json() == {"a": 1}
    bad = Result(["x", "y"], 3, "out", "err")
    with pytest.raises(AssertionError, match="exit status: 3"):
        bad.check()
    assert last_json('noise\n{"b": 2}\n{"c": 3}\r\n') == {"c": 3}
    assert key_values("a=1\nb = x=y\nnoise\n") == {"a": "1", "b": "x=y"}


def test_mountinfo_unescape() -> None:
    assert _unescape_mount_field("/tmp/a\\040b\\011c\\134d") == "/tmp/a b\tc\\d"


def _runc(root: Path, watch: Path) -> Runtime:
    argv, why = runtime_argv("runc")
    if argv is None:
        pytest.skip(why)
    return Runtime("runc", argv, root, watch=[watch])


@pytest.mark.root
def test_cleanup_reports_lost_container(bundle: BundleFactory, tmp_path: Path) -> None:
    """A container whose state vanished is reported, and its process killed."""
    rt = _runc(tmp_path / "state", tmp_path)
    rt.exit_grace = 0.3
    b = bundle()
    b.probe("sleep", "60")
    rt.create(b, b.id).check()
    pid = rt.state_json(b.id)["pid"]
    shutil.rmtree(rt.root / b.id)  # the runtime "forgets" the container
    problems = rt.cleanup()
    assert any("survived delete --force" in p for p in problems), problems
    assert process_state(pid) in (None, "Z", "X")
    assert any("cgroup left behind" in p for p in problems), problems
    # everything was removed by the first pass
    assert rt.cleanup() == []


@pytest.mark.root
def test_cleanup_reports_host_mount(tmp_path: Path) -> None:
    rt = _runc(tmp_path / "state", tmp_path)
    target = tmp_path / "leak"
    target.mkdir()
    rt.track("ct-never-created")
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(target)], check=True)
    try:
        problems = rt.cleanup()
    finally:
        if mounts_under(target):
            subprocess.run(["umount", "--lazy", str(target)], check=False)
    assert problems == [f"mount left in the host namespace: {target}"]
    assert mounts_under(target) == []
