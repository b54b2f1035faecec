"""Fixtures for the unit tests: no root, no real mounts, only temporary folders.

Nothing here (or in any unit test) may request the session fixtures of tests/conftest.py
that need root or build things (coveprobe, busybox_rootfs, bundle, runtime, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cove.oci.default_spec import default_spec
from cove.oci.runtime_spec import parse_spec
from cove.runtime.config import ContainerConfig
from cove.sys.fake import RecordingSyscalls


@pytest.fixture
def fake_sys() -> RecordingSyscalls:
    return RecordingSyscalls()


@pytest.fixture
def spec_dict() -> dict[str, Any]:
    """A fresh runc-style config.json dict (`cove-runtime spec`), safe to mutate."""
    return copy.deepcopy(default_spec())


@pytest.fixture
def unit_bundle(tmp_path: Path) -> Path:
    """A bundle folder with an empty `rootfs` directory."""
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    return bundle


@pytest.fixture
def make_config(unit_bundle: Path) -> Callable[[dict[str, Any]], ContainerConfig]:
    """Factory: a config.json dict -> ContainerConfig for container 'ct' in unit_bundle."""

    def factory(data: dict[str, Any]) -> ContainerConfig:
        return ContainerConfig.from_spec(parse_spec(data), "ct", str(unit_bundle))

    return factory
