"""cove.engine.network.firewall: the nft scripts cove applies, and reading nft's JSON
listings back (no nft run here)."""

from __future__ import annotations

import pytest

from cove.engine.network import firewall
from cove.engine.network.firewall import NetworkRules, PortRule
from cove.errors import NetworkError

CID = "c" * 64


def test_base_script_makes_table_sets_and_hooked_chains() -> None:
    script = firewall.base_script()
    lines = script.splitlines()
    assert lines[0] == "add table inet cove"
    for name, kind in (("bridges", "ifname"), ("internal_bridges", "ifname"),
                       ("hairpin", "ifname . ifname"), ("nat_subnets", "ipv4_addr")):  # fmt: skip
        assert any(line.startswith(f"add set inet cove {name} {{ type {kind};") for line in lines)
    assert "add chain inet cove ports" in lines
    for chain, hook in (("prerouting", "nat hook prerouting"), ("output", "nat hook output"),
                        ("postrouting", "nat hook postrouting"),
                        ("forward", "filter hook forward")):  # fmt: skip
        assert any(line.startswith(f"add chain inet cove {chain} {{ type {hook}") for line in lines)
        # re-applied on every connect: flushed then refilled in one transaction
        assert lines.index(f"flush chain inet cove {chain}") > 0
    assert script.endswith("\n")


def test_base_rules() -> None:
    rules = [line.split(" ", 5)[4:] for line in firewall.base_script().splitlines()
             if line.startswith("add rule")]  # fmt: skip
    by_chain: dict[str, list[str]] = {}
    for chain, rule in rules:
        by_chain.setdefault(chain, []).append(rule)
    assert by_chain["prerouting"] == ["fib daddr type local jump ports"]
    assert by_chain["output"] == ["fib daddr type local jump ports"]
    assert by_chain["postrouting"] == [
        "oifname @bridges ip saddr 127.0.0.0/8 masquerade",  # localhost -> container
        # hairpin: a container -> the host's address -> itself or a neighbour
        "ct status dnat oifname @bridges ip saddr @nat_subnets masquerade",
        "oifname != @bridges ip saddr @nat_subnets masquerade",  # egress
    ]
    forward = by_chain["forward"]
    assert forward[0] == "ct state established,related accept"
    # internal networks and bridge-to-bridge are dropped before anything is accepted
    assert forward.index("iifname @internal_bridges drop") < forward.index(
        "iifname @bridges accept"
    )
    assert forward.index("iifname @bridges oifname @bridges drop") < forward.index(
        "oifname @bridges ct status dnat accept"
    )
    assert forward[-2:] == ["oifname @bridges drop", "iifname @bridges accept"]


def test_create_script_fails_on_an_existing_table() -> None:
    assert firewall.create_script().splitlines()[0] == "create table inet cove"
    assert firewall.create_script().count("table inet cove") == 1


def test_network_script() -> None:
    assert firewall.network_script(NetworkRules("cove0", "172.17.0.0/16")) == (
        'add element inet cove bridges { "cove0" }\n'
        'add element inet cove hairpin { "cove0" . "cove0" }\n'
        "add element inet cove nat_subnets { 172.17.0.0/16 }\n"
    )
    internal = firewall.network_script(NetworkRules("cv-0123456789ab", "10.5.0.0/24", True))
    assert 'add element inet cove internal_bridges { "cv-0123456789ab" }' in internal
    assert "nat_subnets" not in internal  # no masquerade: an internal network has no egress


@pytest.mark.parametrize("name", ["", 'a"b', "a b", "x" * 16])
def test_bad_interface_names_are_refused(name: str) -> None:
    with pytest.raises(NetworkError):
        firewall.network_script(NetworkRules(name, "10.0.0.0/24"))


def test_port_rules() -> None:
    rules = [PortRule(CID, "tcp", "", 8080, "172.17.0.2", 80),
             PortRule(CID, "udp", "127.0.0.1", 5353, "172.17.0.2", 53),
             PortRule(CID, "tcp", "0.0.0.0", 9000, "172.17.0.2", 9000)]  # fmt: skip
    assert firewall.ports_script(rules).splitlines() == [
        f'add rule inet cove ports tcp dport 8080 dnat ip to 172.17.0.2:80 comment "cove:{CID}"',
        "add rule inet cove ports ip daddr 127.0.0.1 udp dport 5353 dnat ip to 172.17.0.2:53 "
        f'comment "cove:{CID}"',
        f'add rule inet cove ports tcp dport 9000 dnat ip to 172.17.0.2:9000 comment "cove:{CID}"',
    ]
    with pytest.raises(NetworkError, match="protocol"):
        firewall.port_rule_text(PortRule(CID, "icmp", "", 1, "172.17.0.2", 1))


def test_delete_rules_script() -> None:
    assert firewall.delete_rules_script([4, 9]) == (
        "delete rule inet cove ports handle 4\ndelete rule inet cove ports handle 9\n"
    )
    assert firewall.delete_rules_script([]) == ""


