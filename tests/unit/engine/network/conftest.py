"""The host-wide state of cove's networks (the lock, the subnet claims under /run/cove) is
the test's own here: unit tests never hold the host's lock or claim its pools."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.engine.network import hostwide


@pytest.fixture(autouse=True)
def own_host_state(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    folder = tmp_path_factory.mktemp("host-run")
    monkeypatch.setattr(hostwide, "HOST_LOCK", str(folder / "network.lock"))
    monkeypatch.setattr(hostwide, "CLAIMS", str(folder / "network-claims.json"))
    return folder
