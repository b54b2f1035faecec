"""cove.runtime.cgroups.v2.io on a fake cgroup v2 directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.oci.resources import BlockIO, DeviceRate, LinuxResources
from cove.runtime.cgroups.v2 import _files, io

CONTROLLER = io.CONTROLLER


def apply(cgroup: Path, **fields: object) -> None:
    CONTROLLER.apply(str(cgroup), LinuxResources(block_io=BlockIO(**fields)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("blkio", "weight"), [(10, 1), (1000, 10000), (500, 4950), (100, 910), (5, 1), (2000, 10000)]
)
def test_weight_conversion(blkio: int, weight: int) -> None:
    assert io.blkio_to_io_weight(blkio) == weight


def test_weight_through_io_weight(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    apply(cgroup, weight=500, weight_device=(DeviceRate(8, 0, 100),))
    assert writes == [("io.weight", "default 4950"), ("io.weight", "8:0 910")]


def test_weight_through_bfq_too(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    (cgroup / "io.bfq.weight").write_text("default 100\n")
    apply(cgroup, weight=500, weight_device=(DeviceRate(8, 16, 100),))
    assert writes == [
        ("io.bfq.weight", "500"),
        ("io.weight", "default 4950"),
        ("io.bfq.weight", "8:16 100"),
        ("io.weight", "8:16 910"),
    ]


def test_bfq_only(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    (cgroup / "io.weight").unlink()
    (cgroup / "io.bfq.weight").write_text("default 100\n")
    apply(cgroup, weight=300)
    assert writes == [("io.bfq.weight", "300")]


def test_no_weight_file(cgroup: Path) -> None:
    (cgroup / "io.weight").unlink()
    with pytest.raises(CgroupError, match=r"^linux\.resources\.blockIO\.weight: .*neither"):
        apply(cgroup, weight=300)


def test_throttles(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    apply(
        cgroup,
        throttle_read_bps=(DeviceRate(8, 0, 1 << 20),),
        throttle_write_bps=(DeviceRate(8, 0, 2 << 20), DeviceRate(8, 16, 0)),
        throttle_read_iops=(DeviceRate(259, 1, 100),),
        throttle_write_iops=(DeviceRate(259, 1, 50),),
    )
    assert writes == [
        ("io.max", f"8:0 rbps={1 << 20}"),
        ("io.max", f"8:0 wbps={2 << 20}"),
        ("io.max", "8:16 wbps=max"),  # 0 removes the limit, as in v1
        ("io.max", "259:1 riops=100"),
        ("io.max", "259:1 wiops=50"),
    ]


def test_unset_fields_are_left_alone(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    apply(cgroup, weight=0, leaf_weight=300)  # leafWeight is v1 only: ignored, as runc
    CONTROLLER.apply(str(cgroup), LinuxResources())
    assert writes == []


def test_refusal_names_the_field(cgroup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_device(file: str, value: str) -> None:
        raise OSError(19, "No such device")

    monkeypatch.setattr(_files, "write_raw", no_device)
    with pytest.raises(
        CgroupError,
        match=r"^linux\.resources\.blockIO\.throttleReadIOPSDevice: cannot set 9:9 riops=5 in ",
    ):
        apply(cgroup, throttle_read_iops=(DeviceRate(9, 9, 5),))


def test_stats(cgroup: Path, tmp_path: Path) -> None:
    (cgroup / "io.stat").write_text(
        "8:16 rbytes=1459200 wbytes=314773504 rios=192 wios=353 dbytes=0 dios=0\n"
        "8:0 rbytes=90430464 wbytes=299008000 rios=8950 wios=1252 dbytes=50331648 dios=3021\n"
    )
    data: dict[str, object] = {}
    CONTROLLER.stats(str(cgroup), data)
    assert data == {
        "blkio": {
            "ioServiceBytesRecursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 90430464},
                {"major": 8, "minor": 0, "op": "Write", "value": 299008000},
                {"major": 8, "minor": 16, "op": "Read", "value": 1459200},
                {"major": 8, "minor": 16, "op": "Write", "value": 314773504},
            ],
            "ioServicedRecursive": [
                {"major": 8, "minor": 0, "op": "Read", "value": 8950},
                {"major": 8, "minor": 0, "op": "Write", "value": 1252},
                {"major": 8, "minor": 16, "op": "Read", "value": 192},
                {"major": 8, "minor": 16, "op": "Write", "value": 353},
            ],
        }
    }
    empty: dict[str, object] = {}
    CONTROLLER.stats(str(tmp_path), empty)
    assert empty == {}
