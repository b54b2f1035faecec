"""cove.runtime.cgroups (the package's __init__): paths and the manager, on a fake tree."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.runtime import cgroups
from cove.runtime.cgroups import CgroupManager, cgroup_relpath
from cove.runtime.cgroups.layout import Hierarchy, Layout


@pytest.mark.parametrize(
    ("cgroups_path", "expected"),
    [
        ("", "/cove/ct1"),
        ("/abs/path", "/abs/path"),
        ("/abs/path/", "/abs/path"),
        ("rel/path", "/rel/path"),
        ("system.slice:cove:ct1", "/system.slice/cove-ct1"),
        ("machine.slice::ct1", "/machine.slice/ct1"),
        ("/odd:but/absolute", "/odd:but/absolute"),
    ],
)
def test_cgroup_relpath(cgroups_path: str, expected: str) -> None:
    assert cgroup_relpath(cgroups_path, "ct1") == expected


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """A fake hybrid tree: cpuset (v1, with values), memory (v1), unified (v2)."""
    mounts = {name: tmp_path / "cgroup" / name for name in ("cpuset", "memory", "unified")}
    for path in mounts.values():
        path.mkdir(parents=True)
    (mounts["cpuset"] / "cpuset.cpus").write_text("0-3\n")
    (mounts["cpuset"] / "cpuset.mems").write_text("0\n")
    return mounts


@pytest.fixture
def kernel_like_mkdir(monkeypatch: pytest.MonkeyPatch) -> None:
    """mkdir in a cpuset dir gives empty cpuset files, as the v1 cpuset controller does."""
    real_mkdir = os.mkdir

    def mkdir(path: str, mode: int = 0o777) -> None:
        real_mkdir(path, mode)
        parent = os.path.dirname(path)
        for name in ("cpuset.cpus", "cpuset.mems"):
            if os.path.exists(os.path.join(parent, name)):
                with open(os.path.join(path, name), "w"):
                    pass

    monkeypatch.setattr(cgroups.os, "mkdir", mkdir)


def manager(tree: dict[str, Path], relpath: str = "/cove/ct1") -> CgroupManager:
    layout = Layout(
        tuple(Hierarchy(str(p), 2 if n == "unified" else 1, ()) for n, p in tree.items())
    )
    return CgroupManager.for_container(layout, relpath)


def test_for_container_maps_every_hierarchy(tree: dict[str, Path]) -> None:
    assert manager(tree).paths == {str(p): f"{p}/cove/ct1" for p in tree.values()}


def test_create_makes_dirs_and_copies_cpuset(
    tree: dict[str, Path], kernel_like_mkdir: None
) -> None:
    manager(tree, "/cove/a/b").create()
    for mount in tree.values():
        assert (mount / "cove" / "a" / "b").is_dir()
    for level in ("cove", "cove/a", "cove/a/b"):
        assert (tree["cpuset"] / level / "cpuset.cpus").read_text() == "0-3"
        assert (tree["cpuset"] / level / "cpuset.mems").read_text() == "0"
    assert not (tree["memory"] / "cove" / "cpuset.cpus").exists()


def test_create_keeps_configured_cpuset(tree: dict[str, Path], kernel_like_mkdir: None) -> None:
    parent = tree["cpuset"] / "cove"
    parent.mkdir()
    (parent / "cpuset.cpus").write_text("1\n")
    (parent / "cpuset.mems").write_text("0\n")
    manager(tree).create()
    # the existing parent is left alone; the child inherits from it, not from the root
    assert (parent / "cpuset.cpus").read_text() == "1\n"
    assert (tree["cpuset"] / "cove" / "ct1" / "cpuset.cpus").read_text() == "1"


def test_create_is_idempotent(tree: dict[str, Path], kernel_like_mkdir: None) -> None:
    m = manager(tree)
    m.create()
    (tree["cpuset"] / "cove" / "ct1" / "cpuset.cpus").write_text("2")
    m.create()
    assert (tree["cpuset"] / "cove" / "ct1" / "cpuset.cpus").read_text() == "2"


def test_create_failure_is_a_cgroup_error(tree: dict[str, Path]) -> None:
    (tree["memory"] / "cove").write_text("a file where a dir should be")
    with pytest.raises(CgroupError, match=f"^cannot create cgroup {tree['memory']}/cove/ct1: "):
        manager(tree).create()


def test_join_writes_the_pid_everywhere(tree: dict[str, Path]) -> None:
    m = manager(tree)
    m.create()
    m.join(4242)
    for path in m.paths.values():
        assert Path(path, "cgroup.procs").read_text() == "4242"


def test_join_failure_names_pid_and_cgroup(tree: dict[str, Path]) -> None:
    with pytest.raises(CgroupError, match=r"^cannot add pid 7 to cgroup .*/cove/ct1: "):
        manager(tree).join(7)  # never created


def test_pids(tree: dict[str, Path]) -> None:
    m = manager(tree)
    assert m.pids() == []
    m.create()
    Path(m.paths[str(tree["memory"])], "cgroup.procs").write_text("10\n11\n12\n")
    # the first hierarchy has no cgroup.procs (fake tree): the next one answers
    assert m.pids() == [10, 11, 12]


def test_destroy_removes_nested_dirs(tree: dict[str, Path]) -> None:
    m = manager(tree)
    m.create()
    nested = Path(m.paths[str(tree["unified"])], "sub", "subsub")
    nested.mkdir(parents=True)
    m.destroy()
    for mount in tree.values():
        assert not (mount / "cove" / "ct1").exists()
        assert (mount / "cove").is_dir()  # the parent stays


def test_destroy_of_missing_cgroups_is_fine(tree: dict[str, Path]) -> None:
    manager(tree).destroy()


def test_destroy_retries_busy(tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    m = manager(tree)
    m.create()
    real_rmdir = os.rmdir
    busy = {"left": 3}

    def rmdir(path: str) -> None:
        if busy["left"]:
            busy["left"] -= 1
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        real_rmdir(path)

    monkeypatch.setattr(cgroups.os, "rmdir", rmdir)
    m.destroy(timeout=5)
    assert busy["left"] == 0
    assert not any(os.path.exists(p) for p in m.paths.values())


def test_destroy_gives_up_after_timeout(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manager(tree)
    m.create()

    def rmdir(path: str) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy", path)

    monkeypatch.setattr(cgroups.os, "rmdir", rmdir)
    with pytest.raises(CgroupError, match=r"^cannot remove cgroup .*: Device or resource busy"):
        m.destroy(timeout=0.05)


def test_destroy_other_errors_fail_at_once(
    tree: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manager(tree)
    m.create()
    calls = []

    def rmdir(path: str) -> None:
        calls.append(path)
        raise OSError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(cgroups.os, "rmdir", rmdir)
    with pytest.raises(CgroupError, match=r"Permission denied"):
        m.destroy(timeout=5)
    assert len(calls) == 1
