"""net_cls (v1): the class id tagged on the cgroup's packets (for tc and iptables).

Spec field            kernel file (cgroup-v1/net_cls.rst)
network.classID       net_cls.classid    a number, 0xAAAABBBB for class AAAA:BBBB
"""

from __future__ import annotations

from cove.runtime.cgroups.v1 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources


class NetClsController:
    name = "net_cls"

    def apply(self, path: str, resources: LinuxResources) -> None:
        if resources.network_class_id is not None:
            _files.write(
                path, "net_cls.classid", resources.network_class_id,
                "linux.resources.network.classID",
            )  # fmt: skip

    def stats(self, path: str, data: dict[str, Any]) -> None:
        return None  # no figures


CONTROLLER = NetClsController()
