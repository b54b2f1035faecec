"""cgroups.v1.blkio on a fake blkio cgroup."""

from __future__ import annotations

import errno
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import BlockIO, DeviceRate, LinuxResources
from cove.runtime.cgroups.v1 import blkio
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel


def apply(path: str, **fields: Any) -> None:
    blkio.CONTROLLER.apply(path, LinuxResources(block_io=BlockIO(**fields)))


def test_nothing_without_block_io(kernel: FakeKernel) -> None:
    path = kernel.cgroup("blkio")
    assert blkio.CONTROLLER.name == "blkio"
    blkio.CONTROLLER.apply(path, LinuxResources())
    apply(path, weight=0)
    assert kernel.writes == []


def test_weights_on_a_cfq_kernel(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "blkio", blkio__weight="500", blkio__weight_device="", blkio__leaf_weight="500"
    )
    apply(path, weight=300, leaf_weight=200, weight_device=(DeviceRate(8, 0, 700),))
    assert kernel.writes == [
        ("blkio.weight", "300"),
        ("blkio.leaf_weight", "200"),
        ("blkio.weight_device", "8:0 700"),
    ]


def test_weights_on_a_bfq_only_kernel(kernel: FakeKernel) -> None:
    path = kernel.cgroup("blkio")
    apply(path, weight=300, weight_device=(DeviceRate(254, 0, 700), DeviceRate(8, 16, 50)))
    assert kernel.writes == [
        ("blkio.bfq.weight", "300"),
        ("blkio.bfq.weight_device", "254:0 700"),
        ("blkio.bfq.weight_device", "8:16 50"),
    ]


def test_leaf_weight_without_cfq_is_an_error(kernel: FakeKernel) -> None:
    path = kernel.cgroup("blkio")
    with pytest.raises(CgroupError) as caught:
        apply(path, leaf_weight=200)
    assert str(caught.value) == (
        "linux.resources.blockIO.leafWeight: not supported by this kernel "
        f"(no blkio.leaf_weight in {path})"
    )


def test_throttles_one_device_per_write(kernel: FakeKernel) -> None:
    path = kernel.cgroup("blkio")
    apply(
        path,
        throttle_read_bps=(DeviceRate(8, 0, 1048576), DeviceRate(8, 16, 0)),
        throttle_write_bps=(DeviceRate(8, 0, 2097152),),
        throttle_read_iops=(DeviceRate(8, 0, 100),),
        throttle_write_iops=(DeviceRate(8, 0, 200),),
    )
    assert kernel.writes == [
        ("blkio.throttle.read_bps_device", "8:0 1048576"),
        ("blkio.throttle.read_bps_device", "8:16 0"),
        ("blkio.throttle.write_bps_device", "8:0 2097152"),
        ("blkio.throttle.read_iops_device", "8:0 100"),
        ("blkio.throttle.write_iops_device", "8:0 200"),
    ]


def test_refused_device_names_the_entry(kernel: FakeKernel) -> None:
    path = kernel.cgroup("blkio")
    kernel.refuse("blkio.throttle.write_iops_device", errno.ENODEV, lambda v: v.startswith("9:"))
    with pytest.raises(CgroupError) as caught:
        apply(path, throttle_write_iops=(DeviceRate(8, 0, 10), DeviceRate(9, 9, 10)))
    assert str(caught.value) == (
        f"linux.resources.blockIO.throttleWriteIOPSDevice[1]: cannot set 9:9 10 in {path}: "
        "No such device"
    )


SERVICE_BYTES = """\
8:0 Read 4096
8:0 Write 8192
8:0 Sync 12288
8:0 Async 0
8:0 Discard 0
8:0 Total 12288
Total 12288
"""


def test_stats_from_the_recursive_throttle_files(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "blkio",
        blkio__throttle__io_service_bytes_recursive=SERVICE_BYTES,
        blkio__throttle__io_serviced_recursive="8:0 Read 1\n8:0 Write 2\nTotal 3",
        blkio__throttle__io_serviced="8:0 Read 99",
    )
    data: dict[str, Any] = {}
    blkio.CONTROLLER.stats(path, data)
    assert data["blkio"]["ioServiceBytesRecursive"][:2] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 4096},
        {"major": 8, "minor": 0, "op": "Write", "value": 8192},
    ]
    assert len(data["blkio"]["ioServiceBytesRecursive"]) == 6
    assert data["blkio"]["ioServicedRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 1},
        {"major": 8, "minor": 0, "op": "Write", "value": 2},
    ]


def test_stats_fall_back_to_the_plain_files(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "blkio",
        drop=(
            "blkio.throttle.io_service_bytes_recursive",
            "blkio.throttle.io_serviced_recursive",
        ),
        blkio__throttle__io_serviced="8:0 Read 5\n8:0 7\nTotal 5",
    )
    data: dict[str, Any] = {}
    blkio.CONTROLLER.stats(path, data)
    assert data["blkio"] == {
        "ioServiceBytesRecursive": [],
        "ioServicedRecursive": [
            {"major": 8, "minor": 0, "op": "Read", "value": 5},
            {"major": 8, "minor": 0, "op": "", "value": 7},
        ],
    }
