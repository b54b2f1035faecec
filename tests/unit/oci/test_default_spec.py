"""cove.oci.default_spec: `cove-runtime spec`, rootful and rootless."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from cove.oci.default_spec import MASKED_PATHS, SPEC_VERSION, default_spec
from cove.oci.runtime_spec import parse_spec


def mount(spec: dict[str, Any], destination: str) -> dict[str, Any]:
    (found,) = [m for m in spec["mounts"] if m["destination"] == destination]
    return found


def ns_types(spec: dict[str, Any]) -> list[str]:
    return [ns["type"] for ns in spec["linux"]["namespaces"]]


@pytest.fixture
def fake_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    # The tests may run as root: make the current ids distinguishable from 0.
    monkeypatch.setattr(os, "getuid", lambda: 1234)
    monkeypatch.setattr(os, "getgid", lambda: 5678)


def test_rootful() -> None:
    spec = default_spec()
    assert spec["ociVersion"] == SPEC_VERSION
    assert ns_types(spec) == ["pid", "network", "ipc", "uts", "mount", "cgroup"]
    assert "uidMappings" not in spec["linux"]
    assert "gidMappings" not in spec["linux"]
    assert "gid=5" in mount(spec, "/dev/pts")["options"]
    sys_mount = mount(spec, "/sys")
    assert sys_mount["type"] == "sysfs"
    assert "rbind" not in sys_mount["options"]
    assert spec["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert spec["root"] == {"path": "rootfs", "readonly": True}
    assert spec["process"]["args"] == ["sh"]


def test_rootless(fake_ids: None) -> None:
    spec = default_spec(rootless=True)
    types = ns_types(spec)
    assert "user" in types
    assert "network" not in types  # rootless has no way to set up a network
    assert "mount" in types
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 1234, "size": 1}]
    assert spec["linux"]["gidMappings"] == [{"containerID": 0, "hostID": 5678, "size": 1}]
    assert not any(o.startswith("gid=") for o in mount(spec, "/dev/pts")["options"])
    sys_mount = mount(spec, "/sys")
    assert sys_mount["type"] == "none"
    assert sys_mount["source"] == "/sys"
    assert "rbind" in sys_mount["options"]
    assert "ro" in sys_mount["options"]
    assert "resources" not in spec["linux"]


@pytest.mark.parametrize("rootless", [False, True])
def test_parse_spec_accepts_both(rootless: bool) -> None:
    spec = parse_spec(default_spec(rootless=rootless))
    assert (spec.linux.namespace("user") is not None) is rootless
    assert spec.linux.masked_paths == tuple(MASKED_PATHS)


@pytest.mark.parametrize("rootless", [False, True])
def test_is_plain_json(rootless: bool) -> None:
    spec = default_spec(rootless=rootless)
    assert json.loads(json.dumps(spec)) == spec


def test_each_call_returns_fresh_lists() -> None:
    first = default_spec()
    first["linux"]["maskedPaths"].append("/secret")
    first["process"]["capabilities"]["bounding"].clear()
    second = default_spec()
    assert "/secret" not in second["linux"]["maskedPaths"]
    assert second["process"]["capabilities"]["bounding"]
    assert "/secret" not in MASKED_PATHS
