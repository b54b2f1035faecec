"""cove.runtime.rootfs: what follows the mounts: `finalize_rootfs` (sysctls, read-only and
masked paths, read-only root) and `switch_root` (pivot_root or move), on the recording fake."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cove.errors import RootfsError, SyscallFailed
from cove.oci.default_spec import default_spec
from cove.runtime import rootfs
from cove.runtime.rootfs import finalize_rootfs, switch_root
from cove.sys import constants as c
from cove.sys.fake import RecordingSyscalls
from tests.unit.runtime.rootfs_helpers import (
    ConfigFactory,
    SelectiveFailure,
    no_locked_flags,  # noqa: F401  (autouse)
)

# --- finalize_rootfs ----------------------------------------------------------------------


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    """Absolute paths standing for /proc/... after the switch (the fake mounts nothing)."""
    made = {}
    for name, is_dir in (("ro_dir", True), ("mask_dir", True), ("mask_file", False)):
        path = tmp_path / "after" / name
        path.parent.mkdir(exist_ok=True)
        if is_dir:
            path.mkdir()
        else:
            path.write_text("secret")
        made[name] = str(path)
    made["missing"] = str(tmp_path / "after" / "missing")
    return made


def test_finalize_order(
    make_config: ConfigFactory, fake_sys: RecordingSyscalls, paths: dict[str, str]
) -> None:
    config = make_config(default_spec()).replace(
        readonly_paths=(paths["ro_dir"],),
        masked_paths=(paths["mask_dir"], paths["mask_file"]),
        readonly_root=True,
    )
    finalize_rootfs(fake_sys, config)
    ro = paths["ro_dir"]
    assert fake_sys.calls == [
        ("mount", ro, ro, "", c.MS_BIND | c.MS_REC, ""),
        ("mount", "", ro, "", c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | c.MS_REC, ""),
        ("mount", "tmpfs", paths["mask_dir"], "tmpfs", c.MS_RDONLY, "size=0k,mode=0555"),
        ("mount", "/dev/null", paths["mask_file"], "", c.MS_BIND, ""),
        ("mount", "", "/", "", c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY, ""),
    ]


def test_finalize_without_readonly_root(
    make_config: ConfigFactory, fake_sys: RecordingSyscalls
) -> None:
    config = make_config(default_spec()).replace(
        readonly_paths=(), masked_paths=(), readonly_root=False
    )
    finalize_rootfs(fake_sys, config)
    assert fake_sys.calls == []


def test_readonly_path_missing_is_skipped(
    make_config: ConfigFactory, paths: dict[str, str]
) -> None:
    fake = SelectiveFailure(lambda s, target, f: target == paths["missing"], errno.ENOENT)
    config = make_config(default_spec()).replace(
        readonly_paths=(paths["missing"], paths["ro_dir"]), masked_paths=(), readonly_root=False
    )
    finalize_rootfs(fake, config)
    assert [call[2] for call in fake.calls] == [paths["missing"], paths["ro_dir"], paths["ro_dir"]]


def test_readonly_path_other_error(make_config: ConfigFactory, paths: dict[str, str]) -> None:
    fake = SelectiveFailure(lambda s, target, f: True, errno.EACCES)
    config = make_config(default_spec()).replace(
        readonly_paths=(paths["ro_dir"],), masked_paths=(), readonly_root=False
    )
    with pytest.raises(RootfsError, match=f"^linux.readonlyPaths: {paths['ro_dir']}: "):
        finalize_rootfs(fake, config)


def test_masked_path_missing_is_skipped(make_config: ConfigFactory, paths: dict[str, str]) -> None:
    fake = SelectiveFailure(lambda s, target, f: target == paths["missing"], errno.ENOENT)
    config = make_config(default_spec()).replace(
        readonly_paths=(), masked_paths=(paths["missing"], paths["mask_dir"]), readonly_root=False
    )
    finalize_rootfs(fake, config)
    assert fake.calls[-1][2] == paths["mask_dir"]


def test_masked_path_other_error(make_config: ConfigFactory, paths: dict[str, str]) -> None:
    fake = SelectiveFailure(lambda s, target, f: True, errno.EPERM)
    config = make_config(default_spec()).replace(
        readonly_paths=(), masked_paths=(paths["mask_file"],), readonly_root=False
    )
    with pytest.raises(RootfsError, match=f"^linux.maskedPaths: {paths['mask_file']}: "):
        finalize_rootfs(fake, config)


def test_sysctl_written_under_proc_sys(
    make_config: ConfigFactory, fake_sys: RecordingSyscalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: dict[str, str] = {}

    class Recorder:
        def __init__(self, path: str, mode: str) -> None:
            assert mode == "w"
            self.path = path

        def __enter__(self) -> Recorder:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def write(self, text: str) -> None:
            written[self.path] = text

    monkeypatch.setattr(rootfs, "open", Recorder, raising=False)
    config = make_config(default_spec()).replace(
        sysctl={"net.ipv4.ip_forward": "1", "kernel.msgmax": "8192"},
        readonly_paths=(),
        masked_paths=(),
        readonly_root=False,
    )
    finalize_rootfs(fake_sys, config)
    assert written == {
        "/proc/sys/net/ipv4/ip_forward": "1",
        "/proc/sys/kernel/msgmax": "8192",
    }


def test_sysctl_failure_names_the_key(
    make_config: ConfigFactory, fake_sys: RecordingSyscalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(path: str, mode: str) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(rootfs, "open", denied, raising=False)
    config = make_config(default_spec()).replace(sysctl={"net.core.somaxconn": "4096"})
    with pytest.raises(RootfsError, match=r"cannot set net.core.somaxconn='4096': Permission"):
        finalize_rootfs(fake_sys, config)
    assert fake_sys.calls == []  # sysctls come first


# --- switch_root --------------------------------------------------------------------------


@pytest.fixture
def recorded_os(monkeypatch: pytest.MonkeyPatch, fake_sys: RecordingSyscalls) -> None:
    """chdir/chroot/fchdir recorded in the fake's call list, so the order shows."""
    monkeypatch.setattr(os, "chdir", lambda path: fake_sys.calls.append(("chdir", path)))
    monkeypatch.setattr(os, "chroot", lambda path: fake_sys.calls.append(("chroot", path)))
    monkeypatch.setattr(os, "fchdir", lambda fd: fake_sys.calls.append(("fchdir", fd)))


