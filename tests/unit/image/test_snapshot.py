"""Snapshotters with the recording fake: directory layout, mount options, cleanup rules.

Real overlay mounts are in tests/integration/image/test_overlay.py.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest

from cove.errors import SnapshotError, SyscallFailed
from cove.image.snapshot import (
    CopySnapshotter,
    OverlaySnapshotter,
    choose_snapshotter,
)
from cove.sys.constants import MNT_DETACH, MS_BIND, MS_REC
from cove.sys.fake import RecordingSyscalls

ROOT = os.geteuid() == 0


def _layers(tmp_path: Path, count: int, name_len: int = 8) -> list[Path]:
    layers = []
    for index in range(count):
        layer = tmp_path / "layers" / f"{index:0{name_len}d}"
        layer.mkdir(parents=True)
        layers.append(layer)
    return layers


def _mountinfo(path: Path, *entries: tuple[str, str]) -> str:
    lines = [
        f"{i + 30} 1 0:{i} / {point.replace(' ', chr(92) + '040')} rw - overlay {source} rw"
        for i, (point, source) in enumerate(entries)
    ]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_prepare_layout_and_mount_description(tmp_path: Path, fake_sys: RecordingSyscalls) -> None:
    lowers = _layers(tmp_path, 3)
    snaps = OverlaySnapshotter(tmp_path / "root", fake_sys)
    mount = snaps.prepare("c1", list(reversed(lowers)))  # top layer first
    snap = tmp_path / "root/snapshots/c1"
    for name in ("upper", "work", "merged"):
        assert (snap / name).is_dir()
    assert mount.type == "overlay"
    assert mount.cwd is None
    top_first = ":".join(str(p) for p in reversed(lowers))
    assert mount.options == (
        f"lowerdir={top_first}",
        f"upperdir={snap}/upper",
        f"workdir={snap}/work",
    )
    assert mount.lowerdirs == tuple(str(p) for p in reversed(lowers))
    assert fake_sys.calls == []  # prepare does not mount
    target = snaps.mount("c1")
    assert target == str(snap / "merged")
    assert fake_sys.mounts() == [("mount", str(snap), target, "overlay", 0, mount.data)]
    assert json.loads((snap / "snapshot.json").read_text())["targets"] == [target]


def test_prepare_errors(tmp_path: Path, fake_sys: RecordingSyscalls) -> None:
    snaps = OverlaySnapshotter(tmp_path / "root", fake_sys)
    with pytest.raises(SnapshotError, match="invalid snapshot key"):
        snaps.prepare("../x", [])
    with pytest.raises(SnapshotError, match="does not exist"):
        snaps.prepare("c1", [tmp_path / "missing"])
    assert not (tmp_path / "root/snapshots/c1").exists()
    snaps.prepare("c1", [])
    with pytest.raises(SnapshotError, match="already exists"):
        snaps.prepare("c1", [])
    with pytest.raises(SnapshotError, match="'nope' does not exist"):
        snaps.mount("nope")


def test_no_layers_uses_an_empty_lower(tmp_path: Path, fake_sys: RecordingSyscalls) -> None:
    mount = OverlaySnapshotter(tmp_path, fake_sys).prepare("scratch", [])
    assert mount.lowerdirs == (str(tmp_path / "snapshots/scratch/empty"),)


def test_long_lowerdir_goes_through_short_links(tmp_path: Path) -> None:
    lowers = _layers(tmp_path, 120, name_len=64)  # ~9 KB of absolute paths
    cwd_at_mount: list[str] = []

    class Spy(RecordingSyscalls):
        def mount(self, source: str, target: str, fstype: str, flags: int, data: str = "") -> None:
            cwd_at_mount.append(os.getcwd())
            super().mount(source, target, fstype, flags, data)

    spy = Spy()
    snaps = OverlaySnapshotter(tmp_path / "root", spy)
    before = os.getcwd()
    mount = snaps.prepare("many", lowers)
    snap = tmp_path / "root/snapshots/many"
    assert mount.cwd == str(snap)
    assert mount.options[0] == "lowerdir=" + ":".join(f"l/{i}" for i in range(120))
    assert mount.options[1:] == ("upperdir=upper", "workdir=work")
    assert len(mount.data) < os.sysconf("SC_PAGE_SIZE")
    for index in (0, 119):
        assert os.readlink(snap / "l" / str(index)) == str(lowers[index])
    snaps.mount("many")
    assert cwd_at_mount == [str(snap)]
    assert os.getcwd() == before  # restored
    assert spy.calls[0][-1] == mount.data


def test_special_characters_also_use_links(tmp_path: Path, fake_sys: RecordingSyscalls) -> None:
    layer = tmp_path / "a,b:c"
    layer.mkdir()
    mount = OverlaySnapshotter(tmp_path / "root", fake_sys).prepare("k", [layer])
    assert mount.cwd is not None and mount.options[0] == "lowerdir=l/0"


def test_too_many_layers(tmp_path: Path, fake_sys: RecordingSyscalls) -> None:
    with pytest.raises(SnapshotError, match="at most 500"):
        OverlaySnapshotter(tmp_path, fake_sys).prepare("k", [tmp_path] * 501)


def test_unmount_detaches_when_busy_and_ignores_unmounted(tmp_path: Path) -> None:
    class Busy(RecordingSyscalls):
        def umount2(self, target: str, flags: int = 0) -> None:
            super().umount2(target, flags)
            if flags == 0:
                raise SyscallFailed("umount", errno.EBUSY, "busy")

    busy = Busy()
    OverlaySnapshotter(tmp_path, busy).unmount(tmp_path / "t")
    assert busy.calls == [
        ("umount2", str(tmp_path / "t"), 0),
        ("umount2", str(tmp_path / "t"), MNT_DETACH),
    ]
    quiet = RecordingSyscalls(fail_on={"umount2": errno.EINVAL})
    OverlaySnapshotter(tmp_path, quiet).unmount(tmp_path / "t")  # not mounted: fine
    other = RecordingSyscalls(fail_on={"umount2": errno.EPERM})
    with pytest.raises(SnapshotError, match="cannot unmount"):
        OverlaySnapshotter(tmp_path, other).unmount(tmp_path / "t")


def test_remove_detaches_every_mount_of_the_snapshot(tmp_path: Path) -> None:
    root = tmp_path / "root"
    snap = root / "snapshots/c1"
    elsewhere = tmp_path / "some where"
    info = tmp_path / "mountinfo"
    table = [(str(elsewhere), str(snap)), (str(snap / "merged"), str(snap)), ("/other", "x")]
    _mountinfo(info, *table)

    class Unmounting(RecordingSyscalls):
        def umount2(self, target: str, flags: int = 0) -> None:
            super().umount2(target, flags)
            table[:] = [row for row in table if row[0] != target]
            _mountinfo(info, *table)

    calls = Unmounting()
    snaps = OverlaySnapshotter(root, calls, mountinfo=str(info))
    snaps.prepare("c1", [])
    snaps.remove("c1")
    assert sorted(c[1] for c in calls.calls) == sorted([str(elsewhere), str(snap / "merged")])
    assert all(c[2] == MNT_DETACH for c in calls.calls)
    assert not snap.exists()
    assert table == [("/other", "x")]
    snaps.remove("c1")  # gone: nothing to do


def test_remove_refuses_to_delete_what_stays_mounted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    snap = root / "snapshots/c1"
    info = _mountinfo(tmp_path / "mountinfo", (str(snap / "merged"), str(snap)))
    snaps = OverlaySnapshotter(root, RecordingSyscalls(), mountinfo=info)
    snaps.prepare("c1", [])
    with pytest.raises(SnapshotError, match="still mounted"):
        snaps.remove("c1")
    assert snap.exists()  # nothing deleted under a live mount


def test_usage_counts_upper(tmp_path: Path, fake_sys: RecordingSyscalls) -> None:
    snaps = OverlaySnapshotter(tmp_path, fake_sys)
    snaps.prepare("c1", [])
    upper = tmp_path / "snapshots/c1/upper"
    (upper / "file").write_bytes(b"x" * 10000)
    os.link(upper / "file", upper / "again")
    usage = snaps.usage("c1")
    assert usage.inodes == 1
    assert usage.size >= 10000


def test_choose_falls_back_to_copy_when_overlay_does_not_mount(tmp_path: Path) -> None:
    calls = RecordingSyscalls(fail_on={"mount": errno.EINVAL})
    assert isinstance(choose_snapshotter(tmp_path, calls), CopySnapshotter)
    assert isinstance(choose_snapshotter(tmp_path, RecordingSyscalls()), CopySnapshotter)
    assert [p.name for p in tmp_path.iterdir()] == []  # probe dirs cleaned


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


@pytest.mark.skipif(not ROOT, reason="needs root (whiteout devices, trusted xattrs)")
def test_copy_snapshotter_merges_layers(tmp_path: Path, fake_sys: RecordingSyscalls) -> None:
    base, top = tmp_path / "base", tmp_path / "top"
    (base / "etc").mkdir(parents=True)
    (base / "etc/passwd").write_text("root")
    (base / "etc/gone").write_text("x")
    (base / "opaque/old").mkdir(parents=True)
    (base / "file_to_dir").write_text("f")
    (base / "h1").write_text("linked")
    os.link(base / "h1", base / "h2")
    (top / "etc").mkdir(parents=True)
    _whiteout(top / "etc/gone")
    (top / "opaque").mkdir()
    os.setxattr(top / "opaque", "trusted.overlay.opaque", b"y")
    (top / "opaque/new").write_text("new")
    (top / "file_to_dir").mkdir()
    os.symlink("passwd", top / "etc/link")
    snaps = CopySnapshotter(tmp_path / "root", fake_sys)
    mount = snaps.prepare("c1", [top, base])
    fs = tmp_path / "root/snapshots/c1/fs"
    assert mount.type == "bind" and mount.source == str(fs)
    assert (fs / "etc/passwd").read_text() == "root"
    assert not (fs / "etc/gone").exists()
    assert os.readlink(fs / "etc/link") == "passwd"
    assert sorted(p.name for p in (fs / "opaque").iterdir()) == ["new"]
    assert "trusted.overlay.opaque" not in os.listxattr(fs / "opaque")
    assert (fs / "file_to_dir").is_dir()
    assert (fs / "h1").stat().st_ino == (fs / "h2").stat().st_ino
    assert (fs / "h1").stat().st_ino != (base / "h1").stat().st_ino  # copied, not linked
    (fs / "etc/passwd").write_text("changed")
    assert (base / "etc/passwd").read_text() == "root"
    target = snaps.mount("c1")
    assert fake_sys.mounts() == [("mount", str(fs), target, "", MS_BIND | MS_REC, "")]
