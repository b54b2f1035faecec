"""Real overlay mounts of applied layers (root): whiteouts, opaque dirs, writes, cleanup."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from cove.image.layer import apply_layer, diff_tar
from cove.image.snapshot import CopySnapshotter, OverlaySnapshotter, choose_snapshotter

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlay mounts)"),
]


def _tar(*entries: tuple[str, bytes | None]) -> io.BytesIO:
    """(name, data) entries; data None makes a directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    out.seek(0)
    return out


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as info:
        return [line.split()[4] for line in info]


def _listing(root: Path) -> dict[str, bytes | None]:
    result: dict[str, bytes | None] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top, name)
            result[str(path.relative_to(root))] = None if path.is_dir() else path.read_bytes()
    return result


@pytest.fixture
def layers(tmp_path: Path) -> list[Path]:
    """Two applied layers, top first: the top deletes one file and makes one dir opaque."""
    base, top = tmp_path / "layers/base", tmp_path / "layers/top"
    apply_layer(
        _tar(
            ("etc", None),
            ("etc/passwd", b"root:x:0:0\n"),
            ("etc/shadow", b"secret"),
            ("data", None),
            ("data/old1", b"1"),
            ("data/sub", None),
            ("data/sub/old2", b"2"),
            ("keep", b"kept"),
        ),
        base,
    )
    apply_layer(
        _tar(
            ("etc", None),
            ("etc/.wh.shadow", b""),
            ("data", None),
            ("data/.wh..wh..opq", b""),
            ("data/new", b"fresh"),
        ),
        top,
    )
    return [top, base]


EXPECTED = {
    "etc": None,
    "etc/passwd": b"root:x:0:0\n",
    "data": None,
    "data/new": b"fresh",
    "keep": b"kept",
}


def test_overlay_mount_applies_whiteouts_and_opaque_dirs(
    tmp_path: Path, layers: list[Path]
) -> None:
    snaps = OverlaySnapshotter(tmp_path / "root")
    snaps.prepare("c1", layers)
    merged = Path(snaps.mount("c1"))
    try:
        assert str(merged) in _mount_points()
        assert _listing(merged) == EXPECTED
        (merged / "written").write_text("upper")
        (merged / "etc/passwd").unlink()
        upper = tmp_path / "root/snapshots/c1/upper"
        assert (upper / "written").read_text() == "upper"
        st = (upper / "etc/passwd").lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # kernel whiteout
        assert (layers[1] / "etc/passwd").exists()  # layers untouched
        out = io.BytesIO()
        diff_tar(layers, upper, out)
        names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
        assert "etc/.wh.passwd" in names and "written" in names
        assert snaps.usage("c1").inodes >= 2
    finally:
        snaps.unmount(merged)
    assert str(merged) not in _mount_points()
    snaps.remove("c1")
    assert not (tmp_path / "root/snapshots/c1").exists()


def test_remove_detaches_busy_mounts_anywhere(tmp_path: Path, layers: list[Path]) -> None:
    snaps = OverlaySnapshotter(tmp_path / "root")
    snaps.prepare("c1", layers)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    snaps.mount("c1")
    snaps.mount("c1", elsewhere)
    busy = open(elsewhere / "keep")  # keeps the mount busy
    try:
        snaps.remove("c1")
    finally:
        busy.close()
    points = _mount_points()
    assert str(elsewhere) not in points
    assert not any(p.startswith(str(tmp_path / "root")) for p in points)
    assert not (tmp_path / "root/snapshots/c1").exists()


def test_many_layers_with_long_paths_mount(tmp_path: Path) -> None:
    lowers = []
    for index in range(80):
        layer = tmp_path / "layers" / (f"{index:03d}" + "x" * 61)
        apply_layer(
            _tar((f"file{index}", str(index).encode()), ("common", str(index).encode())), layer
        )
        lowers.append(layer)
    lowers.reverse()  # top first: the last applied wins
    snaps = OverlaySnapshotter(tmp_path / "root")
    mount = snaps.prepare("many", lowers)
    assert mount.cwd is not None
    merged = Path(snaps.mount("many"))
    try:
        assert (merged / "common").read_text() == "79"
        assert (merged / "file0").read_text() == "0"
        assert len(list(merged.iterdir())) == 81
    finally:
        snaps.remove("many")
    assert str(merged) not in _mount_points()


def test_copy_snapshotter_gives_the_same_tree(tmp_path: Path, layers: list[Path]) -> None:
    copy = CopySnapshotter(tmp_path / "copy")
    copy.prepare("c1", layers)
    fs = tmp_path / "copy/snapshots/c1/fs"
    assert _listing(fs) == EXPECTED
    target = Path(copy.mount("c1"))
    try:
        assert _listing(target) == EXPECTED
    finally:
        copy.remove("c1")
    assert str(target) not in _mount_points()


def test_choose_snapshotter_picks_overlay_here(tmp_path: Path) -> None:
    assert isinstance(choose_snapshotter(tmp_path / "root"), OverlaySnapshotter)
    # the probe leaves nothing but the answer, which later calls read instead of probing
    assert os.listdir(tmp_path / "root") == ["snapshotter"]
    (tmp_path / "root" / "snapshotter").write_text("copy\n")
    assert isinstance(choose_snapshotter(tmp_path / "root"), CopySnapshotter)


def test_threads_choosing_at_once_all_get_the_answer(tmp_path: Path) -> None:
    # parallel build stages in one process choose for a fresh root at the same moment
    import threading

    root = tmp_path / "root"
    barrier = threading.Barrier(8)
    found: list[object] = []
    failed: list[BaseException] = []

    def choose() -> None:
        barrier.wait()
        try:
            found.append(choose_snapshotter(root))
        except BaseException as exc:  # reported below
            failed.append(exc)

    threads = [threading.Thread(target=choose) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failed == []
    assert all(isinstance(chosen, OverlaySnapshotter) for chosen in found) and len(found) == 8
    assert os.listdir(root) == ["snapshotter"]
