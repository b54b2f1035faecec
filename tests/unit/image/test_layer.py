"""Layer application (tar -> directory with overlay whiteouts) and its reverse, diff_tar.

Tar streams are built here with tarfile (sparse ones with GNU tar). Hostile cases check
the error and that nothing appeared in a sentinel directory next to the layer. Cases that
need ownership changes, device nodes (whiteouts) or trusted.* xattrs skip without root.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from cove.errors import LayerDigestMismatch, LayerError, LayerRejected
from cove.image.layer import (
    OPAQUE_XATTR,
    LayerSummary,
    apply_layer,
    detect_compression,
    diff_tar,
)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (chown, mknod, trusted xattrs)")
MTIME = 1_600_000_000


# --- building tars -----------------------------------------------------------------------


def _info(name: str, kind: bytes, **fields: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = MTIME
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    for key, value in fields.items():
        setattr(info, key, value)
    return info


def f(name: str, data: bytes = b"data", **fields: object) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.REGTYPE, size=len(data), **fields), data


def d(name: str, **fields: object) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.DIRTYPE, **fields), b""


def sym(name: str, target: str, **fields: object) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.SYMTYPE, linkname=target, **fields), b""


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.LNKTYPE, linkname=target), b""


def dev(
    name: str, major: int, minor: int, kind: bytes = tarfile.CHRTYPE
) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, kind, devmajor=major, devminor=minor, mode=0o666), b""


def fifo(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.FIFOTYPE, mode=0o640), b""


def make_tar(*entries: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def where(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(layer dir, sentinel dir): the sentinel holds one file that must never change."""
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep").write_text("original")
    yield tmp_path / "layer", sentinel


def apply(data: bytes, dest: Path, **kwargs: object) -> LayerSummary:
    return apply_layer(io.BytesIO(data), dest, **kwargs)  # type: ignore[arg-type]


def untouched(sentinel: Path) -> bool:
    return sorted(p.name for p in sentinel.iterdir()) == ["keep"] and (
        (sentinel / "keep").read_text() == "original"
    )


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything tar can carry, per path (the root's own mtime excluded)."""
    result: dict[str, tuple[object, ...]] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top, name)
            st = path.lstat()
            rel = str(path.relative_to(root))
            xattrs = tuple(
                sorted((n, os.getxattr(path, n, follow_symlinks=False))
                       for n in os.listxattr(path, follow_symlinks=False))
            )  # fmt: skip
            content: object = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            result[rel] = (
                stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                int(st.st_mtime), st.st_size, st.st_rdev, content, xattrs,
            )  # fmt: skip
    return result


# --- basics ------------------------------------------------------------------------------


def test_plain_layer_contents_and_metadata(where: tuple[Path, Path]) -> None:
    layer, _ = where
    data = make_tar(
        d("etc", mode=0o750),
        f("etc/passwd", b"root:x:0:0\n", mode=0o600),
        f("usr/bin/tool", b"#!/bin/sh\n", mode=0o4755),
        sym("usr/bin/alias", "tool"),
        hard("usr/bin/again", "usr/bin/tool"),
        fifo("fifo"),
    )
    summary = apply(data, layer)
    assert summary.entries == 6
    assert summary.bytes == len(data)
    assert summary.diff_id == summary.digest == sha256(data)
    assert summary.compression == "none"
    assert summary.disk_usage > 0
    assert (layer / "etc/passwd").read_bytes() == b"root:x:0:0\n"
    assert stat.S_IMODE((layer / "etc").stat().st_mode) == 0o750
    assert stat.S_IMODE((layer / "etc/passwd").stat().st_mode) == 0o600
    assert stat.S_IMODE((layer / "usr/bin/tool").stat().st_mode) == 0o4755
    assert os.readlink(layer / "usr/bin/alias") == "tool"
    assert (layer / "usr/bin/again").stat().st_ino == (layer / "usr/bin/tool").stat().st_ino
    assert stat.S_ISFIFO((layer / "fifo").lstat().st_mode)
    for name in ("etc", "etc/passwd", "usr/bin/alias", "fifo"):
        assert int((layer / name).lstat().st_mtime) == MTIME


