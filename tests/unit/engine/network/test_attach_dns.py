"""Which containers the DNS responder must hear about (those with an endpoint on a user
network: the default bridge has no name resolution, as Docker's), and which nameserver a
container gets (the responder on its first user network)."""

from __future__ import annotations

from cove.engine.network.attach import _endpoints_dns, embedded_dns, on_user_network
from cove.engine.network.records import Network


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


def test_the_nameserver_is_the_responder_of_the_first_user_network() -> None:
    default = Network(id="b" * 64, name="bridge", gateway="172.17.0.1")
    front = Network(id="a" * 64, name="front", gateway="10.213.1.1")
    back = Network(id="c" * 64, name="back", gateway="10.213.2.1")
    assert embedded_dns([front, back]) == "10.213.1.1"
    assert embedded_dns([default, back, front]) == "10.213.2.1"  # connected later
    assert embedded_dns([default]) == "" and embedded_dns([]) == ""


def test_the_nameserver_of_a_running_containers_endpoints() -> None:
    """What `network connect` and `disconnect` write in resolv.conf: the same rule, read
    from the stored endpoints (settings["networks"], eth0's first)."""
    default = {"name": "bridge", "gateway": "172.17.0.1"}
    front = {"name": "front", "gateway": "10.213.1.1"}
    assert _endpoints_dns([default, front]) == "10.213.1.1"
    assert _endpoints_dns([front, default]) == "10.213.1.1"
    assert _endpoints_dns([default]) == "" and _endpoints_dns([]) == ""
