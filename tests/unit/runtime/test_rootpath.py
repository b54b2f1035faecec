"""cove.runtime.rootpath: container paths resolved inside the rootfs, never outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cove.errors import PathEscapesRoot
from cove.runtime.rootpath import ensure_mountpoint, make_parents, resolve_in_root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return rootfs


def resolve(root: Path, path: str) -> str:
    return resolve_in_root(str(root), path)


def test_plain_and_missing_paths(root: Path) -> None:
    assert resolve(root, "/etc/passwd") == f"{root}/etc/passwd"
    assert resolve(root, "/does/not/exist") == f"{root}/does/not/exist"
    assert resolve(root, "etc") == f"{root}/etc"  # relative means from the root too


@pytest.mark.parametrize("path", ["/", "", ".", "//", "/./.", "/etc/.."])
def test_root_itself(root: Path, path: str) -> None:
    assert resolve(root, path) == str(root)


def test_dot_and_repeated_slashes(root: Path) -> None:
    assert resolve(root, "//etc/./passwd/") == f"{root}/etc/passwd"


def test_absolute_symlink_resolves_inside_root(root: Path) -> None:
    (root / "etc" / "x").symlink_to("/etc/passwd")
    assert resolve(root, "/etc/x") == f"{root}/etc/passwd"


def test_symlinked_directory_in_the_middle(root: Path) -> None:
    (root / "var").mkdir()
    (root / "var" / "run").symlink_to("/run")
    assert resolve(root, "/var/run/app/sock") == f"{root}/run/app/sock"


def test_relative_symlink_is_relative_to_its_directory(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "link").symlink_to("../c/d")
    assert resolve(root, "/a/b/link/e") == f"{root}/a/c/d/e"


def test_dotdot_inside_the_root(root: Path) -> None:
    assert resolve(root, "/etc/../etc/./passwd") == f"{root}/etc/passwd"
    assert resolve(root, "/a/b/../../etc") == f"{root}/etc"


@pytest.mark.parametrize("path", ["/..", "/../etc/passwd", "/etc/../../etc", "a/../../b"])
def test_dotdot_above_the_root_raises(root: Path, path: str) -> None:
    with pytest.raises(PathEscapesRoot, match=r"leads outside the container's root"):
        resolve(root, path)


def test_symlink_climbing_above_the_root_raises(root: Path) -> None:
    (root / "escape").symlink_to("../../../../../../../../etc")
    with pytest.raises(PathEscapesRoot, match=r"'/escape/passwd' leads outside"):
        resolve(root, "/escape/passwd")
    (root / "etc" / "up").symlink_to("../..")
    with pytest.raises(PathEscapesRoot):
        resolve(root, "/etc/up")


def test_relative_symlink_within_the_root(root: Path) -> None:
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "conf").symlink_to("../../etc")
    assert resolve(root, "/usr/lib/conf/passwd") == f"{root}/etc/passwd"


def test_dotdot_after_symlink_follows_the_target(root: Path) -> None:
    (root / "x" / "y").mkdir(parents=True)
    (root / "link").symlink_to("/x/y")
    # like the kernel: '..' of the link's target, not of the link
    assert resolve(root, "/link/..") == f"{root}/x"


def test_chained_symlinks(root: Path) -> None:
    (root / "one").symlink_to("two")
    (root / "two").symlink_to("/three")
    (root / "three").symlink_to("etc")
    assert resolve(root, "/one/passwd") == f"{root}/etc/passwd"


@pytest.mark.parametrize(
    "links",
    [
        [("a", "b"), ("b", "a")],
        [("self", "self")],
        [("loop", "/loop")],
        [("deep", "deep/x")],
    ],
)
def test_symlink_loops_raise(root: Path, links: list[tuple[str, str]]) -> None:
    for name, target in links:
        (root / name).symlink_to(target)
    with pytest.raises(PathEscapesRoot, match=r"too many levels of symbolic links"):
        resolve(root, f"/{links[0][0]}/file")


def test_file_used_as_directory_raises(root: Path) -> None:
    with pytest.raises(PathEscapesRoot, match=r"'/etc/passwd' is not a directory"):
        resolve(root, "/etc/passwd/x")


def test_symlink_to_file_used_as_directory_raises(root: Path) -> None:
    (root / "p").symlink_to("/etc/passwd")
    with pytest.raises(PathEscapesRoot, match=r"is not a directory"):
        resolve(root, "/p/sub/dir")


@pytest.fixture
def tricky(root: Path) -> Path:
    (root / "l1").symlink_to("/../../..")
    (root / "l2").symlink_to("../../../tmp")
    (root / "l3").symlink_to("l1/etc")
    (root / "l4").symlink_to("/etc/../etc")
    (root / "l5").symlink_to("/")
    return root


@pytest.mark.parametrize("path", ["/a/../../x", "/l1/x", "/l2/y", "/l3/z", "/etc/../l1/w"])
def test_tricky_escapes_raise(tricky: Path, path: str) -> None:
    with pytest.raises(PathEscapesRoot):
        resolve(tricky, path)


@pytest.mark.parametrize(
    ("path", "inside"), [("/l4/x", "/etc/x"), ("/l5", ""), ("/l5/l5/l4", "/etc"), ("/l4/..", "")]
)
def test_tricky_links_that_stay_inside(tricky: Path, path: str, inside: str) -> None:
    assert resolve(tricky, path) == f"{tricky}{inside}"


# --- make_parents and ensure_mountpoint ---------------------------------------------------


def test_make_parents_creates_inside(root: Path) -> None:
    target = f"{root}/new/deep/dir"
    make_parents(str(root), target)
    assert os.path.isdir(target)
    make_parents(str(root), target)  # exists: fine
    make_parents(str(root), str(root))


@pytest.mark.parametrize("outside", ["/tmp/cove-never-created", "{root}2/x", "{parent}"])
def test_make_parents_refuses_outside(root: Path, outside: str) -> None:
    path = outside.format(root=root, parent=root.parent)
    with pytest.raises(PathEscapesRoot, match=r"is outside the container root"):
        make_parents(str(root), path)
    assert not os.path.exists(path) or path == str(root.parent)


def test_make_parents_refuses_dotdot_escape(root: Path) -> None:
    with pytest.raises(PathEscapesRoot):
        make_parents(str(root), f"{root}/../escaped")
    assert not (root.parent / "escaped").exists()


def test_ensure_mountpoint_dir_and_file(root: Path) -> None:
    ensure_mountpoint(str(root), f"{root}/mnt/dir", is_file=False)
    assert (root / "mnt" / "dir").is_dir()
    ensure_mountpoint(str(root), f"{root}/mnt/sub/file", is_file=True)
    made = root / "mnt" / "sub" / "file"
    assert made.is_file()
    assert made.stat().st_size == 0


def test_ensure_mountpoint_keeps_existing_file(root: Path) -> None:
    ensure_mountpoint(str(root), f"{root}/etc/passwd", is_file=True)
    assert (root / "etc" / "passwd").read_text().startswith("root:")


def test_ensure_mountpoint_does_not_follow_a_dangling_symlink(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside-file"
    (root / "etc" / "hostile").symlink_to(outside)
    ensure_mountpoint(str(root), f"{root}/etc/hostile", is_file=True)
    assert not outside.exists()


def test_ensure_mountpoint_refuses_outside(root: Path, tmp_path: Path) -> None:
    with pytest.raises(PathEscapesRoot):
        ensure_mountpoint(str(root), str(tmp_path / "elsewhere" / "f"), is_file=True)
    assert not (tmp_path / "elsewhere").exists()