@needs_root
def test_ownership_and_setgid_kept_exactly(where: tuple[Path, Path]) -> None:
    layer, _ = where
    apply(
        make_tar(
            d("shared", uid=1000, gid=100, mode=0o2775),
            f("shared/prog", uid=1234, gid=5678, mode=0o6711),
            sym("shared/link", "prog", uid=42, gid=43),
            f("plain", mode=0o755),
        ),
        layer,
    )
    st = (layer / "shared/prog").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o6711)
    st = (layer / "shared").stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 100, 0o2775)
    st = (layer / "shared/link").lstat()
    assert (st.st_uid, st.st_gid) == (42, 43)
    assert stat.S_IMODE((layer / "plain").stat().st_mode) == 0o755  # no bits added


def test_gnu_and_ustar_formats_and_long_names(where: tuple[Path, Path]) -> None:
    layer, _ = where
    long_name = "deep/" + "x" * 150 + "/" + "y" * 120
    for fmt in (tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT, tarfile.PAX_FORMAT):
        target = layer.with_name(f"layer{fmt}")
        entries = [f("a" * 90 + "/" + "b" * 60, b"ustar prefix")]
        if fmt != tarfile.USTAR_FORMAT:
            entries += [f(long_name, b"long"), sym("ln", "t" * 200), f("ünïcode", b"u")]
        apply(make_tar(*entries, fmt=fmt), target)
        assert (target / ("a" * 90) / ("b" * 60)).read_bytes() == b"ustar prefix"
        if fmt != tarfile.USTAR_FORMAT:
            assert (target / long_name).read_bytes() == b"long"
            assert os.readlink(target / "ln") == "t" * 200
            assert (target / "ünïcode").read_bytes() == b"u"


def test_compression_detected_and_digests_checked(where: tuple[Path, Path]) -> None:
    layer, _ = where
    tar = make_tar(f("file", b"hello" * 1000))
    for name, blob in (
        ("gzip", gzip.compress(tar)),
        ("zstd", zstandard.ZstdCompressor().compress(tar)),
        ("none", tar),
    ):
        assert detect_compression(blob[:8]) == name
        target = layer.with_name(f"layer-{name}")
        summary = apply(blob, target, digest=sha256(blob), diff_id=sha256(tar))
        assert summary.compression == name
        assert summary.digest == sha256(blob)
        assert summary.diff_id == sha256(tar)
        assert summary.compressed_bytes == len(blob)
        assert (target / "file").read_bytes() == b"hello" * 1000


def test_multi_member_gzip(where: tuple[Path, Path]) -> None:
    layer, _ = where
    tar = make_tar(f("file", os.urandom(100_000)))
    blob = gzip.compress(tar[:30_000]) + gzip.compress(tar[30_000:])
    assert apply(blob, layer, diff_id=sha256(tar)).diff_id == sha256(tar)


@pytest.mark.parametrize("which", ["digest", "diff_id"])
def test_digest_mismatch_removes_the_layer(where: tuple[Path, Path], which: str) -> None:
    layer, _ = where
    tar = make_tar(f("file"))
    blob = gzip.compress(tar)
    wrong = "sha256:" + "0" * 64
    kwargs = {"digest": sha256(blob), "diff_id": sha256(tar), which: wrong}
    with pytest.raises(LayerDigestMismatch) as caught:
        apply(blob, layer, name="base", **kwargs)
    message = str(caught.value)
    actual = sha256(blob) if which == "digest" else sha256(tar)
    assert "layer base" in message and wrong in message and actual in message
    assert not layer.exists()


def test_existing_empty_dest_is_emptied_not_removed_on_failure(where: tuple[Path, Path]) -> None:
    layer, _ = where
    layer.mkdir()
    with pytest.raises(LayerDigestMismatch):
        apply(make_tar(f("file")), layer, diff_id="sha256:" + "1" * 64)
    assert layer.is_dir() and not any(layer.iterdir())
    (layer / "x").write_text("")
    with pytest.raises(LayerError, match="not an empty directory"):
        apply(make_tar(f("file")), layer)


def test_truncated_and_corrupt_streams(where: tuple[Path, Path]) -> None:
    layer, _ = where
    tar = make_tar(f("file", b"x" * 5000), f("other"))
    with pytest.raises(LayerError, match="truncated"):
        apply(tar[:1500], layer)
    assert not layer.exists()
    corrupt = bytearray(tar)
    corrupt[0] ^= 0x01
    with pytest.raises(LayerError, match="checksum"):
        apply(bytes(corrupt), layer)
    with pytest.raises(LayerError, match="corrupt gzip"):
        apply(gzip.compress(tar)[:-20], layer)
    with pytest.raises(LayerError, match="xz"):
        apply(b"\xfd7zXZ\x00" + bytes(100), layer)
    assert not layer.exists()


