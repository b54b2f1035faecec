"""Which set elements a root's `system check` calls its own leftovers, without root: the
data plane is given as read (links, addresses, the table's listing)."""

from __future__ import annotations

from cove.engine.network import repair
from cove.engine.network.firewall import SetEntry
from cove.engine.network.rtnl import Link

ONE, TWO = "0123456789ab", "ba9876543210"
TAG_ONE, TAG_TWO = f"cove-root:{ONE}", f"cove-root:{TWO}"


def element(name: str, val: object, comment: str = "") -> dict[str, object]:
    return {"set": {"name": name, "elem": [{"elem": {"val": val, "comment": comment}}
                                           if comment else val]}}  # fmt: skip


def prefix(text: str) -> dict[str, object]:
    addr, length = text.split("/")
    return {"prefix": {"addr": addr, "len": int(length)}}


def host() -> repair._Host:
    """Two's bridge cv-00000000000b is up (10.1.0.1/24); nothing else of cove's."""
    links = [Link(1, "lo", "", 0, 65536, True, ""), Link(7, "cv-00000000000b", "bridge", 0,
                                                         1500, True, "")]  # fmt: skip
    listing = {"nftables": [
        element("bridges", "cv-00000000000a", TAG_ONE),  # one's, of no bridge
        element("hairpin", {"concat": ["cv-00000000000a", "cv-00000000000a"]}, TAG_ONE),
        element("nat_subnets", prefix("10.9.0.0/24"), TAG_ONE),  # carried by no bridge
        element("bridges", "cv-00000000000b", TAG_TWO),  # two's, live
        element("nat_subnets", prefix("10.1.0.0/24"), TAG_TWO),
        element("bridges", "cv-00000000000c", TAG_TWO),  # two's, of no bridge
        element("bridges", "cv-00000000000d"),  # untagged (an older cove's): one's network
        element("bridges", "cv-00000000000e"),  # untagged, nobody's here
        element("nat_subnets", prefix("10.8.0.0/24")),  # untagged: one's network's subnet
    ]}  # fmt: skip
    return repair._Host(links, [(1, "127.0.0.1", 8), (7, "10.1.0.1", 24)], listing)


def test_stray_entries_are_those_of_no_bridge() -> None:
    stray = {(e.set, e.text) for e in repair._stray_entries(host())}
    assert stray == {
        ("bridges", "cv-00000000000a"), ("hairpin", "cv-00000000000a . cv-00000000000a"),
        ("nat_subnets", "10.9.0.0/24"), ("bridges", "cv-00000000000c"),
        ("bridges", "cv-00000000000d"), ("bridges", "cv-00000000000e"),
        ("nat_subnets", "10.8.0.0/24"),
    }  # fmt: skip
    assert repair._stray_entries(repair._Host([], [], None)) == []


def test_a_root_reports_only_its_own_stray_entries() -> None:
    one = repair._Owner(ONE, {"cv-00000000000d"}, {"10.8.0.0/24"})
    found = [item.what for item in repair._entry_leftovers(host(), one)]
    assert found == [
        "10.8.0.0/24 in set nat_subnets: no cove bridge has an address in it",
        "10.9.0.0/24 in set nat_subnets: no cove bridge has an address in it",
        "cv-00000000000a in set bridges, hairpin: there is no such bridge",
        "cv-00000000000d in set bridges: there is no such bridge",
    ]
    two = repair._Owner(TWO, {"cv-00000000000b"}, {"10.1.0.0/24"})
    assert [item.what for item in repair._entry_leftovers(host(), two)] == [
        "cv-00000000000c in set bridges: there is no such bridge"]  # fmt: skip


def test_ownership_of_an_element() -> None:
    owner = repair._Owner(ONE, {"cv-00000000000d"}, {"10.8.0.0/24"})
    assert owner.owns(SetEntry("bridges", "cv-00000000000x", TAG_ONE))
    assert not owner.owns(SetEntry("bridges", "cv-00000000000d", TAG_TWO))
    assert not owner.owns(SetEntry("bridges", "cv-00000000000d", "someone's comment"))
    assert owner.owns(SetEntry("hairpin", "cv-00000000000d . cv-00000000000d"))
    assert owner.owns(SetEntry("nat_subnets", "10.8.0.0/24"))
    assert not owner.owns(SetEntry("nat_subnets", "10.9.0.0/24"))
