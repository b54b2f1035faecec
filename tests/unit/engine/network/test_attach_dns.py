"""Which containers the DNS responder must hear about: those with an endpoint on a user
network (the default bridge has no name resolution, as Docker's)."""

from __future__ import annotations

from cove.engine.network.attach import on_user_network
from cove.engine.network.networks import Network


def test_stored_endpoints_by_network_name() -> None:
    assert on_user_network([{"name": "bridge"}, {"name": "backend"}])
    assert not on_user_network([{"name": "bridge"}])
    assert not on_user_network(None)
    assert not on_user_network([])


def test_plans_by_network_object() -> None:
    user = Network(id="a" * 64, name="backend")
    default = Network(id="b" * 64, name="bridge")
    assert on_user_network([(user, None)])
    assert not on_user_network([(default, None)])
