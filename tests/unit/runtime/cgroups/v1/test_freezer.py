"""cgroups.v1.freezer on a fake freezer cgroup."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import LinuxResources, Memory
from cove.runtime.cgroups.v1 import freezer
from tests.unit.runtime.cgroups.v1.conftest import FakeKernel, read


def test_apply_and_stats_do_nothing(kernel: FakeKernel) -> None:
    path = kernel.cgroup("freezer")
    assert freezer.CONTROLLER.name == "freezer"
    freezer.CONTROLLER.apply(path, LinuxResources(memory=Memory(limit=1 << 20)))
    data: dict[str, Any] = {}
    freezer.CONTROLLER.stats(path, data)
    assert (kernel.writes, data) == ([], {})


def test_freeze_and_thaw(kernel: FakeKernel) -> None:
    path = kernel.cgroup("freezer")
    assert not freezer.is_frozen(path)
    freezer.freeze(path)
    assert read(path, "freezer.state") == "FROZEN"
    assert freezer.is_frozen(path)
    freezer.thaw(path)
    assert read(path, "freezer.state") == "THAWED"
    assert not freezer.is_frozen(path)
    assert kernel.writes == [("freezer.state", "FROZEN"), ("freezer.state", "THAWED")]


def test_freeze_waits_while_freezing(kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kernel.cgroup("freezer")
    states = iter(["FREEZING", "FREEZING", "FROZEN"])
    monkeypatch.setattr(freezer, "state_of", lambda _path: next(states))
    freezer.freeze(path)
    assert kernel.writes == [("freezer.state", "FROZEN")] * 3


def test_freeze_rethaws_now_and_then(kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kernel.cgroup("freezer")
    states = iter(["FREEZING"] * 50 + ["FROZEN"])
    monkeypatch.setattr(freezer, "state_of", lambda _path: next(states))
    monkeypatch.setattr(time, "sleep", lambda _seconds: None)
    freezer.freeze(path)
    assert ("freezer.state", "THAWED") in kernel.writes
    assert kernel.writes[-1] == ("freezer.state", "FROZEN")


def test_freeze_times_out_thawed(kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    path = kernel.cgroup("freezer")
    monkeypatch.setattr(freezer, "state_of", lambda _path: "FREEZING")
    with pytest.raises(CgroupError) as caught:
        freezer.freeze(path, timeout=0.05)
    assert str(caught.value) == f"cannot freeze cgroup {path}: still FREEZING after 0.05s"
    assert kernel.writes[-1] == ("freezer.state", "THAWED")


def test_freeze_refused(kernel: FakeKernel) -> None:
    path = kernel.cgroup("freezer")
    kernel.refuse("freezer.state", errno.EBUSY)
    with pytest.raises(CgroupError, match=r"^cannot freeze cgroup .*: Device or resource busy$"):
        freezer.freeze(path)
    with pytest.raises(CgroupError, match=r"^cannot thaw cgroup "):
        freezer.thaw(path)


def test_frozen_by_a_parent(kernel: FakeKernel) -> None:
    path = kernel.cgroup("freezer", freezer__state="FROZEN", freezer__parent_freezing="1")
    assert freezer.is_frozen(path)


def test_missing_cgroup_is_not_frozen(tmp_path: Path) -> None:
    assert not freezer.is_frozen(str(tmp_path / "gone"))
    with pytest.raises(CgroupError, match=r"freezer\.state"):
        freezer.state_of(str(tmp_path / "gone"))