def test_data_after_the_end_of_archive_is_rejected(where: tuple[Path, Path]) -> None:
    layer, _ = where
    tar = make_tar(f("file"))
    apply(tar + bytes(4096), layer)  # zero padding is fine
    with pytest.raises(LayerError, match="after the archive end"):
        apply(tar + b"junk" * 200, layer.with_name("other"))


# --- hostile entries ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "./../evil", "a/b/../../../evil"])
def test_dotdot_escape_rejected(where: tuple[Path, Path], name: str) -> None:
    layer, sentinel = where
    with pytest.raises(LayerRejected, match="escapes the layer root"):
        apply(make_tar(f("a/b/ok"), f(name)), layer)
    assert untouched(sentinel)
    assert not layer.exists()
    assert not (layer.parent / "evil").exists()


def test_absolute_and_dotdot_inside_are_normalised(where: tuple[Path, Path]) -> None:
    layer, sentinel = where
    absolute = str(sentinel / "keep")
    apply(make_tar(f(absolute, b"abs"), f("a/../b", b"b"), f("//c///d", b"d")), layer)
    assert untouched(sentinel)
    assert (layer / absolute.lstrip("/")).read_bytes() == b"abs"
    assert (layer / "b").read_bytes() == b"b"
    assert (layer / "c/d").read_bytes() == b"d"


@pytest.mark.parametrize("target", ["absolute", "../../sentinel", "../sentinel"])
def test_write_through_symlink_rejected(where: tuple[Path, Path], target: str) -> None:
    layer, sentinel = where
    link = str(sentinel) if target == "absolute" else target
    with pytest.raises(LayerRejected, match="goes through symlink 'escape'"):
        apply(make_tar(sym("escape", link), f("escape/keep", b"pwned")), layer)
    assert untouched(sentinel)
    assert not layer.exists()


def test_symlink_deep_in_path_rejected(where: tuple[Path, Path]) -> None:
    layer, sentinel = where
    entries = [d("a"), sym("a/b", str(sentinel)), d("a/b/c"), f("a/b/c/keep", b"pwned")]
    with pytest.raises(LayerRejected, match="symlink 'a/b'"):
        apply(make_tar(*entries), layer)
    assert untouched(sentinel)


def test_file_replacing_symlink_does_not_follow_it(where: tuple[Path, Path]) -> None:
    layer, sentinel = where
    apply(make_tar(sym("x", str(sentinel / "keep")), f("x", b"replaced")), layer)
    assert untouched(sentinel)
    assert (layer / "x").read_bytes() == b"replaced" and not (layer / "x").is_symlink()


def test_dir_replacing_symlink_does_not_follow_it(where: tuple[Path, Path]) -> None:
    layer, sentinel = where
    apply(make_tar(sym("x", str(sentinel)), d("x", mode=0o700), f("x/new", b"in")), layer)
    assert untouched(sentinel)
    assert (layer / "x").is_dir() and not (layer / "x").is_symlink()
    assert (layer / "x/new").read_bytes() == b"in"


@pytest.mark.parametrize("target", ["OUTSIDE", "../sentinel/keep", "later", "self"])
def test_bad_hardlinks_rejected(where: tuple[Path, Path], target: str) -> None:
    layer, sentinel = where
    link = {"OUTSIDE": str(sentinel / "keep"), "self": "self"}.get(target, target)
    with pytest.raises(LayerRejected):
        apply(make_tar(f("first"), hard("self", link), f("later")), layer)
    assert untouched(sentinel)
    assert (sentinel / "keep").stat().st_nlink == 1


def test_hardlink_through_replaced_dir_rejected(where: tuple[Path, Path]) -> None:
    layer, sentinel = where
    entries = [f("dir/file"), sym("dir", str(sentinel)), hard("link", "dir/keep")]
    with pytest.raises(LayerRejected):
        apply(make_tar(*entries), layer)
    assert untouched(sentinel)


def test_entry_under_a_file_rejected(where: tuple[Path, Path]) -> None:
    layer, _ = where
    with pytest.raises(LayerRejected, match="under non-directory 'plain'"):
        apply(make_tar(f("plain"), f("plain/child")), layer)
    assert not layer.exists()


