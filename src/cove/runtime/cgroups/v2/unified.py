"""linux.resources.unified: raw cgroup v2 key/values, each written to the file of that name.

Applied after the typed controllers, so a unified value overrides a converted one.
"""

from __future__ import annotations

from cove.errors import CgroupError
from cove.runtime.cgroups.v2 import _files

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.oci.resources import LinuxResources

_FIELD = "linux.resources.unified"


class _UnifiedController:
    name = "unified"

    def apply(self, path: str, resources: LinuxResources) -> None:
        for key, value in resources.unified.items():
            # A key names a file of this cgroup directory, nothing else.
            if not key or "/" in key or key in (".", "..") or ".." in key or "\0" in key:
                raise CgroupError(f"{_FIELD}[{key!r}]: not a cgroup interface file name")
            if not _files.exists(path, key):
                raise CgroupError(
                    f"{_FIELD}[{key!r}]: no such file in {path} "
                    "(controller not enabled or not supported by this kernel)"
                )
            _files.write(path, key, value, f"{_FIELD}[{key!r}]")

    def stats(self, path: str, data: dict[str, Any]) -> None:
        return None


CONTROLLER = _UnifiedController()
