"""cgroups.v1.pids on a fake pids cgroup."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import LinuxResources
from cove.runtime.cgroups.v1 import pids
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel, read


@pytest.mark.parametrize(("limit", "written"), [(100, "100"), (0, "max"), (-1, "max")])
def test_limit(kernel: FakeKernel, limit: int, written: str) -> None:
    path = kernel.cgroup("pids", pids__max="5")
    pids.CONTROLLER.apply(path, LinuxResources(pids_limit=limit))
    assert read(path, "pids.max") == written


def test_no_limit_leaves_it_alone(kernel: FakeKernel) -> None:
    path = kernel.cgroup("pids")
    assert pids.CONTROLLER.name == "pids"
    pids.CONTROLLER.apply(path, LinuxResources())
    assert kernel.writes == []


def test_refused_limit_names_the_field(kernel: FakeKernel) -> None:
    path = kernel.cgroup("pids")
    kernel.refuse("pids.max", errno.EINVAL)
    with pytest.raises(CgroupError, match=r"^linux\.resources\.pids\.limit: cannot set 7 in "):
        pids.CONTROLLER.apply(path, LinuxResources(pids_limit=7))


@pytest.mark.parametrize(("max_text", "limit"), [("max", 0), ("64", 64)])
def test_stats(kernel: FakeKernel, max_text: str, limit: int) -> None:
    path = kernel.cgroup("pids", pids__current="3", pids__max=max_text)
    data: dict[str, Any] = {}
    pids.CONTROLLER.stats(path, data)
    assert data["pids"] == {"current": 3, "limit": limit}
