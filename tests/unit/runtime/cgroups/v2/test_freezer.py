"""cove.runtime.cgroups.v2.freezer on a fake cgroup v2 directory (the kernel simulated)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.oci.resources import LinuxResources
from cove.runtime.cgroups.v2 import _files, freezer


@pytest.fixture
def kernel(cgroup: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """cgroup.freeze updates cgroup.events after `lag` reads of it, as a slow freeze does."""
    state = {"lag": 0, "reads": 0}
    real_write = _files.write_raw
    real_read = _files.read

    def write(file: str, value: str) -> None:
        real_write(file, value)
        if file.endswith("cgroup.freeze"):
            state["reads"] = 0
            if value == "0":
                (cgroup / "cgroup.events").write_text("populated 1\nfrozen 0\n")

    def read(path: str, name: str) -> str | None:
        if name == "cgroup.events" and (cgroup / "cgroup.freeze").read_text() == "1":
            state["reads"] += 1
            if state["reads"] > state["lag"]:
                (cgroup / "cgroup.events").write_text("populated 1\nfrozen 1\n")
        return real_read(path, name)

    monkeypatch.setattr(_files, "write_raw", write)
    monkeypatch.setattr(_files, "read", read)
    return state


def test_freeze_waits_for_frozen(cgroup: Path, kernel: dict[str, int]) -> None:
    kernel["lag"] = 3
    assert not freezer.is_frozen(str(cgroup))
    freezer.freeze(str(cgroup))
    assert (cgroup / "cgroup.freeze").read_text() == "1"
    assert kernel["reads"] == 4  # polled until the kernel said frozen
    assert freezer.is_frozen(str(cgroup))
    freezer.thaw(str(cgroup))
    assert (cgroup / "cgroup.freeze").read_text() == "0"
    assert not freezer.is_frozen(str(cgroup))


def test_freeze_timeout_thaws_again(cgroup: Path, kernel: dict[str, int]) -> None:
    kernel["lag"] = 10**9
    with pytest.raises(CgroupError, match=r"^cannot freeze cgroup .*: still not frozen after"):
        freezer.freeze(str(cgroup), timeout=0.05)
    assert (cgroup / "cgroup.freeze").read_text() == "0"


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(CgroupError, match=r"^cannot freeze cgroup "):
        freezer.freeze(str(tmp_path))
    with pytest.raises(CgroupError, match=r"cgroup\.events"):
        freezer.is_frozen(str(tmp_path))


def test_kill_all(cgroup: Path, tmp_path: Path, writes: list[tuple[str, str]]) -> None:
    assert freezer.kill_all(str(cgroup)) is True
    assert writes == [("cgroup.kill", "1")]
    (cgroup / "cgroup.kill").unlink()
    assert freezer.kill_all(str(cgroup)) is False  # before 5.14: the caller signals pids
    assert writes == [("cgroup.kill", "1")]


def test_controller_does_nothing(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    data: dict[str, object] = {}
    freezer.CONTROLLER.apply(str(cgroup), LinuxResources(pids_limit=5))
    freezer.CONTROLLER.stats(str(cgroup), data)
    assert freezer.CONTROLLER.name == "freezer"
    assert (writes, data) == ([], {})
