"""What a crash or a kill can leave in the data plane of cove's networks, and removing it:
the network part of `cove system check [--repair]` (`leftovers`), and a removed network's
bridge and nft set elements (`remove_network_links`).

Whose is what (`hostwide.py` has the marks). A root's check looks only at what is its own:

    veths, port rules, leases   of containers this root knows (a record, a folder, runtime
                                state) that are not running
    bridges                     named by one of its network records, or whose alias carries
                                its id (a network removed meanwhile): unused, or of no network
    set elements                tagged with its id (comment "cove-root:<id>"), or untagged
                                (an older cove's) and naming one of its networks' bridges or
                                subnets: about a bridge that does not exist (`bridges`,
                                `internal_bridges`, `hairpin`), or a subnet that no cove
                                bridge has an address in (`nat_subnets`)
    the table                   when no cove veth is left on the host (then nothing in it
                                serves anyone)

Other roots' bridges, elements and rules are theirs to check, live or not: a root that is
gone leaves its elements until the table goes with the host's last container on a cove
network. Every change to the data plane holds the host lock and makes or deletes a bridge
together with its elements; a check reads under the lock, and each repair takes it again
and checks again before it deletes anything.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from ipaddress import IPv4Network
from typing import TYPE_CHECKING, Any

from cove.engine.network import hostwide
from cove.engine.network.hostwide import host_lock
from cove.errors import CoveError, NetworkError

if TYPE_CHECKING:
    from cove.engine.network.firewall import SetEntry
    from cove.engine.network.records import Network
    from cove.engine.network.rtnl import Link, Netlink
    from cove.engine.state import ContainerStore

MEMBER_SETS = ("bridges", "internal_bridges", "hairpin")  # elements naming a bridge
SUBNET_SET = "nat_subnets"


@dataclass(frozen=True)
class Leftover:
    """Something of a container that is not running, left in the data plane (a killed
    start or stop): `system check` reports it, `repair` removes it."""

    kind: str
    what: str
    repair: Any  # Callable[[], None]


@dataclass
class _Host:
    """The data plane as read under the host lock."""

    links: list[Link]
    addresses: list[tuple[int, str, int]]
    table: object  # the `inet cove` table's listing, None when there is none

    def bridges(self) -> set[str]:
        return {link.name for link in self.links if link.kind == "bridge"}

    def carried(self) -> list[IPv4Network]:
        """The networks of the addresses of cove's bridges (any root's)."""
        from cove.engine.network import bridge

        ours = {link.index for link in self.links
                if link.kind == "bridge" and bridge.cove_bridge_name(link.name)}  # fmt: skip
        return [IPv4Network(f"{address}/{length}", strict=False)
                for index, address, length in self.addresses if index in ours]  # fmt: skip


def _read_host(nl: Netlink) -> _Host:
    from cove.engine.network import firewall

    try:
        table = firewall.table_listing()
    except CoveError:
        table = None
    return _Host(nl.links(), nl.addresses(), table)


def leftovers(root: str, store: ContainerStore, live: set[str], known: set[str]) -> list[Leftover]:
    """What of this root is left (`live`: its running or paused containers; `known`: every
    id this root has a trace of), and what belongs to nothing alive: see the module
    docstring. (net.ipv4.ip_forward stays on: the note `<root>/networks/ip_forward.changed`
    says cove turned it on, for whoever wants it off.)"""
    from cove.engine.network import bridge, firewall
    from cove.engine.network.networks import NetworkService
    from cove.engine.network.rtnl import Netlink

    found: list[Leftover] = []
    with host_lock(), Netlink() as nl:  # (deletions in the background are done)
        host = _read_host(nl)
    links = host.links
    # (a veth whose container's init is gone is on its way out with the namespace)
    veths = [link for link in links if link.kind == "veth"
             and bridge.VETH_RE.fullmatch(link.name) and bridge.in_use(link)]  # fmt: skip
    for link in veths:
        owner = bridge.alias_owner(link.alias)[0]
        if owner in known and owner not in live and not _busy(store, owner):
            found.append(Leftover("veth", f"{link.name} of container {owner[:12]}, which is "
                                  "not running", partial(_delete_veth, link.name)))  # fmt: skip
    for owner in sorted(firewall.rule_containers(host.table) if host.table else ()):
        if owner in known and owner not in live and not _busy(store, owner):
            found.append(Leftover("nft rule", f"published ports of container {owner[:12]}, "
                                  "which is not running",
                                  partial(_remove_rules, owner)))  # fmt: skip
    service = NetworkService(root)
    try:
        holders = set(service.lease_holders())
        stored = service.stored()
    finally:
        service.close()
    networks = {n.bridge for n in stored}
    for holder in sorted(holders):
        if holder not in live and not _busy(store, holder):
            found.append(Leftover("lease", f"addresses of container {holder[:12]}, which is "
                                  "not running", partial(_release, root, holder)))  # fmt: skip
    mine = hostwide.root_id(root)
    masters = {link.master for link in veths}
    for link in links:  # user networks' bridges live while containers use them
        if not (bridge.USER_BRIDGE_RE.fullmatch(link.name) and link.kind == "bridge"):
            continue
        if link.name not in networks and bridge.bridge_owner(link.alias) != mine:
            continue  # another root's (or an older cove's, of no network of this root)
        if link.index not in masters and not bridge.young_bridge(link):
            what = "belongs to no network" if link.name not in networks else "is unused"
            found.append(Leftover("bridge", f"{link.name} {what}",
                                  partial(_delete_bridge, link.name)))  # fmt: skip
    found += _entry_leftovers(host, _Owner(mine, networks, {n.subnet for n in stored}))
    if not veths and host.table is not None:
        found.append(Leftover("nft table", f"{firewall.FAMILY} {firewall.TABLE} with no "
                              "container on a cove network", _remove_table))  # fmt: skip
    return found


# --- set elements and rules of no bridge ---------------------------------------------------


@dataclass(frozen=True)
class _Owner:
    """A root, as its set elements name it: its id, its networks' bridges and subnets."""

    id: str
    bridges: set[str]
    subnets: set[str]

    def owns(self, entry: SetEntry) -> bool:
        tag = hostwide.tag_owner(entry.comment)
        if tag or entry.comment:
            return tag == self.id
        return entry.text in self.subnets if entry.set == SUBNET_SET else (
            entry.bridge in self.bridges)  # fmt: skip


