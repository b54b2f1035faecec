"""cove.runtime.cgroups.v2.memory on a fake cgroup v2 directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.errors import CgroupError
from cove.oci.resources import LinuxResources, Memory
from cove.runtime.cgroups.v2 import _files, memory
from cove.runtime.cgroups.v2._files import MAX_UINT64

CONTROLLER = memory.CONTROLLER


def apply(cgroup: Path, **fields: object) -> None:
    CONTROLLER.apply(str(cgroup), LinuxResources(memory=Memory(**fields)))  # type: ignore[arg-type]


def test_name() -> None:
    assert CONTROLLER.name == "memory"


def test_limit_reservation_and_swap(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    apply(cgroup, limit=100 << 20, reservation=50 << 20, swap=300 << 20)
    assert writes == [
        ("memory.swap.max", str(200 << 20)),
        ("memory.max", str(100 << 20)),
        ("memory.low", str(50 << 20)),
        ("memory.oom.group", "1"),
    ]
    assert (cgroup / "memory.swap.max").read_text() == str(200 << 20)


def test_swap_equal_to_limit_disables_swap(cgroup: Path) -> None:
    apply(cgroup, limit=1 << 20, swap=1 << 20)
    assert (cgroup / "memory.swap.max").read_text() == "0"


@pytest.mark.parametrize(
    ("limit", "swap", "swap_max"),
    [(-1, None, "max"), (-1, -1, "max"), (1 << 20, -1, "max"), (1 << 20, None, "max\n")],
)
def test_unlimited(cgroup: Path, limit: int, swap: int | None, swap_max: str) -> None:
    apply(cgroup, limit=limit, swap=swap)
    assert (cgroup / "memory.max").read_text() == ("max" if limit == -1 else str(limit))
    assert (cgroup / "memory.swap.max").read_text() == swap_max


def test_unset_fields_are_left_alone(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    apply(cgroup)
    assert writes == [("memory.oom.group", "1")]
    CONTROLLER.apply(str(cgroup), LinuxResources())
    assert writes == [("memory.oom.group", "1")] * 2
    assert (cgroup / "memory.max").read_text() == "max\n"


def test_zero_limit_means_unset_as_in_runc(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    apply(cgroup, limit=0, swap=0)
    assert writes == [("memory.oom.group", "1")]


def test_oom_group_only_when_the_kernel_has_it(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    (cgroup / "memory.oom.group").unlink()
    apply(cgroup, limit=4096)
    assert writes == [("memory.max", "4096")]


def test_swap_below_limit_is_refused(cgroup: Path, writes: list[tuple[str, str]]) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swap: .*below"):
        apply(cgroup, limit=2 << 20, swap=1 << 20)
    assert writes == []


def test_swap_without_limit_uses_the_current_limit(cgroup: Path) -> None:
    (cgroup / "memory.max").write_text("1048576\n")
    apply(cgroup, swap=3 << 20)
    assert (cgroup / "memory.swap.max").read_text() == str(2 << 20)


def test_swap_with_unlimited_memory_is_refused(cgroup: Path) -> None:
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swap: .*unlimited"):
        apply(cgroup, swap=3 << 20)


def test_swap_without_swap_accounting(cgroup: Path) -> None:
    (cgroup / "memory.swap.max").unlink()
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.swap: .*swap accounting"):
        apply(cgroup, limit=1 << 20, swap=2 << 20)
    apply(cgroup, limit=-1)  # the implied "max" is skipped quietly
    assert (cgroup / "memory.max").read_text() == "max"


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"swappiness": 60}, "swappiness"),
        ({"swappiness": 0}, "swappiness"),
        ({"disable_oom_killer": True}, "disableOOMKiller"),
    ],
)
def test_v1_only_fields_are_refused(cgroup: Path, fields: dict[str, object], key: str) -> None:
    with pytest.raises(CgroupError, match=rf"^linux\.resources\.memory\.{key}: "):
        apply(cgroup, **fields)


def test_v1_only_fields_that_ask_nothing_are_accepted(
    cgroup: Path, writes: list[tuple[str, str]]
) -> None:
    apply(cgroup, disable_oom_killer=False, kernel=1 << 20, kernel_tcp=1 << 20, use_hierarchy=True)
    assert writes == [("memory.oom.group", "1")]


def test_check_before_update(cgroup: Path) -> None:
    (cgroup / "memory.current").write_text("5000\n")
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.limit: 4096 is below"):
        apply(cgroup, limit=4096, check_before_update=True)
    apply(cgroup, limit=8192, check_before_update=True)
    assert (cgroup / "memory.max").read_text() == "8192"
    apply(cgroup, limit=4096)  # without the check the kernel decides (it reclaims)


def test_kernel_refusal_names_field_value_and_file(
    cgroup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def busy(file: str, value: str) -> None:
        raise OSError(16, "Device or resource busy")

    monkeypatch.setattr(_files, "write_raw", busy)
    with pytest.raises(CgroupError) as info:
        apply(cgroup, limit=1048576)
    assert str(info.value) == (
        f"linux.resources.memory.limit: cannot set 1048576 in {cgroup}/memory.max: "
        "Device or resource busy"
    )


def test_stats(cgroup: Path) -> None:
    (cgroup / "memory.current").write_text("1000\n")
    (cgroup / "memory.max").write_text("4096\n")
    (cgroup / "memory.peak").write_text("2000\n")
    (cgroup / "memory.swap.current").write_text("10\n")
    (cgroup / "memory.swap.max").write_text("100\n")
    (cgroup / "memory.events").write_text("low 0\nhigh 0\nmax 7\noom 1\noom_kill 2\n")
    (cgroup / "memory.swap.events").write_text("high 0\nmax 0\nfail 3\n")
    (cgroup / "memory.stat").write_text("anon 600\nfile 400\n")
    data: dict[str, object] = {}
    CONTROLLER.stats(str(cgroup), data)
    assert data == {
        "memory": {
            "cache": 400,
            "usage": {"usage": 1000, "limit": 4096, "max": 2000, "failcnt": 7},
            "swap": {"usage": 1010, "limit": 4196, "failcnt": 3},
            "raw": {"anon": 600, "file": 400},
        }
    }
    assert memory.oom_kill_count(str(cgroup)) == 2


def test_stats_unlimited_reads_as_max_uint64(cgroup: Path) -> None:
    data: dict[str, dict[str, dict[str, int]]] = {}
    CONTROLLER.stats(str(cgroup), data)
    assert data["memory"]["usage"]["limit"] == MAX_UINT64
    assert data["memory"]["swap"]["limit"] == MAX_UINT64


def test_stats_without_the_controller(tmp_path: Path) -> None:
    data: dict[str, object] = {}
    CONTROLLER.stats(str(tmp_path), data)
    assert data == {}
    assert memory.oom_kill_count(str(tmp_path)) == 0


def test_swap_max_conversion() -> None:
    assert memory.swap_max(-1, 100) == -1
    assert memory.swap_max(300, 100) == 200
    assert memory.swap_max(100, 100) == 0
    with pytest.raises(CgroupError):
        memory.swap_max(50, 100)


def test_oom_group_refused_is_not_an_error(cgroup: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = _files.write_raw

    def refuse_oom_group(file: str, value: str) -> None:
        if file.endswith("memory.oom.group"):
            raise OSError(95, "Operation not supported")
        real(file, value)

    monkeypatch.setattr(_files, "write_raw", refuse_oom_group)
    apply(cgroup, limit=4096)
    assert (cgroup / "memory.max").read_text() == "4096"
