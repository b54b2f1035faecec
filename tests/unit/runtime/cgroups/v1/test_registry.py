"""cgroups.v1.CONTROLLERS: every v1 controller, under the kernel's name."""

from __future__ import annotations

import subprocess
import sys

from cove.runtime.cgroups.v1 import CONTROLLERS

NAMES = {
    "memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "hugetlb", "net_cls",
    "net_prio", "devices", "freezer",
}  # fmt: skip


def test_every_controller_under_its_name() -> None:
    assert set(CONTROLLERS) == NAMES
    for name, controller in CONTROLLERS.items():
        assert controller.name == name
        assert callable(controller.apply)
        assert callable(controller.stats)


def test_import_stays_cheap() -> None:
    code = (
        "import sys, cove.runtime.cgroups.v1; "
        "print(' '.join(m for m in ('dataclasses', 'typing', 'inspect', 'threading') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == []
