"""cove.runtime.cgroups.v2.cpuset on a fake cgroup v2 directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.oci.resources import CPU, LinuxResources
from cove.runtime.cgroups.v2 import _files, cpuset

CONTROLLER = cpuset.CONTROLLER


def test_cpus_and_mems(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    CONTROLLER.apply(str(cgroup), LinuxResources(cpu=CPU(cpus="0-1,3", mems="0")))
    assert writes == [("cpuset.cpus", "0-1,3"), ("cpuset.mems", "0")]


def test_unset_fields_are_left_alone(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    CONTROLLER.apply(str(cgroup), LinuxResources(cpu=CPU(shares=1024)))
    CONTROLLER.apply(str(cgroup), LinuxResources())
    assert writes == []


def test_refusal_names_the_field(cgroup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def invalid(file: str, value: str) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(_files, "write_raw", invalid)
    with pytest.raises(CgroupError, match=r"^linux\.resources\.cpu\.mems: cannot set 7 in "):
        CONTROLLER.apply(str(cgroup), LinuxResources(cpu=CPU(mems="7")))


@pytest.mark.parametrize(
    ("text", "numbers"),
    [("0-3\n", [0, 1, 2, 3]), ("0,2-3,7", [0, 2, 3, 7]), ("\n", []), ("5", [5])],
)
def test_parse_list(text: str, numbers: list[int]) -> None:
    assert cpuset.parse_list(text) == numbers


def test_stats(cgroup: Path, tmp_path: Path) -> None:
    data: dict[str, object] = {}
    CONTROLLER.stats(str(cgroup), data)
    assert data == {"cpuset": {"cpus": [0, 1, 2, 3], "mems": [0]}}
    empty: dict[str, object] = {}
    CONTROLLER.stats(str(tmp_path), empty)
    assert empty == {}
