"""cove.runtime.cgroups.v2.unified on a fake cgroup v2 directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.oci.resources import LinuxResources
from cove.runtime.cgroups.v2 import _files, unified

CONTROLLER = unified.CONTROLLER


def test_writes_each_key(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    values = {"memory.high": "1073741824", "pids.max": "20", "io.weight": "8:0 50"}
    CONTROLLER.apply(str(cgroup), LinuxResources(unified=values))
    assert writes == list(values.items())
    assert (cgroup / "memory.high").read_text() == "1073741824"


@pytest.mark.parametrize("key", ["../memory.max", "sub/memory.max", "..", ".", "", "a..b"])
def test_refuses_names_outside_the_directory(cgroup: Path, key: str) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.unified\[.*not a cgroup"):
        CONTROLLER.apply(str(cgroup), LinuxResources(unified={key: "1"}))


def test_missing_file_names_the_key(cgroup: Path) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.unified\['rdma\.max'\]: no such"):
        CONTROLLER.apply(str(cgroup), LinuxResources(unified={"rdma.max": "mlx4_0 hca_handle=2"}))


def test_refusal_names_key_and_value(cgroup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def invalid(file: str, value: str) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(_files, "write_raw", invalid)
    with pytest.raises(
        CgroupError,
        match=r"^linux\.resources\.unified\['cpu\.weight'\]: cannot set 0 in .*Invalid argument$",
    ):
        CONTROLLER.apply(str(cgroup), LinuxResources(unified={"cpu.weight": "0"}))


def test_nothing_set(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    CONTROLLER.apply(str(cgroup), LinuxResources())
    data: dict[str, object] = {}
    CONTROLLER.stats(str(cgroup), data)
    assert (writes, data) == ([], {})