def test_devices_skipped_by_default(where: tuple[Path, Path]) -> None:
    layer, _ = where
    summary = apply(make_tar(dev("dev/null", 1, 3), dev("dev/sda", 8, 0, tarfile.BLKTYPE)), layer)
    assert not (layer / "dev/null").exists() and not (layer / "dev/sda").exists()
    assert any("'dev/null'" in note for note in summary.notes)
    assert any("'dev/sda'" in note for note in summary.notes)


@needs_root
def test_devices_kept_when_allowed(where: tuple[Path, Path]) -> None:
    layer, _ = where
    apply(make_tar(dev("dev/null", 1, 3)), layer, allow_devices=True)
    st = (layer / "dev/null").lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st.st_mode) == 0o666


def test_duplicates_later_wins(where: tuple[Path, Path]) -> None:
    layer, _ = where
    apply(
        make_tar(
            f("x", b"first"),
            f("x", b"second"),
            d("was_dir"),
            f("was_dir/child"),
            f("was_dir", b"now a file"),
            f("was_file", b"file"),
            d("was_file", mode=0o711),
            f("was_file/inside", b"in"),
            d("kept", mode=0o700),
            f("kept/a"),
            d("kept", mode=0o755),
        ),
        layer,
    )
    assert (layer / "x").read_bytes() == b"second"
    assert (layer / "was_dir").read_bytes() == b"now a file"
    assert stat.S_IMODE((layer / "was_file").stat().st_mode) == 0o711
    assert (layer / "was_file/inside").read_bytes() == b"in"
    assert (layer / "kept/a").exists()  # a second dir entry merges, as tar does
    assert stat.S_IMODE((layer / "kept").stat().st_mode) == 0o755


def test_xattrs_from_pax_and_overlay_ones_refused(where: tuple[Path, Path]) -> None:
    layer, _ = where
    info, data = f("file")
    info.pax_headers = {
        "SCHILY.xattr.user.color": "blue",
        "SCHILY.xattr.trusted.overlay.opaque": "y",
        "SCHILY.xattr.trusted.overlay.redirect": "/etc",
    }
    summary = apply(make_tar((info, data)), layer)
    names = os.listxattr(layer / "file")
    assert "trusted.overlay.opaque" not in names and "trusted.overlay.redirect" not in names
    assert sum("trusted.overlay" in note for note in summary.notes) == 2
    try:
        assert os.getxattr(layer / "file", "user.color") == b"blue"
    except OSError:
        assert any("user.color" in note for note in summary.notes)  # fs without user xattrs


# --- whiteouts ---------------------------------------------------------------------------


@needs_root
def test_whiteouts_become_overlay_whiteouts(where: tuple[Path, Path]) -> None:
    layer, _ = where
    apply(
        make_tar(
            f(".wh.gone", b""),
            d("etc"),
            f("etc/.wh.passwd", b""),
            d("opaque"),
            f("opaque/.wh..wh..opq", b""),
            f("opaque/new"),
            f(".wh..wh..plnk", b""),
        ),
        layer,
    )
    for name in ("gone", "etc/passwd"):
        st = (layer / name).lstat()
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(layer / "opaque", OPAQUE_XATTR) == b"y"
    assert OPAQUE_XATTR not in os.listxattr(layer / "etc")
    names = sorted(p.name for p in layer.iterdir())
    assert names == ["etc", "gone", "opaque"]  # no .wh. names, .wh..wh.plnk ignored


@needs_root
def test_whiteout_and_entry_in_one_layer(where: tuple[Path, Path]) -> None:
    layer, _ = where
    apply(
        make_tar(
            f("file_then_wh", b"stays"),
            f(".wh.file_then_wh", b""),
            f(".wh.wh_then_file", b""),
            f("wh_then_file", b"new"),
            f(".wh.wh_then_dir", b""),
            f("wh_then_dir/child"),
            d("dir_then_wh"),
            f(".wh.dir_then_wh", b""),
        ),
        layer,
    )
    assert (layer / "file_then_wh").read_bytes() == b"stays"
    assert (layer / "wh_then_file").read_bytes() == b"new"
    for name in ("wh_then_dir", "dir_then_wh"):  # a replaced lower dir: opaque
        assert os.getxattr(layer / name, OPAQUE_XATTR) == b"y"