# What `nft -a -j list chain inet cove ports` prints (nft 1.0.6).
LISTING = {"nftables": [
    {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
    {"chain": {"family": "inet", "table": "cove", "name": "ports", "handle": 1}},
    {"rule": {"family": "inet", "table": "cove", "chain": "ports", "handle": 2,
              "comment": f"cove:{CID}", "expr": [
                  {"match": {"op": "==", "left": {"payload": {"protocol": "tcp",
                                                               "field": "dport"}},
                             "right": 18080}},
                  {"dnat": {"family": "ip", "addr": "172.17.0.2", "port": 80}}]}},
    {"rule": {"family": "inet", "table": "cove", "chain": "ports", "handle": 3,
              "comment": "cove:" + "d" * 64, "expr": [
                  {"match": {"op": "==", "left": {"payload": {"protocol": "ip",
                                                               "field": "daddr"}},
                             "right": "127.0.0.1"}},
                  {"match": {"op": "==", "left": {"payload": {"protocol": "udp",
                                                               "field": "dport"}},
                             "right": 53}},
                  {"dnat": {"family": "ip", "addr": "172.17.0.3", "port": 53}}]}},
    {"rule": {"family": "inet", "table": "cove", "chain": "ports", "handle": 7,
              "comment": "someone else's", "expr": []}},
]}  # fmt: skip


def test_reading_a_listing() -> None:
    assert firewall.rule_comments(LISTING) == [
        (2, f"cove:{CID}"),
        (3, "cove:" + "d" * 64),
        (7, "someone else's"),
    ]
    assert firewall.handles_of(LISTING, [CID]) == [2]
    assert firewall.handles_of(LISTING, ["e" * 64]) == []
    assert firewall.rule_containers(LISTING) == {CID, "d" * 64}
    assert firewall.published(LISTING) == [
        ("tcp", "", 18080, CID),
        ("udp", "127.0.0.1", 53, "d" * 64),
    ]
    assert firewall.rule_comments(None) == [] and firewall.published({}) == []


def test_set_elements_and_network_removal() -> None:
    listing = {"nftables": [
        {"set": {"family": "inet", "name": "bridges", "table": "cove", "type": "ifname",
                 "elem": ["cove0", "cv-0123456789ab"]}},
        {"set": {"family": "inet", "name": "hairpin", "table": "cove",
                 "type": ["ifname", "ifname"],
                 "elem": [{"concat": ["cove0", "cove0"]}]}},
        {"set": {"family": "inet", "name": "nat_subnets", "table": "cove", "type": "ipv4_addr",
                 "flags": ["interval"],
                 "elem": [{"prefix": {"addr": "172.17.0.0", "len": 16}}]}},
        {"set": {"family": "inet", "name": "internal_bridges", "table": "cove",
                 "type": "ifname"}},
    ]}  # fmt: skip
    present = firewall.set_elements(listing)
    assert present == {"bridges": {"cove0", "cv-0123456789ab"}, "hairpin": {"cove0 . cove0"},
                       "nat_subnets": {"172.17.0.0/16"}, "internal_bridges": set()}  # fmt: skip
    assert firewall.remove_network_script(NetworkRules("cove0", "172.17.0.0/16"), present) == (
        'delete element inet cove bridges { "cove0" }\n'
        'delete element inet cove hairpin { "cove0" . "cove0" }\n'
        "delete element inet cove nat_subnets { 172.17.0.0/16 }\n"
    )
    # only what is there is deleted (a missing element would fail the transaction)
    gone = firewall.remove_network_script(NetworkRules("cv-ffffffffffff", "10.9.0.0/24"), present)
    assert gone == ""


def test_ensure_falls_back_on_the_other_guess(monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[str] = []
    failures = {"create": "File exists"}

    class Done:
        def __init__(self, script: str) -> None:
            self.script = script

    def start_apply(script: str, **_: object) -> Done:
        applied.append(script)
        return Done(script)

    def finish(done: Done) -> None:
        if done.script.startswith("create table") and "create" in failures:
            raise NetworkError(f"nftables: /dev/stdin:1:1: Error: {failures['create']}")

    def apply(script: str) -> None:
        applied.append(script)

    monkeypatch.setattr(firewall, "start_apply", start_apply)
    monkeypatch.setattr(firewall, "finish", finish)
    monkeypatch.setattr(firewall, "apply", apply)
    changes = firewall.network_script(NetworkRules("cove0", "172.17.0.0/16"))
    checked = f"flush set inet cove {firewall.VERSION_SET}\n" + changes
    firewall.ensure(changes, table_likely=False)  # the table was there after all
    assert applied == [firewall.create_script() + changes, checked]
    applied.clear()
    firewall.ensure(changes, table_likely=True)  # right guess: one run
    assert applied == [checked]
    applied.clear()
    failures["create"] = "Operation not permitted"
    with pytest.raises(NetworkError, match="not permitted"):
        firewall.ensure(changes, table_likely=False)
    assert applied == [firewall.create_script() + changes]


def test_a_table_of_an_older_version_gets_the_current_base(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A table made by an older cove (whose containers still run) lacks this version's set:
    the check of the fast path fails, the create fails, and the base is applied again."""
    applied: list[str] = []

    class Done:
        def __init__(self, script: str) -> None:
            self.script = script

    def start_apply(script: str, **_: object) -> Done:
        applied.append(script)
        return Done(script)

    def run(script: str) -> None:
        if script.startswith("create table"):
            raise NetworkError(
                "nftables: /dev/stdin:1:1: Error: Could not process rule: File exists"
            )
        if script.startswith(f"flush set inet cove {firewall.VERSION_SET}"):
            raise NetworkError("nftables: /dev/stdin:1:27-33: Error: No such file or directory")

    def apply(script: str) -> None:
        applied.append(script)
        run(script)

    monkeypatch.setattr(firewall, "start_apply", start_apply)
    monkeypatch.setattr(firewall, "finish", lambda done: run(done.script))
    monkeypatch.setattr(firewall, "apply", apply)
    changes = firewall.network_script(NetworkRules("cove0", "172.17.0.0/16"))
    firewall.ensure(changes, table_likely=True)
    assert applied[-1] == firewall.base_script() + changes
    assert len(applied) == 3
    assert f"add set inet cove {firewall.VERSION_SET} " in firewall.base_script()


def test_forwarding_note(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    knob = root / "ip_forward"
    knob.write_text("0\n")
    monkeypatch.setattr(firewall, "IP_FORWARD", str(knob))
    assert firewall.enable_forwarding(root) is True
    assert knob.read_text() == "1\n"
    assert (root / "networks" / firewall.FORWARD_CHANGED).exists()
    assert firewall.enable_forwarding(root) is False  # already on: nothing written


def test_set_elements_carry_their_roots_tag() -> None:
    script = firewall.network_script(NetworkRules("cv-0123456789ab", "10.5.0.0/24", False,
                                                  "0123456789ab"))  # fmt: skip
    tag = 'comment "cove-root:0123456789ab"'
    assert script == (
        f'add element inet cove bridges {{ "cv-0123456789ab" {tag} }}\n'
        f'add element inet cove hairpin {{ "cv-0123456789ab" . "cv-0123456789ab" {tag} }}\n'
        f"add element inet cove nat_subnets {{ 10.5.0.0/24 {tag} }}\n"
    )
    with pytest.raises(NetworkError, match="root id"):
        firewall.network_script(NetworkRules("cove0", "10.5.0.0/24", False, 'x" }; flush'))


def test_dropping_a_network_adds_then_deletes_each_element() -> None:
    script = firewall.drop_network_script(NetworkRules("cv-0123456789ab", "10.5.0.0/24"))
    lines = script.splitlines()
    assert len(lines) == 8
    for added, deleted in zip(lines[::2], lines[1::2], strict=True):
        assert added.startswith("add element inet cove ")
        assert deleted == added.replace("add element", "delete element")
    assert 'bridges { "cv-0123456789ab" }' in lines[0]
    assert 'internal_bridges { "cv-0123456789ab" }' in lines[2]
    assert 'hairpin { "cv-0123456789ab" . "cv-0123456789ab" }' in lines[4]
    assert "nat_subnets { 10.5.0.0/24 }" in lines[6]
    kept = firewall.drop_network_script(NetworkRules("cv-0123456789ab", "10.5.0.0/24"),
                                        subnet=False)  # fmt: skip
    assert "nat_subnets" not in kept and len(kept.splitlines()) == 6


def test_set_entries_with_comments_and_their_deletion() -> None:
    tag = "cove-root:0123456789ab"
    listing = {"nftables": [
        {"set": {"name": "bridges", "elem": [{"elem": {"val": "cv-0123456789ab",
                                                       "comment": tag}}, "cove0"]}},
        {"set": {"name": "hairpin", "elem": [{"elem": {"val": {"concat": ["cove0", "cove0"]},
                                                       "comment": tag}}]}},
        {"set": {"name": "nat_subnets", "elem": [
            {"elem": {"val": {"prefix": {"addr": "10.5.0.0", "len": 24}}, "comment": tag}},
            {"prefix": {"addr": "172.17.0.0", "len": 16}}]}},
        {"set": {"name": "base_v2"}},
    ]}  # fmt: skip
    found = firewall.set_entries(listing)
    assert found == [
        firewall.SetEntry("bridges", "cv-0123456789ab", tag),
        firewall.SetEntry("bridges", "cove0", ""),
        firewall.SetEntry("hairpin", "cove0 . cove0", tag),
        firewall.SetEntry("nat_subnets", "10.5.0.0/24", tag),
        firewall.SetEntry("nat_subnets", "172.17.0.0/16", ""),
    ]
    assert [entry.bridge for entry in found] == ["cv-0123456789ab", "cove0", "cove0", "", ""]
    assert firewall.delete_entries_script(found[1:4]) == (
        'delete element inet cove bridges { "cove0" }\n'
        'delete element inet cove hairpin { "cove0" . "cove0" }\n'
        "delete element inet cove nat_subnets { 10.5.0.0/24 }\n"
    )
    assert firewall.delete_entries_script([]) == "" and firewall.set_entries(None) == []
