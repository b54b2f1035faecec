"""The cpuset controller on cgroup v2: cpuset.cpus and cpuset.mems."""

from __future__ import annotations

from cove.runtime.cgroups.v2 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

_FIELD = "linux.resources.cpu"


def parse_list(text: str) -> list[int]:
    """A kernel cpu/node list ("0-3,5") as numbers."""
    numbers: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        numbers.extend(range(int(low), int(high or low) + 1))
    return numbers


class _CpusetController:
    name = "cpuset"

    def apply(self, path: str, resources: LinuxResources) -> None:
        cpu = resources.cpu
        if cpu is None:
            return
        if cpu.cpus is not None:
            _files.write(path, "cpuset.cpus", cpu.cpus, f"{_FIELD}.cpus")
        if cpu.mems is not None:
            _files.write(path, "cpuset.mems", cpu.mems, f"{_FIELD}.mems")

    def stats(self, path: str, data: dict[str, Any]) -> None:
        cpus = _files.read(path, "cpuset.cpus.effective")
        mems = _files.read(path, "cpuset.mems.effective")
        if cpus is None or mems is None:
            return
        data["cpuset"] = {"cpus": parse_list(cpus), "mems": parse_list(mems)}


CONTROLLER = _CpusetController()
