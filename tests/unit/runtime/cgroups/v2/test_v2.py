"""cove.runtime.cgroups.v2 (the package): the registry and enable_controllers."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.runtime.cgroups import v2
from cove.runtime.cgroups.v2 import _files

ALL = "cpuset cpu io memory hugetlb pids"


def test_registry() -> None:
    assert list(v2.CONTROLLERS) == [
        "cpuset", "cpu", "memory", "pids", "io", "hugetlb", "devices", "freezer", "unified",
    ]  # fmt: skip
    for name, controller in v2.CONTROLLERS.items():
        assert controller.name == name
        assert callable(controller.apply) and callable(controller.stats)


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """root/cove/ct1 where root offers every controller and enabled none; writing
    "+name" to a subtree_control shows name in the children's cgroup.controllers."""
    root = tmp_path / "unified"
    for path in (root, root / "cove", root / "cove" / "ct1"):
        path.mkdir(parents=True)
        (path / "cgroup.controllers").write_text(f"{ALL}\n" if path == root else "\n")
        (path / "cgroup.subtree_control").write_text("\n")
    real = _files.write_raw

    def write(file: str, value: str) -> None:
        path = Path(file)
        assert path.name == "cgroup.subtree_control" and value.startswith("+")
        name = value[1:]
        if name not in (path.parent / "cgroup.controllers").read_text().split():
            raise OSError(errno.ENOENT, "No such file or directory")  # what the kernel says
        real(file, " ".join([*path.read_text().split(), name]) + "\n")
        for child in path.parent.iterdir():
            if child.is_dir():
                controllers = child / "cgroup.controllers"
                controllers.write_text(" ".join([*controllers.read_text().split(), name]) + "\n")

    monkeypatch.setattr(_files, "write_raw", write)
    return root


def test_enables_down_to_the_parent(tree: Path) -> None:
    leaf = tree / "cove" / "ct1"
    enabled = v2.enable_controllers(str(tree), str(leaf), set(v2.CONTROLLERS))
    assert enabled == {"cpuset", "cpu", "io", "memory", "hugetlb", "pids"}
    for path in (tree, tree / "cove"):
        assert sorted((path / "cgroup.subtree_control").read_text().split()) == sorted(enabled)
    assert (leaf / "cgroup.subtree_control").read_text() == "\n"  # never the leaf itself
    assert sorted((leaf / "cgroup.controllers").read_text().split()) == sorted(enabled)


def test_already_enabled_is_not_written_again(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    v2.enable_controllers(str(tree), str(tree / "cove" / "ct1"), {"memory", "pids"})
    made: list[str] = []
    monkeypatch.setattr(_files, "write_raw", lambda file, value: made.append(value))
    assert v2.enable_controllers(str(tree), str(tree / "cove" / "ct1"), {"memory"}) == {"memory"}
    assert made == []


def test_unavailable_controllers_are_skipped(tree: Path) -> None:
    (tree / "cgroup.controllers").write_text("memory pids\n")
    enabled = v2.enable_controllers(str(tree), str(tree / "cove" / "ct1"), {"memory", "cpu", "io"})
    assert enabled == {"memory"}


def test_required_controller_missing(tree: Path) -> None:
    (tree / "cgroup.controllers").write_text("memory pids\n")
    with pytest.raises(CgroupError, match=r"^cgroup v2 controller cpu is needed but not offered"):
        v2.enable_controllers(str(tree), str(tree / "cove" / "ct1"), {"memory", "cpu"}, {"cpu"})


def test_refused_write(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(file: str, value: str) -> None:
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(_files, "write_raw", refuse)
    leaf = str(tree / "cove" / "ct1")
    assert v2.enable_controllers(str(tree), leaf, {"cpu", "memory"}) == set()
    with pytest.raises(CgroupError, match=r"cannot write \+cpu to .*Device or resource busy$"):
        v2.enable_controllers(str(tree), leaf, {"cpu", "memory"}, required={"cpu"})


def test_path_outside_the_mount(tree: Path) -> None:
    with pytest.raises(CgroupError, match=r"is not under the cgroup2 mount"):
        v2.enable_controllers(str(tree / "cove"), str(tree / "other"), {"memory"})


def test_missing_ancestor(tree: Path) -> None:
    with pytest.raises(CgroupError, match=r"^cannot read .*/nowhere/cgroup\.controllers"):
        v2.enable_controllers(str(tree), str(tree / "nowhere" / "ct"), {"memory"})


def test_the_root_itself(tree: Path) -> None:
    assert v2.enable_controllers(str(tree), str(tree), {"memory", "rdma"}) == {"memory"}


def test_a_direct_child_of_the_root(tree: Path) -> None:
    assert v2.enable_controllers(str(tree) + "/", str(tree / "cove"), {"pids"}) == {"pids"}
    assert (tree / "cgroup.subtree_control").read_text() == "pids\n"
