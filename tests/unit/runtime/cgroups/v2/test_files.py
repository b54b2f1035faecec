"""cove.runtime.cgroups.v2._files: the file formats of cgroup v2."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.runtime.cgroups.v2 import _files


def test_flat_keyed() -> None:
    text = "usage_usec 12\nuser_usec 7\nodd\nbad x\nnr_periods max\n\n"
    assert _files.flat_keyed(text) == {
        "usage_usec": 12,
        "user_usec": 7,
        "nr_periods": _files.MAX_UINT64,
    }


def test_nested_keyed() -> None:
    text = "8:0 rbytes=1 wbytes=2 odd dbytes=x\n\n253:1 rios=max\n"
    assert _files.nested_keyed(text) == {
        "8:0": {"rbytes": 1, "wbytes": 2},
        "253:1": {"rios": _files.MAX_UINT64},
    }


def test_numbers(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("42\n")
    (tmp_path / "b").write_text("max\n")
    (tmp_path / "c").write_text("\n")
    assert _files.read_number(str(tmp_path), "a") == 42
    assert _files.read_number(str(tmp_path), "b") == _files.MAX_UINT64
    assert _files.read_number(str(tmp_path), "c") is None
    assert _files.read_number(str(tmp_path), "missing") is None
    assert _files.read(str(tmp_path / "a"), "x") is None  # a file where a dir should be


def test_write_replaces_and_never_creates(tmp_path: Path) -> None:
    (tmp_path / "memory.max").write_text("123456789\n")
    _files.write(str(tmp_path), "memory.max", "max", "linux.resources.memory.limit")
    assert (tmp_path / "memory.max").read_text() == "max"
    with pytest.raises(CgroupError, match=r"^linux\.resources\.x: cannot set 1: .* does not exist"):
        _files.write(str(tmp_path), "pids.max", "1", "linux.resources.x")
    assert not (tmp_path / "pids.max").exists()


def test_read_error(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    with pytest.raises(CgroupError, match=r"^cannot read .*/dir: Is a directory$"):
        _files.read(str(tmp_path), "dir")