def _stray_entries(host: _Host) -> list[SetEntry]:
    """The set elements about a bridge that does not exist, or a subnet no cove bridge has
    an address in (whoever's: the callers pick theirs)."""
    from cove.engine.network import firewall

    if host.table is None:
        return []
    present, carried = host.bridges(), host.carried()
    found = []
    for entry in firewall.set_entries(host.table):
        if entry.set in MEMBER_SETS:
            if entry.bridge not in present:
                found.append(entry)
        elif entry.set == SUBNET_SET:
            try:
                subnet = IPv4Network(entry.text)
            except ValueError:
                continue
            if not any(subnet.overlaps(other) for other in carried):
                found.append(entry)
    return found


def _entry_leftovers(host: _Host, owner: _Owner) -> list[Leftover]:
    """This root's stray elements: one leftover per bridge (its elements in the member
    sets) and per subnet."""
    groups: dict[str, list[SetEntry]] = {}
    for entry in _stray_entries(host):
        if owner.owns(entry):
            groups.setdefault(entry.bridge or entry.text, []).append(entry)
    found = []
    for subject, entries in sorted(groups.items()):
        sets = ", ".join(sorted({entry.set for entry in entries}))
        why = "no cove bridge has an address in it" if entries[0].set == SUBNET_SET else (
            "there is no such bridge")  # fmt: skip
        keys = frozenset((entry.set, entry.text) for entry in entries)
        found.append(Leftover("nft element", f"{subject} in set {sets}: {why}",
                              partial(_remove_stray_entries, keys)))  # fmt: skip
    return found


def _remove_stray_entries(keys: Iterable[tuple[str, str]]) -> None:
    wanted = set(keys)
    _remove_strays(lambda entry: (entry.set, entry.text) in wanted)


def _remove_strays(which: Callable[[SetEntry], bool]) -> None:
    """Delete the stray elements (`_stray_entries`, read again under the lock) that `which`
    picks."""
    from cove.engine.network import firewall
    from cove.engine.network.rtnl import Netlink

    with host_lock(), Netlink() as nl:
        entries = [entry for entry in _stray_entries(_read_host(nl)) if which(entry)]
        firewall.apply(firewall.delete_entries_script(entries))


# --- repairs -------------------------------------------------------------------------------


def _busy(store: ContainerStore, container_id: str) -> bool:
    """A command holds the container's lock (a start or stop under way)."""
    from cove.errors import ContainerBusy

    if not store.exists(container_id):
        return False
    try:
        with store.lock(container_id, timeout=0):
            return False
    except ContainerBusy:
        return True


