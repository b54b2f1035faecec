"""nftables rules for cove's networks: one table, `inet cove`, driven through `nft -f -`
(changes, one atomic transaction each) and `nft -j` (reading).

The table (what `base_script` makes; every connect re-applies it, which is idempotent: the
sets and chains are added if missing, the hooked chains flushed and refilled in the same
transaction):

    set bridges      ifname            every cove bridge
    set internal_bridges ifname           bridges of --internal networks
    set hairpin      ifname . ifname   (bridge . bridge) for each bridge
    set nat_subnets  ipv4_addr (interval)   subnets of non-internal networks
    set base_vN      (empty)           the version of these rules (`BASE_VERSION`)

    prerouting  (nat, dstnat)  fib daddr type local -> jump ports
    output      (nat, dstnat)  fib daddr type local -> jump ports   (the host's own traffic,
                                                                    127.0.0.1 included)
    ports       (regular)      one DNAT rule per published port, comment "cove:<container id>"
    postrouting (nat, srcnat)  127.0.0.0/8 to a bridge: masquerade (the localhost DNAT: the
                               container answers the gateway, not its own loopback);
                               DNATed traffic from a cove subnet to a bridge (hairpin:
                               a container -> the host's address and a published port ->
                               itself or a container on the same bridge): masquerade, so
                               the answer comes back through the NAT (a container sees its
                               own address as the source, and drops it, otherwise) and the
                               server sees the gateway, as behind Docker's proxy;
                               subnets in @nat_subnets leaving by a non-cove interface:
                               masquerade
    forward     (filter)       established: accept; same bridge in and out: accept;
                               from or to an internal bridge: drop; between two cove
                               bridges: drop; to a bridge: accept if DNATed (published
                               port), else drop; from a bridge: accept

Localhost DNAT needs `net.ipv4.conf.<bridge>.route_localnet=1` (set by `bridge.py`): without
it the kernel refuses to route a 127.0.0.1-sourced packet out of the bridge.

Each set element carries the engine root whose network it is for as its comment,
"cove-root:<root id>" (`hostwide.py`): the table is shared by every root on the host, and a
root's `system check` looks only at its own elements (`repair.py`).

A container's port rules are deleted by handle: `nft -a -j list chain inet cove ports`,
every rule whose comment is the container's. A network's elements go with its bridge, when
its last container goes (`drop_network_script`: no listing needed); the table goes when the
last container on any cove network goes (`attach.py` decides, under the host-wide network
lock).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cove.errors import NetworkError

FAMILY = "inet"
TABLE = "cove"
PORTS_CHAIN = "ports"
COMMENT_PREFIX = "cove:"
ROOT_TAG = "cove-root:"  # a set element's comment: the engine root's id follows (`hostwide`)
FORWARD_CHANGED = "ip_forward.changed"  # under <root>/networks/: ip_forward was 0, cove set 1
# The version of the base rules, bumped whenever `base_script`'s chains change: the table
# has an (empty) set named after it, which `ensure` checks for, so that a table made by an
# older cove (its containers still running) gets the current rules at the next start.
BASE_VERSION = 2
VERSION_SET = f"base_v{BASE_VERSION}"


@dataclass(frozen=True)
class NetworkRules:
    """What the firewall needs of a network. `owner`: the id of its engine root, which its
    set elements carry as their comment (`hostwide.root_tag`)."""

    bridge: str
    subnet: str
    internal: bool = False
    owner: str = ""


@dataclass(frozen=True)
class SetEntry:
    """One element of one of the table's sets, as `set_entries` reads it: `text` as
    `remove_network_script` names it ("cv-0123456789ab", "cove0 . cove0", "172.17.0.0/16");
    `comment` "" when it has none."""

    set: str
    text: str
    comment: str = ""

    @property
    def bridge(self) -> str:
        """The bridge the element is about ("" for a subnet)."""
        return "" if self.set == "nat_subnets" else self.text.split(" . ")[0]


@dataclass(frozen=True)
class PortRule:
    """One published port: host (host_ip "" or 0.0.0.0: every local address) -> container."""

    container_id: str
    protocol: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


def comment_for(container_id: str) -> str:
    return COMMENT_PREFIX + container_id


# --- the scripts (pure) --------------------------------------------------------------------


def base_script() -> str:
    """The table, its sets and chains, and the static rules (see the module docstring)."""
    t = f"{FAMILY} {TABLE}"
    lines = [
        f"add table {t}",
        f"add set {t} bridges {{ type ifname; }}",
        f"add set {t} internal_bridges {{ type ifname; }}",
        f"add set {t} hairpin {{ type ifname . ifname; }}",
        f"add set {t} nat_subnets {{ type ipv4_addr; flags interval; }}",
        f"add set {t} {VERSION_SET} {{ type inet_service; }}",
        f"add chain {t} {PORTS_CHAIN}",
        f"add chain {t} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}",
        f"add chain {t} output {{ type nat hook output priority -100; policy accept; }}",
        f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",  # noqa: E501
        f"add chain {t} forward {{ type filter hook forward priority filter; policy accept; }}",
    ]
    rules = {
        "prerouting": [f"fib daddr type local jump {PORTS_CHAIN}"],
        "output": [f"fib daddr type local jump {PORTS_CHAIN}"],
        "postrouting": [
            "oifname @bridges ip saddr 127.0.0.0/8 masquerade",
            "ct status dnat oifname @bridges ip saddr @nat_subnets masquerade",
            "oifname != @bridges ip saddr @nat_subnets masquerade",
        ],
        "forward": [
            "ct state established,related accept",
            "iifname . oifname @hairpin accept",
            "iifname @internal_bridges drop",
            "oifname @internal_bridges drop",
            "iifname @bridges oifname @bridges drop",
            "oifname @bridges ct status dnat accept",
            "oifname @bridges drop",
            "iifname @bridges accept",
        ],
    }
    for chain, chain_rules in rules.items():
        lines.append(f"flush chain {t} {chain}")
        lines += [f"add rule {t} {chain} {rule}" for rule in chain_rules]
    return "\n".join(lines) + "\n"


def create_script() -> str:
    """`base_script` for a table that does not exist yet: fails (EEXIST) if it does."""
    return base_script().replace(f"add table {FAMILY} {TABLE}", f"create table {FAMILY} {TABLE}", 1)


def _quote(name: str) -> str:
    if not name or any(c in name for c in '"\\\n ') or len(name) > 15:
        raise NetworkError(f"invalid interface name {name!r}")
    return f'"{name}"'


def network_script(network: NetworkRules) -> str:
    """Add `network`'s bridge and subnet to the sets (idempotent), each element with its
    owner's tag as comment when the network has one. (An element there already keeps the
    comment it has: the first root to add a subnet tags it.)"""
    t = f"{FAMILY} {TABLE}"
    bridge = _quote(network.bridge)
    tag = f' comment "{ROOT_TAG}{_owner(network.owner)}"' if network.owner else ""
    lines = [
        f"add element {t} bridges {{ {bridge}{tag} }}",
        f"add element {t} hairpin {{ {bridge} . {bridge}{tag} }}",
    ]
    if network.internal:
        lines.append(f"add element {t} internal_bridges {{ {bridge}{tag} }}")
    else:
        lines.append(f"add element {t} nat_subnets {{ {_subnet(network.subnet)}{tag} }}")
    return "\n".join(lines) + "\n"


def drop_network_script(network: NetworkRules, *, subnet: bool = True) -> str:
    """Take `network`'s bridge (and with `subnet` its subnet) out of the sets, whether they
    are there or not: each element is added, then deleted, in the one transaction (a
    missing element would fail a bare delete; nft 1.0.6 has no `destroy`). For the
    background, where there is no time to list the table first. Fails (ENOENT) only when
    there is no table, which has no elements either."""
    t = f"{FAMILY} {TABLE}"
    bridge = _quote(network.bridge)
    elements = [("bridges", bridge), ("internal_bridges", bridge),
                ("hairpin", f"{bridge} . {bridge}")]  # fmt: skip
    if subnet:
        elements.append(("nat_subnets", _subnet(network.subnet)))
    lines = []
    for set_name, element in elements:
        lines.append(f"add element {t} {set_name} {{ {element} }}")
        lines.append(f"delete element {t} {set_name} {{ {element} }}")
    return "\n".join(lines) + "\n"


def delete_entries_script(entries: Iterable[SetEntry]) -> str:
    """Delete these elements (each must be there: they come from a listing)."""
    t = f"{FAMILY} {TABLE}"
    lines = []
    for entry in entries:
        if entry.set == "nat_subnets":
            written = _subnet(entry.text)
        else:
            written = " . ".join(_quote(part) for part in entry.text.split(" . "))
        lines.append(f"delete element {t} {entry.set} {{ {written} }}")
    return "\n".join(lines) + ("\n" if lines else "")


def _subnet(text: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.IPv4Network(text))
    except ValueError:
        raise NetworkError(f"invalid subnet {text!r}") from None


def _owner(owner: str) -> str:
    if not owner.isalnum():
        raise NetworkError(f"invalid engine root id {owner!r}")
    return owner


def remove_network_script(network: NetworkRules, present: dict[str, set[str]]) -> str:
    """Take `network` out of the sets; `present`: the elements there now (by set name, as
    `set_elements` reads them), since deleting a missing element fails the transaction."""
    t = f"{FAMILY} {TABLE}"
    bridge = _quote(network.bridge)
    lines = []
    for set_name, element, written in (
        ("bridges", network.bridge, bridge),
        ("internal_bridges", network.bridge, bridge),
        ("hairpin", f"{network.bridge} . {network.bridge}", f"{bridge} . {bridge}"),
        ("nat_subnets", network.subnet, network.subnet),
    ):
        if element in present.get(set_name, set()):
            lines.append(f"delete element {t} {set_name} {{ {written} }}")
    return "\n".join(lines) + ("\n" if lines else "")


def port_rule_text(rule: PortRule) -> str:
    if rule.protocol not in ("tcp", "udp", "sctp"):
        raise NetworkError(f"invalid protocol {rule.protocol!r} for port {rule.host_port}")
    match = ""
    if rule.host_ip and rule.host_ip != "0.0.0.0":
        match = f"ip daddr {rule.host_ip} "
    return (
        f"{match}{rule.protocol} dport {rule.host_port} "
        f"dnat ip to {rule.container_ip}:{rule.container_port} "
        f'comment "{comment_for(rule.container_id)}"'
    )


def ports_script(rules: Iterable[PortRule]) -> str:
    t = f"{FAMILY} {TABLE}"
    return "".join(f"add rule {t} {PORTS_CHAIN} {port_rule_text(r)}\n" for r in rules)


def delete_rules_script(handles: Iterable[int]) -> str:
    t = f"{FAMILY} {TABLE}"
    return "".join(f"delete rule {t} {PORTS_CHAIN} handle {h}\n" for h in handles)


def rule_comments(listing: object) -> list[tuple[int, str]]:
    """(handle, comment) of each rule in an `nft -a -j list ...` document."""
    found: list[tuple[int, str]] = []
    items = listing.get("nftables", []) if isinstance(listing, dict) else []
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if isinstance(rule, dict) and "handle" in rule:
            found.append((int(rule["handle"]), str(rule.get("comment", ""))))
    return found


def handles_of(listing: object, container_ids: Iterable[str]) -> list[int]:
    wanted = {comment_for(i) for i in container_ids}
    return [handle for handle, comment in rule_comments(listing) if comment in wanted]


def rule_containers(listing: object) -> set[str]:
    """The container ids that rules of the listing name."""
    return {
        comment[len(COMMENT_PREFIX) :]
        for _, comment in rule_comments(listing)
        if comment.startswith(COMMENT_PREFIX)
    }


def published(listing: object) -> list[tuple[str, str, int, str]]:
    """(protocol, host ip ("" for every address), host port, container id) of each port
    rule in an `nft -j list chain inet cove ports` document."""
    found: list[tuple[str, str, int, str]] = []
    items = listing.get("nftables", []) if isinstance(listing, dict) else []
    for item in items:
        rule = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(rule, dict):
            continue
        comment = str(rule.get("comment", ""))
        protocol, host_ip, port = "", "", 0
        for expr in rule.get("expr", []):
            match = expr.get("match") if isinstance(expr, dict) else None
            if not isinstance(match, dict):
                continue
            left = match.get("left")
            payload = left.get("payload") if isinstance(left, dict) else None
            if not isinstance(payload, dict):
                continue
            if payload.get("field") == "dport" and isinstance(match.get("right"), int):
                protocol, port = str(payload.get("protocol")), int(match["right"])
            elif payload.get("protocol") == "ip" and payload.get("field") == "daddr":
                host_ip = str(match.get("right"))
        if port and comment.startswith(COMMENT_PREFIX):
            found.append((protocol, host_ip, port, comment[len(COMMENT_PREFIX) :]))
    return found


def set_entries(listing: object) -> list[SetEntry]:
    """Every element of every set in an `nft -j list table` document, with its comment."""
    found: list[SetEntry] = []
    items = listing.get("nftables", []) if isinstance(listing, dict) else []
    for item in items:
        entry = item.get("set") if isinstance(item, dict) else None
        if not isinstance(entry, dict):
            continue
        for element in entry.get("elem", []):
            comment = ""
            if isinstance(element, dict) and isinstance(element.get("elem"), dict):
                comment = str(element["elem"].get("comment") or "")
            found.append(SetEntry(str(entry.get("name")), _element_text(element), comment))
    return found


def set_elements(listing: object) -> dict[str, set[str]]:
    """Elements of each set in an `nft -j list table` document, as `remove_network_script`
    names them ("cove0", "cove0 . cove0", "172.17.0.0/16")."""
    found: dict[str, set[str]] = {}
    items = listing.get("nftables", []) if isinstance(listing, dict) else []
    for item in items:
        entry = item.get("set") if isinstance(item, dict) else None
        if not isinstance(entry, dict):
            continue
        names = found.setdefault(str(entry.get("name")), set())
        for element in entry.get("elem", []):
            names.add(_element_text(element))
    return found


def _element_text(element: object) -> str:
    if isinstance(element, dict):
        if "prefix" in element:
            prefix = element["prefix"]
            return f"{prefix['addr']}/{prefix['len']}"
        if "concat" in element:
            return " . ".join(_element_text(e) for e in element["concat"])
        if "elem" in element:
            return _element_text(element["elem"].get("val"))
        if "range" in element:
            low, high = element["range"]
            return f"{low}-{high}"
    return str(element)


# --- running nft ---------------------------------------------------------------------------


def nft_binary() -> str:
    found = shutil.which("nft") or ("/usr/sbin/nft" if os.path.exists("/usr/sbin/nft") else "")
    if not found:
        raise NetworkError("nft is not installed (Debian package nftables): cove needs it for "
                           "container networks")  # fmt: skip
    return found


def apply(script: str) -> None:
    """One atomic transaction."""
    if not script:
        return
    done = subprocess.run([nft_binary(), "-f", "-"], input=script, capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise NetworkError(f"nftables: {first}")


def start_apply(
    script: str, *, stderr: bool = True, pass_fds: Sequence[int] = ()
) -> subprocess.Popen[str]:
    """`apply` in the background (the caller does something else meanwhile): `finish` it.
    `pass_fds`: descriptors nft keeps open until it exits (a lock it then holds)."""
    process = subprocess.Popen([nft_binary(), "-f", "-"], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE if stderr else subprocess.DEVNULL,
                               text=True, pass_fds=tuple(pass_fds))  # fmt: skip
    assert process.stdin is not None
    try:
        process.stdin.write(script)
        process.stdin.close()
    except BrokenPipeError:
        pass
    return process


def finish(process: subprocess.Popen[str]) -> None:
    assert process.stderr is not None
    error = process.stderr.read()
    process.stderr.close()
    if process.wait() != 0:
        first = (error.strip().splitlines() or ["failed"])[0]
        raise NetworkError(f"nftables: {first}")


@dataclass
class Pending:
    """An `ensure` under way (`ensure_start`): `ensure_finish` waits for it."""

    changes: str
    table_likely: bool
    process: subprocess.Popen[str]


def ensure_start(changes: str, *, table_likely: bool) -> Pending:
    """Apply `changes` (set elements, port rules) with the table and its base chains there,
    in the background: one `nft` run in the usual case. `table_likely`: the caller saw
    signs that the table exists (other containers on cove networks), so the changes alone
    are tried first (with a check that the table's rules are of this version: a flush of
    the empty VERSION_SET, which fails when it is missing); otherwise the table is created
    with them."""
    first = _checked(changes) if table_likely else create_script() + changes
    return Pending(changes, table_likely, start_apply(first))


def ensure_finish(pending: Pending) -> None:
    """Wait for `ensure_start`'s run; if its guess was wrong, try the other one, then the
    whole base again (a table someone changed by hand, or one of an older version)."""
    changes = pending.changes
    retry = [create_script() + changes] if pending.table_likely else [_checked(changes)]
    try:
        finish(pending.process)
        return
    except NetworkError as exc:
        if not _guess_missed(exc):
            raise
    for script in retry:
        try:
            apply(script)
            return
        except NetworkError as exc:
            if not _guess_missed(exc):
                raise
    apply(base_script() + changes)


def _checked(changes: str) -> str:
    """`changes` after a check that the table is there with this version's rules."""
    return f"flush set {FAMILY} {TABLE} {VERSION_SET}\n" + changes