# --- sparse ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["gnu", "pax", "posix-0.1"])
def test_sparse_files_keep_their_holes(tmp_path: Path, fmt: str) -> None:
    if shutil.which("tar") is None:
        pytest.skip("GNU tar not installed")
    src = tmp_path / "src"
    src.mkdir()
    size = 8 << 30  # 8 GiB apparent, a few KiB of data
    with open(src / "sparse", "wb") as out:
        out.seek(1 << 20)
        out.write(b"middle")
        out.seek(size - 5)
        out.write(b"tail!")
    argv = ["tar", "--sparse", "-C", str(src), "-cf", "-", "sparse"]
    if fmt == "gnu":
        argv[1:1] = ["--format=gnu"]
    elif fmt == "pax":
        argv[1:1] = ["--format=pax"]
    else:
        argv[1:1] = ["--format=pax", "--sparse-version=0.1"]
    data = subprocess.run(argv, check=True, capture_output=True).stdout
    assert len(data) < 1 << 20
    layer = tmp_path / "layer"
    apply(data, layer)
    st = (layer / "sparse").stat()
    assert st.st_size == size
    assert st.st_blocks * 512 < 1 << 20  # holes were not written
    with open(layer / "sparse", "rb") as back:
        back.seek(1 << 20)
        assert back.read(6) == b"middle"
        back.seek(size - 5)
        assert back.read() == b"tail!"
        back.seek(4096)
        assert back.read(16) == bytes(16)


# --- diff_tar ----------------------------------------------------------------------------


def _rich_layer() -> bytes:
    info, data = f("etc/conf", b"conf", uid=0, gid=0)
    info.pax_headers = {"SCHILY.xattr.user.k": "v"}
    return make_tar(
        d("etc", mode=0o755),
        (info, data),
        d("usr", mode=0o755),
        d("usr/bin", mode=0o755),
        f("usr/bin/a", b"#!", mode=0o4755),
        hard("usr/bin/b", "usr/bin/a"),
        sym("usr/bin/c", "a"),
        f(".wh.removed", b""),
        d("opq", mode=0o700),
        f("opq/.wh..wh..opq", b""),
        f("opq/only", b"only"),
        fifo("pipe"),
    )


@needs_root
def test_round_trip_layer_diff_layer(tmp_path: Path) -> None:
    first, second, third = (tmp_path / n for n in ("one", "two", "three"))
    apply(_rich_layer(), first)
    out = io.BytesIO()
    summary = diff_tar([], first, out)
    assert summary.bytes == len(out.getvalue())
    assert summary.diff_id == sha256(out.getvalue())
    applied = apply(out.getvalue(), second)
    assert applied.diff_id == summary.diff_id
    assert tree(first) == tree(second)
    again = io.BytesIO()
    diff_tar([], second, again)
    assert again.getvalue() == out.getvalue()  # same tree, same bytes
    names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
    assert ".wh.removed" in names
    assert names.index("opq/.wh..wh..opq") == names.index("opq") + 1
    apply(again.getvalue(), third)
    assert tree(third) == tree(first)


def test_diff_tar_is_deterministic_and_clamps_mtimes(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "b/c").mkdir(parents=True)
    (upper / "a").write_text("a")
    (upper / "b/c/d").write_text("d")
    os.link(upper / "a", upper / "b/hard")
    os.symlink("a", upper / "link")
    outputs = []
    for _ in range(2):
        out = io.BytesIO()
        diff_tar([], upper, out, mtime_clamp=1000)
        outputs.append(out.getvalue())
        os.utime(upper / "a", (5, 5000))  # later mtimes are clamped: same bytes
    assert outputs[0] == outputs[1]
    with tarfile.open(fileobj=io.BytesIO(outputs[0])) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a", "b", "b/c", "b/c/d", "b/hard", "link"]
    assert all(m.mtime == 1000 for m in members)
    assert members[4].islnk() and members[4].linkname == "a"
    for member in members:
        assert "atime" not in member.pax_headers and "ctime" not in member.pax_headers
        assert member.uname == "" and member.gname == ""


def test_diff_tar_refuses_overlay_redirects(tmp_path: Path) -> None:
    if not ROOT:
        pytest.skip("needs root (trusted xattrs)")
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(LayerError, match="redirect"):
        diff_tar([], upper, io.BytesIO())