def _delete_veth(name: str) -> None:
    from cove.engine.network import bridge
    from cove.engine.network.rtnl import Netlink

    with host_lock(), Netlink() as nl:
        bridge.detach(nl, name)


def _remove_rules(container_id: str) -> None:
    from cove.engine.network import firewall

    with host_lock():
        firewall.remove_container_rules([container_id])


def _release(root: str, container_id: str) -> None:
    from cove.engine.network.networks import NetworkService

    with NetworkService(root) as service:
        service.release_all(container_id)


def _delete_bridge(name: str) -> None:
    """The bridge, if no port of it is in use, and then its set elements."""
    from cove.engine.network import bridge
    from cove.engine.network.rtnl import Netlink

    with host_lock(), Netlink() as nl:
        link = nl.link(name)
        ports = [other for other in nl.links() if link and other.master == link.index]
        if link is None or any(bridge.in_use(port) for port in ports):
            return
        had = _networks_of(nl, link.index)
        bridge.delete_bridge(nl, name)
        _drop_strays_of(nl, name, had)


def _networks_of(nl: Netlink, index: int) -> list[IPv4Network]:
    return [IPv4Network(f"{address}/{length}", strict=False)
            for _, address, length in nl.addresses(index)]  # fmt: skip


def _drop_strays_of(nl: Netlink, name: str, subnets: Sequence[IPv4Network]) -> None:
    """Under the lock: the stray elements about bridge `name` or one of `subnets`."""
    from cove.engine.network import firewall

    def about(entry: SetEntry) -> bool:
        if entry.set == SUBNET_SET:
            try:
                return any(IPv4Network(entry.text).overlaps(s) for s in subnets)
            except ValueError:
                return False
        return entry.bridge == name

    entries = [entry for entry in _stray_entries(_read_host(nl)) if about(entry)]
    firewall.apply(firewall.delete_entries_script(entries))


def _remove_table() -> None:
    from cove.engine.network import bridge, firewall
    from cove.engine.network.rtnl import Netlink

    with host_lock(), Netlink() as nl:
        if not any(bridge.in_use(link) for link in bridge.cove_veths(nl)):
            firewall.remove_table()


# --- a network's bridge and set elements ------------------------------------------------


def retire_bridges(
    nl: Netlink,
    root: str,
    networks: Sequence[Network],
    others: Sequence[Any],
    lock_fd: int,
    *,
    table_stays: bool = True,
) -> None:
    """Delete the bridges of `networks` that no veth of `others` (the host's cove veths in
    use) is plugged into, in the background; when `table_stays`, their set elements too (a
    second background `nft`): the bridge's name in `bridges`, `internal_bridges`,
    `hairpin`, and its subnet in `nat_subnets` unless another interface still has an
    address in it (two roots' networks given the same --subnet share the element). Both
    hold the host lock (`lock_fd`) until they are done. The caller holds it."""
    from cove.engine.network import bridge, firewall
    from cove.engine.network.attach import rules_of

    used = {link.master for link in others}
    going: list[tuple[Network, int]] = []
    for network in networks:
        found = nl.link(network.bridge)
        if found is not None and found.kind == "bridge" and found.index not in used:
            bridge.delete_in_background(network.bridge, lock_fd)
            going.append((network, found.index))
    if not going or not table_stays:
        return
    gone = {index for _, index in going}
    carried = [IPv4Network(f"{address}/{length}", strict=False)
               for index, address, length in nl.addresses() if index not in gone]  # fmt: skip
    script = ""
    for network, _ in going:
        subnet = IPv4Network(network.subnet)
        keep = network.internal or any(subnet.overlaps(other) for other in carried)
        script += firewall.drop_network_script(rules_of(network, root), subnet=not keep)
    with contextlib.suppress(NetworkError, OSError):  # (left to `system check`)
        firewall.start_apply(script, stderr=False, pass_fds=[lock_fd])


def remove_network_links(network: Network, root: str = "") -> None:
    """With the network (`network rm`, `prune`): its bridge, its set elements (the bridge's
    name; its subnet unless another cove bridge has an address in it), and with `root` the
    host-wide claim of its subnet."""
    from cove.engine.network import bridge
    from cove.engine.network.rtnl import Netlink

    if network.pseudo or not network.bridge:
        return
    with host_lock(), Netlink() as nl:
        if root:
            with contextlib.suppress(OSError):
                hostwide.release(root, network.id)
        bridge.delete_bridge(nl, network.bridge)
        _drop_strays_of(nl, network.bridge, [IPv4Network(network.subnet)])
