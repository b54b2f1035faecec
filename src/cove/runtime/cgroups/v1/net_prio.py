"""net_prio (v1): per-interface priority of the cgroup's outgoing packets.

Spec field              kernel file (cgroup-v1/net_prio.rst)
network.priorities      net_prio.ifpriomap    one "IFNAME PRIO" per write
"""

from __future__ import annotations

from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources


class NetPrioController:
    name = "net_prio"

    def apply(self, path: str, resources: LinuxResources) -> None:
        for index, item in enumerate(resources.network_priorities):
            _files.write(
                path, "net_prio.ifpriomap", f"{item.name} {item.priority}",
                f"linux.resources.network.priorities[{index}]",
            )  # fmt: skip

    def stats(self, path: str, data: dict[str, Any]) -> None:
        return None  # no figures


CONTROLLER = NetPrioController()
