"""cgroups.v1.net_prio on a fake net_prio cgroup."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import LinuxResources, NetworkPriority
from cove.runtime.cgroups.v1 import net_prio
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel


def test_one_interface_per_write(kernel: FakeKernel) -> None:
    path = kernel.cgroup("net_prio")
    assert net_prio.CONTROLLER.name == "net_prio"
    priorities = (NetworkPriority("eth0", 5), NetworkPriority("lo", 1))
    net_prio.CONTROLLER.apply(path, LinuxResources(network_priorities=priorities))
    assert kernel.writes == [("net_prio.ifpriomap", "eth0 5"), ("net_prio.ifpriomap", "lo 1")]


def test_no_priorities_leave_it_alone(kernel: FakeKernel) -> None:
    path = kernel.cgroup("net_prio")
    net_prio.CONTROLLER.apply(path, LinuxResources())
    data: dict[str, Any] = {}
    net_prio.CONTROLLER.stats(path, data)
    assert (kernel.writes, data) == ([], {})


def test_unknown_interface_names_the_entry(kernel: FakeKernel) -> None:
    path = kernel.cgroup("net_prio")
    kernel.refuse("net_prio.ifpriomap", errno.ENODEV, lambda v: v.startswith("nosuch"))
    priorities = (NetworkPriority("lo", 1), NetworkPriority("nosuch0", 2))
    with pytest.raises(CgroupError) as caught:
        net_prio.CONTROLLER.apply(path, LinuxResources(network_priorities=priorities))
    assert str(caught.value) == (
        f"linux.resources.network.priorities[1]: cannot set nosuch0 2 in {path}: No such device"
    )
