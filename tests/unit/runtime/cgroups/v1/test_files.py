"""cgroups.v1._files: one write per value, errors naming the field, lenient reads."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.runtime.cgroups.v1 import _files
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel


def test_write_replaces_the_value(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("9223372036854771712\n")
    _files.write(str(tmp_path), "f", 100, "linux.resources.x")
    assert (tmp_path / "f").read_text() == "100"


def test_write_to_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(CgroupError) as caught:
        _files.write(str(tmp_path), "nope", 1, "linux.resources.x")
    assert str(caught.value) == (
        f"linux.resources.x: cannot set 1 in {tmp_path}: No such file or directory (no nope)"
    )


def test_settling_stops_when_nothing_moves(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpu")
    kernel.refuse("cpu.cfs_quota_us", errno.EINVAL)
    kernel.refuse("cpu.cfs_period_us", errno.EINVAL)
    steps = [("cpu.cfs_period_us", 1000, "a.period"), ("cpu.cfs_quota_us", 2000, "a.quota")]
    with pytest.raises(CgroupError, match=r"^a\.period: cannot set 1000 in "):
        _files.write_settling(path, steps)
    assert kernel.writes == []


def test_settling_raises_other_errors_at_once(kernel: FakeKernel) -> None:
    path = kernel.cgroup("cpu")
    kernel.refuse("cpu.cfs_period_us", errno.EACCES)
    steps = [("cpu.cfs_period_us", 1000, "a.period"), ("cpu.cfs_quota_us", 2000, "a.quota")]
    with pytest.raises(CgroupError, match=r"^a\.period: .*Permission denied$"):
        _files.write_settling(path, steps)
    assert kernel.writes == []


def test_reads(tmp_path: Path) -> None:
    (tmp_path / "keyed").write_text("a 1\nb 22\n\nodd\n")
    (tmp_path / "list").write_text("1 2 3 \n")
    (tmp_path / "empty").write_text("")
    path = str(tmp_path)
    assert _files.read_keyed(path, "keyed") == {"a": 1, "b": 22}
    assert _files.read_keyed(path, "missing") == {}
    assert _files.read_ints(path, "list") == [1, 2, 3]
    assert _files.read_int(path, "empty", 7) == 7
    assert _files.read_int(path, "missing") == 0
    assert _files.read(path, "missing") is None


def test_unreadable_number_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("lots\n")
    with pytest.raises(CgroupError, match=r"f: expected a number, got 'lots'$"):
        _files.read_int(str(tmp_path), "f")


@pytest.mark.parametrize(
    ("text", "numbers"),
    [("", []), ("\n", []), ("3", [3]), ("0-3,8,10-11\n", [0, 1, 2, 3, 8, 10, 11])],
)
def test_parse_list(text: str, numbers: list[int]) -> None:
    assert _files.parse_list(text) == numbers
