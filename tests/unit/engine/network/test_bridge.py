"""The marks of cove's bridges, without root: the alias says when a bridge was made and by
which engine root; a bridge made within the check's grace period is young."""

from __future__ import annotations

import time

import pytest

from cove.engine.network import bridge
from cove.engine.network.rtnl import Link


def link(alias: str) -> Link:
    return Link(3, "cv-0123456789ab", "bridge", 0, 1500, True, alias)


def test_bridge_alias_and_owner() -> None:
    assert bridge.bridge_alias("0123456789ab", made=1700000000.5) == "cove:1700000000:0123456789ab"
    assert bridge.bridge_owner("cove:1700000000:0123456789ab") == "0123456789ab"
    assert bridge.bridge_alias(made=1700000000) == "cove:1700000000"
    assert bridge.bridge_owner("cove:1700000000") == ""  # an older cove's
    assert bridge.bridge_owner("cove:" + "a" * 64 + ":0123456789ab:42") == ""  # a veth's
    assert bridge.bridge_owner("") == bridge.bridge_owner("someone:1:x") == ""


def test_young_bridges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVE_CHECK_GRACE", "60")
    now = time.time()
    assert bridge.young_bridge(link(bridge.bridge_alias("0123456789ab", made=now - 5)))
    assert bridge.young_bridge(link(bridge.bridge_alias(made=now - 5)))
    assert not bridge.young_bridge(link(bridge.bridge_alias("0123456789ab", made=now - 120)))
    assert not bridge.young_bridge(link("")) and not bridge.young_bridge(link("cove:x:y"))


def test_cove_bridge_names() -> None:
    assert bridge.cove_bridge_name("cove0") and bridge.cove_bridge_name("cv-0123456789ab")
    assert not bridge.cove_bridge_name("cv-0123") and not bridge.cove_bridge_name("docker0")