def test_switch_root_no_pivot_moves_the_rootfs(
    fake_sys: RecordingSyscalls, recorded_os: None
) -> None:
    switch_root(fake_sys, "/b/rootfs", no_pivot=True)
    assert fake_sys.calls == [
        ("chdir", "/b/rootfs"),
        ("mount", "/b/rootfs", "/", "", c.MS_MOVE, ""),
        ("chroot", "."),
        ("chdir", "/"),
    ]


def test_switch_root_pivot(fake_sys: RecordingSyscalls, recorded_os: None) -> None:
    switch_root(fake_sys, "/b/rootfs", no_pivot=False)
    fd = fake_sys.calls[2][1]
    assert isinstance(fd, int)
    assert fake_sys.calls == [
        ("chdir", "/b/rootfs"),
        ("pivot_root", ".", "."),
        ("fchdir", fd),
        ("mount", "", ".", "", c.MS_SLAVE | c.MS_REC, ""),
        ("umount2", ".", c.MNT_DETACH),
        ("chdir", "/"),
    ]
    with pytest.raises(OSError):
        os.fstat(fd)  # the old root's descriptor was closed


def test_switch_root_pivot_failure(recorded_os: None, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = RecordingSyscalls(fail_on={"pivot_root": errno.EINVAL})
    opened: list[int] = []
    real_open = os.open

    def tracking_open(path: str, flags: int) -> int:
        fd = real_open(path, flags)
        opened.append(fd)
        return fd

    monkeypatch.setattr(os, "open", tracking_open)
    with pytest.raises(SyscallFailed):
        switch_root(fake, "/b/rootfs", no_pivot=False)
    assert ("chdir", "/") not in fake.calls
    assert len(opened) == 1
    with pytest.raises(OSError):
        os.fstat(opened[0])
