"""cgroups.v1.memory on a fake memory cgroup."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from cove.errors import CgroupError
from cove.oci.resources import LinuxResources, Memory
from cove.runtime.cgroups.v1 import memory
from tests.unit.runtime.cgroups.v1.conftest import INITIAL, UNLIMITED, FakeKernel, read

MiB = 1 << 20
LIMIT = "memory.limit_in_bytes"
MEMSW = "memory.memsw.limit_in_bytes"


def apply(path: str, **fields: Any) -> None:
    memory.CONTROLLER.apply(path, LinuxResources(memory=Memory(**fields)))


def _as_int(value: str) -> int:
    return 1 << 62 if value.strip() == "-1" else int(value)


def enforce_memsw_order(kernel: FakeKernel, path: str) -> None:
    """As the kernel: memory.limit_in_bytes may never exceed memory.memsw.limit_in_bytes."""
    kernel.refuse(LIMIT, errno.EINVAL, lambda v: _as_int(v) > _as_int(read(path, MEMSW)))
    kernel.refuse(MEMSW, errno.EINVAL, lambda v: _as_int(v) < _as_int(read(path, LIMIT)))


def test_name_and_nothing_to_do_without_memory(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory")
    assert memory.CONTROLLER.name == "memory"
    memory.CONTROLLER.apply(path, LinuxResources())
    assert kernel.writes == []


def test_limit_alone_leaves_swap_alone(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory")
    apply(path, limit=64 * MiB)
    assert kernel.writes == [(LIMIT, str(64 * MiB))]
    assert read(path, MEMSW) == UNLIMITED


def test_raising_both_writes_memsw_first(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory", memory__limit_in_bytes=str(64 * MiB))
    Path(path, MEMSW).write_text(str(128 * MiB))
    enforce_memsw_order(kernel, path)
    apply(path, limit=256 * MiB, swap=512 * MiB)
    assert kernel.writes == [(MEMSW, str(512 * MiB)), (LIMIT, str(256 * MiB))]
    assert (read(path, LIMIT), read(path, MEMSW)) == (str(256 * MiB), str(512 * MiB))


def test_lowering_both_writes_limit_first(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory", memory__limit_in_bytes=str(256 * MiB))
    Path(path, MEMSW).write_text(str(512 * MiB))
    enforce_memsw_order(kernel, path)
    apply(path, limit=64 * MiB, swap=128 * MiB)
    assert kernel.writes == [(LIMIT, str(64 * MiB)), (MEMSW, str(128 * MiB))]


def test_unlimited_memory_makes_memsw_unlimited(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory", memory__limit_in_bytes=str(64 * MiB))
    Path(path, MEMSW).write_text(str(128 * MiB))
    enforce_memsw_order(kernel, path)
    apply(path, limit=-1)
    assert kernel.writes == [(MEMSW, "-1"), (LIMIT, "-1")]


def test_swap_skipped_without_swap_accounting(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory", drop=(MEMSW,))
    apply(path, limit=64 * MiB, swap=128 * MiB)
    assert kernel.writes == [(LIMIT, str(64 * MiB))]


def test_zero_means_not_set(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory")
    apply(path, limit=0, reservation=0, swap=0, kernel=0, kernel_tcp=0)
    assert kernel.writes == []


def test_reservation_swappiness_and_oom_killer(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory")
    apply(path, reservation=32 * MiB, swappiness=10, disable_oom_killer=True)
    assert read(path, "memory.soft_limit_in_bytes") == str(32 * MiB)
    assert read(path, "memory.swappiness") == "10"
    assert read(path, "memory.oom_control") == "1"


def test_oom_killer_enabled_again(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory")
    apply(path, disable_oom_killer=False)
    assert kernel.writes == [("memory.oom_control", "0")]


def test_swappiness_zero_is_written(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory")
    apply(path, swappiness=0)
    assert kernel.writes == [("memory.swappiness", "0")]


def test_kernel_memory_written_when_the_file_exists(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory")
    apply(path, kernel=16 * MiB, kernel_tcp=4 * MiB)
    assert read(path, "memory.kmem.limit_in_bytes") == str(16 * MiB)
    assert read(path, "memory.kmem.tcp.limit_in_bytes") == str(4 * MiB)


def test_kernel_memory_skipped_when_the_kernel_has_no_file(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory", drop=("memory.kmem.limit_in_bytes",))
    apply(path, kernel=16 * MiB)
    assert kernel.writes == []


@pytest.mark.parametrize("code", [errno.EOPNOTSUPP, errno.EINVAL])
def test_kernel_memory_refused_is_unsupported(kernel: FakeKernel, code: int) -> None:
    path = kernel.cgroup("memory")
    kernel.refuse("memory.kmem.limit_in_bytes", code)
    with pytest.raises(CgroupError) as caught:
        apply(path, kernel=16 * MiB)
    message = str(caught.value)
    assert message.startswith("linux.resources.memory.kernel: ")
    assert "not supported by this kernel" in message
    assert path in message


def test_kernel_tcp_without_file_is_an_error(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory", drop=("memory.kmem.tcp.limit_in_bytes",))
    with pytest.raises(CgroupError, match=r"^linux\.resources\.memory\.kernelTCP: not supported"):
        apply(path, kernel_tcp=4 * MiB)


def test_busy_limit_names_field_value_and_usage(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "memory", memory__usage_in_bytes=str(80 * MiB), memory__max_usage_in_bytes=str(90 * MiB)
    )
    kernel.refuse(LIMIT, errno.EBUSY)
    with pytest.raises(CgroupError) as caught:
        apply(path, limit=MiB, swap=2 * MiB)
    assert str(caught.value) == (
        f"linux.resources.memory.limit: cannot set {MiB} in {path}: Device or resource busy"
        f" (current usage {80 * MiB}, peak {90 * MiB})"
    )


def test_limit_above_memsw_explains(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory", memory__limit_in_bytes=str(64 * MiB))
    Path(path, MEMSW).write_text(str(128 * MiB))
    enforce_memsw_order(kernel, path)
    with pytest.raises(CgroupError, match=r"set linux\.resources\.memory\.swap too"):
        apply(path, limit=256 * MiB)


def test_check_before_update_rejects_limit_below_usage(kernel: FakeKernel) -> None:
    path = kernel.cgroup("memory", memory__usage_in_bytes=str(100 * MiB))
    with pytest.raises(CgroupError, match=r"below the current usage \(104857600\)"):
        apply(path, limit=50 * MiB, check_before_update=True)
    assert kernel.writes == []
    apply(path, limit=200 * MiB, check_before_update=True)
    assert read(path, LIMIT) == str(200 * MiB)


def test_stats_in_runc_shape(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "memory",
        memory__stat="cache 4096\nrss 8192\ntotal_cache 4096",
        memory__usage_in_bytes="12288",
        memory__max_usage_in_bytes="20480",
        memory__failcnt="3",
        memory__limit_in_bytes=str(64 * MiB),
        memory__memsw__usage_in_bytes="12288",
    )
    data: dict[str, Any] = {}
    memory.CONTROLLER.stats(path, data)
    assert data["memory"] == {
        "cache": 4096,
        "usage": {"limit": 64 * MiB, "usage": 12288, "max": 20480, "failcnt": 3},
        "swap": {"limit": int(UNLIMITED), "usage": 12288, "max": 0, "failcnt": 0},
        "kernel": {"limit": int(UNLIMITED), "usage": 0, "max": 0, "failcnt": 0},
        "kernelTCP": {"limit": int(UNLIMITED), "usage": 0, "max": 0, "failcnt": 0},
        "raw": {"cache": 4096, "rss": 8192, "total_cache": 4096},
    }


def test_stats_without_optional_files(kernel: FakeKernel) -> None:
    optional = tuple(n for n in INITIAL["memory"] if n.startswith(("memory.memsw", "memory.kmem")))
    path = kernel.cgroup("memory", drop=optional)
    data: dict[str, Any] = {}
    memory.CONTROLLER.stats(path, data)
    assert data["memory"]["swap"] == {"limit": 0, "usage": 0, "max": 0, "failcnt": 0}
    assert data["memory"]["usage"]["limit"] == int(UNLIMITED)


def test_oom_count_from_oom_control(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "memory", memory__oom_control="oom_kill_disable 0\nunder_oom 0\noom_kill 2",
        memory__failcnt="7",
    )  # fmt: skip
    assert memory.oom_count(path) == 2


def test_oom_count_falls_back_to_failcnt(kernel: FakeKernel) -> None:
    path = kernel.cgroup(
        "memory", memory__oom_control="oom_kill_disable 0\nunder_oom 0", memory__failcnt="7"
    )
    assert memory.oom_count(path) == 7
