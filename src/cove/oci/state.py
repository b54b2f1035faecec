"""The OCI state document that `cove-runtime state` prints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OCI_VERSION = "1.2.0"

CREATING = "creating"
CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class State:
    id: str
    status: str
    pid: int
    bundle: str
    rootfs: str
    created: str
    owner: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

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
