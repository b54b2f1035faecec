"""cgroups.v1.net_cls on a fake net_cls cgroup."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import LinuxResources
from cove.runtime.cgroups.v1 import net_cls
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel, read


def test_class_id(kernel: FakeKernel) -> None:
    path = kernel.cgroup("net_cls")
    assert net_cls.CONTROLLER.name == "net_cls"
    net_cls.CONTROLLER.apply(path, LinuxResources(network_class_id=0x100001))
    assert read(path, "net_cls.classid") == "1048577"


def test_no_class_id_leaves_it_alone(kernel: FakeKernel) -> None:
    path = kernel.cgroup("net_cls")
    net_cls.CONTROLLER.apply(path, LinuxResources())
    data: dict[str, Any] = {}
    net_cls.CONTROLLER.stats(path, data)
    assert (kernel.writes, data) == ([], {})


def test_refused_class_id_names_the_field(kernel: FakeKernel) -> None:
    path = kernel.cgroup("net_cls")
    kernel.refuse("net_cls.classid", errno.ERANGE)
    with pytest.raises(CgroupError, match=r"^linux\.resources\.network\.classID: cannot set"):
        net_cls.CONTROLLER.apply(path, LinuxResources(network_class_id=1 << 40))
