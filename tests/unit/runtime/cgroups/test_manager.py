"""CgroupManager.apply routes resources to the right controllers on v2 and v1 layouts
(fake trees in a temporary folder; the real kernel is tested in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.oci.resources import parse_resources
from cove.runtime.cgroups import CgroupManager
from cove.runtime.cgroups.layout import Hierarchy, Layout
from tests.unit.runtime.cgroups.v2.conftest import INITIAL

V1_FILES = {
    "memory": {"memory.limit_in_bytes": "9223372036854771712\n",
               "memory.soft_limit_in_bytes": "9223372036854771712\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
}  # fmt: skip


def _tree(root: Path, files: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (root / name).write_text(content)


def test_v2_enables_controllers_and_writes_limits(tmp_path: Path) -> None:
    mount = tmp_path / "unified"
    _tree(mount, {"cgroup.controllers": INITIAL["cgroup.controllers"],
                  "cgroup.subtree_control": "\n"})  # fmt: skip
    leaf = mount / "cove" / "c1"
    _tree(mount / "cove", {"cgroup.controllers": INITIAL["cgroup.controllers"],
                           "cgroup.subtree_control": "\n"})  # fmt: skip
    _tree(leaf, INITIAL)
    layout = Layout((Hierarchy(str(mount), 2, ()),))
    manager = CgroupManager({str(mount): str(leaf)})
    resources = parse_resources({"memory": {"limit": 1 << 26}, "pids": {"limit": 7}})
    assert manager.apply(resources, layout) == []
    assert (leaf / "memory.max").read_text().strip() == str(1 << 26)
    assert (leaf / "pids.max").read_text().strip() == "7"
    # the parents hand the controllers down (a plain file keeps only the last "+name"
    # written; the kernel accumulates them)
    assert (mount / "cove" / "cgroup.subtree_control").read_text().startswith("+")
    assert (mount / "cgroup.subtree_control").read_text().startswith("+")


def test_v1_routes_each_hierarchy_to_its_controller(tmp_path: Path) -> None:
    paths = {}
    hierarchies = []
    for name, files in V1_FILES.items():
        mount = tmp_path / name
        _tree(mount / "cove" / "c1", files)
        paths[str(mount)] = str(mount / "cove" / "c1")
        hierarchies.append(Hierarchy(str(mount), 1, (name,)))
    manager = CgroupManager(paths)
    resources = parse_resources({"memory": {"limit": 1 << 25}, "pids": {"limit": 9}})
    manager.apply(resources, Layout(tuple(hierarchies)))
    assert (tmp_path / "memory/cove/c1/memory.limit_in_bytes").read_text().strip() == str(1 << 25)
    assert (tmp_path / "pids/cove/c1/pids.max").read_text().strip() == "9"


def test_a_limit_no_controller_enforces_is_refused(tmp_path: Path) -> None:
    mount = tmp_path / "pids"
    _tree(mount / "c1", V1_FILES["pids"])
    manager = CgroupManager({str(mount): str(mount / "c1")})
    layout = Layout((Hierarchy(str(mount), 1, ("pids",)),))
    with pytest.raises(CgroupError, match=r"linux.resources.memory: no memory controller"):
        manager.apply(parse_resources({"memory": {"limit": 1 << 25}}), layout)


def test_network_limits_without_controllers_are_warnings(tmp_path: Path) -> None:
    mount = tmp_path / "pids"
    _tree(mount / "c1", V1_FILES["pids"])
    manager = CgroupManager({str(mount): str(mount / "c1")})
    layout = Layout((Hierarchy(str(mount), 1, ("pids",)),))
    warnings = manager.apply(parse_resources({"network": {"classID": 7}}), layout)
    assert len(warnings) == 1 and "classID" in warnings[0]


def test_unified_values_need_a_v2_host(tmp_path: Path) -> None:
    mount = tmp_path / "pids"
    _tree(mount / "c1", V1_FILES["pids"])
    manager = CgroupManager({str(mount): str(mount / "c1")})
    layout = Layout((Hierarchy(str(mount), 1, ("pids",)),))
    with pytest.raises(CgroupError, match="unified: needs a cgroup v2 host"):
        manager.apply(parse_resources({"unified": {"memory.high": "1000000"}}), layout)


def test_shared_cgroup_is_not_removed(tmp_path: Path) -> None:
    leaf = tmp_path / "pids" / "shared"
    leaf.mkdir(parents=True)
    manager = CgroupManager({str(tmp_path / "pids"): str(leaf)})
    assert manager.exists()
    manager.owned = not manager.exists()
    manager.destroy()
    assert leaf.is_dir()
