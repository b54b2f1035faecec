"""cove.oci.state: the OCI state document."""

from __future__ import annotations

from cove.oci.state import OCI_VERSION, RUNNING, State


def test_to_json_has_the_oci_fields() -> None:
    state = State("ct", RUNNING, 42, "/b", "/b/rootfs", "2024-01-01T00:00:00Z", owner="root")
    assert state.to_json() == {
        "ociVersion": OCI_VERSION,
        "id": "ct",
        "pid": 42,
        "status": "running",
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2024-01-01T00:00:00Z",
        "owner": "root",
    }


def test_annotations_only_when_present() -> None:
    state = State("ct", RUNNING, 1, "/b", "/r", "t", annotations={"k": "v"})
    assert state.to_json()["annotations"] == {"k": "v"}
    assert "annotations" not in State("ct", RUNNING, 1, "/b", "/r", "t").to_json()
