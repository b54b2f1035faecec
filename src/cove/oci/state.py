"""The OCI state document that `cove-runtime state` prints."""

from __future__ import annotations

from cove.oci.data import Data

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_VERSION = "1.2.0"

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"


class State(Data):
    __slots__ = ("annotations", "bundle", "created", "id", "owner", "pid", "rootfs", "status")

    def __init__(
        self,
        id: str,
        status: str,
        pid: int,
        bundle: str,
        rootfs: str,
        created: str,
        owner: str = "",
        annotations: dict[str, str] | None = None,
    ) -> None:
        self.id = id
        self.status = status
        self.pid = pid
        self.bundle = bundle
        self.rootfs = rootfs
        self.created = created
        self.owner = owner
        self.annotations = {} if annotations is None else annotations

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid,
            "status": self.status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "owner": self.owner,
        }
        if self.annotations:
            document["annotations"] = self.annotations
        return document