def ensure(changes: str, *, table_likely: bool) -> None:
    ensure_finish(ensure_start(changes, table_likely=table_likely))


def _guess_missed(exc: NetworkError) -> bool:
    return "No such file or directory" in str(exc) or "File exists" in str(exc)


def listing(*what: str) -> object:
    """`nft -a -j list WHAT...` parsed; None when the table (or chain) does not exist."""
    done = subprocess.run([nft_binary(), "-a", "-j", "list", *what], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        if "No such file or directory" in done.stderr:
            return None
        first = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise NetworkError(f"nftables: {first}")
    try:
        return json.loads(done.stdout)
    except ValueError as exc:
        raise NetworkError(f"nftables: unreadable listing: {exc}") from None


def table_exists() -> bool:
    return table_listing() is not None


def table_listing() -> object:
    """The whole table (sets with their elements, chains, rules with handles); None when
    there is none."""
    return listing("table", FAMILY, TABLE)


def ports_listing() -> object:
    return listing("chain", FAMILY, TABLE, PORTS_CHAIN)


def remove_container_rules(container_ids: Sequence[str]) -> int:
    """Delete every port rule of `container_ids`; how many there were."""
    found = ports_listing()
    if found is None:
        return 0
    handles = handles_of(found, container_ids)
    apply(delete_rules_script(handles))
    return len(handles)


def remove_network(network: NetworkRules) -> None:
    found = listing("table", FAMILY, TABLE)
    if found is None:
        return
    apply(remove_network_script(network, set_elements(found)))


def remove_table(*, lock_fd: int = -1) -> None:
    """Delete the table (nothing when there is none). With `lock_fd` (a held flock), in the
    background: nft inherits the descriptor, so the lock is held until the deletion is done
    (the kernel takes ~20 ms to unhook the chains) while the caller goes on."""
    script = f"delete table {FAMILY} {TABLE}\n"
    if lock_fd >= 0:
        start_apply(script, stderr=False, pass_fds=[lock_fd])
        return
    try:
        apply(script)
    except NetworkError as exc:
        if "No such file or directory" not in str(exc):
            raise


# --- ip_forward ----------------------------------------------------------------------------

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"


def enable_forwarding(root: str | os.PathLike[str]) -> bool:
    """net.ipv4.ip_forward=1 (True when this call changed it: a note under <root>/networks/
    says so, for `system check`)."""
    try:
        with open(IP_FORWARD) as f:
            if f.read().strip() == "1":
                return False
        with open(IP_FORWARD, "w") as f:
            f.write("1\n")
    except OSError as exc:
        raise NetworkError(f"cannot enable net.ipv4.ip_forward: {exc.strerror or exc}") from None
    folder = Path(root) / "networks"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FORWARD_CHANGED).write_text("0\n")
    return True
