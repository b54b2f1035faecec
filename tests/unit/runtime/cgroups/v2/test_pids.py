"""cove.runtime.cgroups.v2.pids on a fake cgroup v2 directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.oci.resources import LinuxResources
from cove.runtime.cgroups.v2 import pids

CONTROLLER = pids.CONTROLLER


@pytest.mark.parametrize(("limit", "text"), [(100, "100"), (0, "max"), (-1, "max"), (1, "1")])
def test_limit(cgroup: Path, limit: int, text: str) -> None:
    CONTROLLER.apply(str(cgroup), LinuxResources(pids_limit=limit))
    assert (cgroup / "pids.max").read_text() == text


def test_unset_is_left_alone(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    CONTROLLER.apply(str(cgroup), LinuxResources())
    assert writes == []


def test_missing_controller(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.pids\.limit: cannot set 5: "):
        CONTROLLER.apply(str(tmp_path), LinuxResources(pids_limit=5))


def test_stats(cgroup: Path, tmp_path: Path) -> None:
    (cgroup / "pids.current").write_text("3\n")
    data: dict[str, object] = {}
    CONTROLLER.stats(str(cgroup), data)
    assert data == {"pids": {"current": 3, "limit": 0}}  # unlimited reads as 0, as runc
    (cgroup / "pids.max").write_text("64\n")
    CONTROLLER.stats(str(cgroup), data)
    assert data == {"pids": {"current": 3, "limit": 64}}
    empty: dict[str, object] = {}
    CONTROLLER.stats(str(tmp_path), empty)
    assert empty == {}
