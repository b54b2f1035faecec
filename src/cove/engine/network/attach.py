"""The data plane of a container's networks: what `start` and `stop` (and `network connect`
/ `disconnect`) do to the host, from the networks and leases of `networks.py`.

    when            what                                              where
    create          check the mode (bridge | NAME | host | none |     create_check.py
                    container:NAME), -p/-P/--ip/--dns against it; the
                    requested port bindings; /etc/hosts, hostname,
                    resolv.conf written in the container's folder     write_etc_files
    start, before   a lease on each network (the address, the MAC);   prepare
    the runtime's   /etc/hosts with the addresses; container:NAME:
    create          the joined namespace's path brought up to date
    start, after    (init waits on its exec FIFO; we know its pid)    plug
    the create      bridge (made on first use), veth into the
                    container's namespace, address, route; nftables:
                    the table, the network's set elements, a DNAT
                    rule per published port (host ports picked now)
    exit            port rules deleted, veths deleted, leases         unplug
                    released (Docker frees the address on stop); the
                    table goes when no cove veth is left on the host
    rm, check       unplug again (idempotent)

Everything `unplug` undoes is found from the container id alone (rule comments, veth names
derived from (container id, network id), leases by container), so a start killed at any
step is undone by the next clean-up or `system check --repair`.

Host-wide state (the `inet cove` table, bridges, veth names, subnet claims) is shared by
every engine root on the host: changes to it hold `/run/cove/network.lock`, and what a root
puts there carries the root's id (`hostwide.py`). A bridge's set elements go with it (at the
exit of its last container, at `network disconnect` of its last one, at `network rm`),
though the table stays for other roots' containers. What a crash leaves, `repair.py` finds.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cove.engine.network import hostwide
from cove.engine.network.hostwide import HOST_LOCK as HOST_LOCK
from cove.engine.network.hostwide import host_lock
from cove.engine.network.networks import network_event
from cove.errors import CoveError, NetworkError

if TYPE_CHECKING:
    from cove.engine.network.networks import NetworkService
    from cove.engine.network.ports import PortBinding
    from cove.engine.network.records import Lease, Network
    from cove.engine.network.rtnl import Netlink
    from cove.engine.state import ContainerRecord, ContainerStore

PSEUDO_MODES = ("none", "host")
CONTAINER_PREFIX = "container:"
EMBEDDED_DNS = ""  # no resolver of the engine's by default (see `dns_server_for`)


# --- network modes --------------------------------------------------------------------------


def network_mode(config: Mapping[str, Any]) -> str:
    """The container's --network: records made before networks existed said "none"."""
    return str(config.get("network") or "none")


def own_namespace(mode: str) -> bool:
    """The container has a network namespace of its own (bridge, NAME, none)."""
    return mode != "host" and not mode.startswith(CONTAINER_PREFIX)


def uses_networks(mode: str) -> bool:
    """bridge or a user network: leases, veths, rules."""
    return own_namespace(mode) and mode != "none"


def joined_namespace(store: ContainerStore, config: Mapping[str, Any]) -> str:
    """container:NAME: the path of that container's network namespace (it must run)."""
    target = network_mode(config)[len(CONTAINER_PREFIX) :]
    record = store.get(target)
    if record.status not in ("running", "paused") or record.pid <= 0:
        raise NetworkError(f"cannot join network of a non running container: {target}")
    return f"/proc/{record.pid}/ns/net"


def etc_dir(store: ContainerStore, container_id: str, config: Mapping[str, Any]) -> Path:
    """The folder whose hosts, hostname and resolv.conf the container gets: its own, or with
    container:NAME that container's."""
    mode = network_mode(config)
    if mode.startswith(CONTAINER_PREFIX):
        return store.container_dir(store.get(mode[len(CONTAINER_PREFIX) :]).id)
    return store.container_dir(container_id)


def write_etc_files(
    folder: Path,
    config: Mapping[str, Any],
    hostname: str,
    addresses: Sequence[str] = (),
    host_gateway: str = "",
    embedded_dns: str = EMBEDDED_DNS,
) -> None:
    from cove.engine.network import hosts

    hosts.write_files(
        folder, hostname=hostname, network_mode=network_mode(config), addresses=addresses,
        add_hosts=list(config.get("add_hosts") or ()), host_gateway=host_gateway,
        dns=list(config.get("dns") or ()), dns_search=list(config.get("dns_search") or ()),
        dns_options=list(config.get("dns_options") or ()), embedded_dns=embedded_dns,
    )  # fmt: skip


# --- start ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """What `prepare` gave the container: a lease per network (in order), the port bindings
    to publish."""

    networks: list[tuple[Network, Lease]] = field(default_factory=list)
    bindings: list[PortBinding] = field(default_factory=list)


def container_networks(
    service: NetworkService, record: ContainerRecord
) -> list[tuple[Network, list[str]]]:
    """The networks of the container and its aliases on each: its --network (unless `network
    disconnect` took it off), then those `network connect` added (settings["connected"])."""
    mode = network_mode(record.config)
    wanted: list[tuple[str, list[str]]] = []
    if uses_networks(mode):
        wanted.append((mode, [str(a) for a in record.config.get("network_aliases") or ()]))
    for entry in record.settings.get("connected") or []:  # names (`cove network connect`)
        if isinstance(entry, Mapping):
            wanted.append((str(entry.get("network")), [str(a) for a in entry.get("aliases") or ()]))
        else:
            wanted.append((str(entry), []))
    dropped = set(record.settings.get("disconnected") or ())
    found: list[tuple[Network, list[str]]] = []
    for term, aliases in wanted:
        network = service.get(term)
        if network.pseudo or network.id in dropped or any(n.id == network.id for n, _ in found):
            continue
        found.append((network, aliases))
    return found


def has_networks(record: ContainerRecord) -> bool:
    return uses_networks(network_mode(record.config)) or bool(record.settings.get("connected"))


def dns_server_for(network: Network) -> str:
    """The address of the engine's DNS responder on `network`, "" for none. Where there is
    one it becomes the container's only nameserver (its --dns servers, else the host's,
    become the responder's forwarders: `hosts.resolv_conf(embedded_dns=...)` writes Docker's
    shape): on user networks; the default bridge keeps the host's servers, as Docker's."""
    from cove.engine.network import dns_control

    return dns_control.nameserver_for(network) or EMBEDDED_DNS


def embedded_dns(networks: Sequence[Network]) -> str:
    """The container's nameserver: the responder on the first of its networks that has
    one (from there it resolves the names of all its user networks); "" for none."""
    for network in networks:
        server = dns_server_for(network)
        if server:
            return server
    return EMBEDDED_DNS


def _endpoints_dns(endpoints: Sequence[Mapping[str, Any]]) -> str:
    """`embedded_dns` of a running container's endpoints (settings["networks"])."""
    from cove.engine.network import dns_control

    for endpoint in endpoints:
        name, gateway = str(endpoint.get("name") or ""), str(endpoint.get("gateway") or "")
        if name and name != dns_control.DEFAULT_NETWORK and gateway:
            return gateway  # (endpoints are of bridge networks: `is_user_network`)
    return EMBEDDED_DNS


def _dns_changed(root: str) -> None:
    """Tell the DNS responder (`dns_control.update`) that names or clients changed; a
    failure is its log's business, not the caller's (the container is wired already)."""
    from cove.engine.network import dns_control

    with contextlib.suppress(CoveError, OSError):
        dns_control.update(root)


def renamed(root: str, record: ContainerRecord) -> None:
    """After `rename` (`record`: the container as it now is): a running container on a user
    network answers to its new name, no longer to the old one, from the DNS responder."""
    if record.status in ("running", "paused") and on_user_network(
        endpoint_settings(record.settings)
    ):
        _dns_changed(root)


def on_user_network(networks: object) -> bool:
    """Whether a container's endpoints (settings["networks"]) or a plan's (network, lease)
    pairs include a user network: only then does the DNS responder care."""
    for item in networks if isinstance(networks, list | tuple) else ():
        name = item[0].name if isinstance(item, tuple) else dict(item).get("name")
        if name and name not in ("bridge", "host", "none"):
            return True
    return False


def join_namespace(store: ContainerStore, record: ContainerRecord) -> None:
    """Before the runtime's create, with --network container:NAME: the path of NAME's
    namespace (NAME's init may have changed since create) into the spec."""
    if network_mode(record.config).startswith(CONTAINER_PREFIX):
        _update_joined_namespace(record, joined_namespace(store, record.config))


def prepare(root: str, store: ContainerStore, record: ContainerRecord) -> Plan | None:
    """Before `plug`: leases, /etc/hosts and resolv.conf. It may run while the runtime
    creates the container: the files exist since create, the runtime bind mounts them,
    and they are rewritten in place (the mounts see the new text) before init runs.
    None when the container has no networks of its own (none, host, container:NAME)."""
    mode = network_mode(record.config)
    if mode.startswith(CONTAINER_PREFIX) or not has_networks(record):
        return None
    from cove.engine.network.networks import NetworkService
    from cove.engine.network.ports import PortBinding

    service = NetworkService(root)
    plan = Plan()
    try:
        for index, (network, aliases) in enumerate(container_networks(service, record)):
            primary = index == 0 and uses_networks(mode)
            network = service.settle(network)  # (its bridge not up: its subnet claimed)
            lease = service.allocate(
                network, record.id, ip=str(record.config.get("ip") or "") if primary else "",
                aliases=aliases, mac=str(record.config.get("mac_address") or "") if index == 0
                else "",
            )  # fmt: skip
            plan.networks.append((network, lease))
        if plan.networks and not plan.networks[0][0].internal:
            plan.bindings = [
                PortBinding.from_dict(b) for b in record.settings.get("port_bindings", [])
            ]
        hostname = _hostname(record)
        gateway = plan.networks[0][1].gateway if plan.networks else ""
        dns = embedded_dns([network for network, _ in plan.networks])
        write_etc_files(store.container_dir(record.id), record.config, hostname,
                        [lease.ip for _, lease in plan.networks], gateway, dns)  # fmt: skip
    except BaseException:
        for network, _ in plan.networks:
            service.release(network, record.id)
        raise
    finally:
        service.close()
    return plan


def _hostname(record: ContainerRecord) -> str:
    try:
        spec = json.loads((Path(record.bundle) / "config.json").read_text())
        return str(spec.get("hostname") or record.id[:12])
    except (OSError, ValueError):
        return record.id[:12]


def _update_joined_namespace(record: ContainerRecord, path: str) -> None:
    spec_path = Path(record.bundle) / "config.json"
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, ValueError):
        return
    changed = False
    for namespace in spec.get("linux", {}).get("namespaces", []):
        if namespace.get("type") == "network" and namespace.get("path") != path:
            namespace["path"] = path
            changed = True
    if changed:
        tmp = spec_path.with_name("config.json.tmp")
        tmp.write_text(json.dumps(spec))
        tmp.replace(spec_path)


def preload() -> None:
    """Load what `plug` and `unplug` need, ahead of them (see monitor.launch)."""
    import cove.engine.network.bridge
    import cove.engine.network.firewall
    import cove.engine.network.repair
    import cove.engine.network.rtnl  # noqa: F401


def plug(root: str, record: ContainerRecord, plan: Plan, pid: int) -> dict[str, Any]:
    """After the runtime's create (`pid`: the container's init): links, addresses, rules.
    The record's settings to store: "networks" (the endpoints) and "ports" (the published
    ports with their host ports). On failure what was done is undone (`unplug`)."""
    from cove.engine.network import bridge, firewall, ports
    from cove.engine.network.rtnl import Netlink

    try:
        with host_lock(), Netlink() as nl:
            # other running containers on cove networks: the table is there
            others = [link for link in bridge.cove_veths(nl) if bridge.in_use(link)]
            firewall.enable_forwarding(root)
            published = ports.resolve(record.id, plan.bindings) if plan.bindings else []
            script = "".join(firewall.network_script(rules_of(n, root)) for n, _ in plan.networks)
            if published:
                lease = plan.networks[0][1]
                script += firewall.ports_script(
                    firewall.PortRule(record.id, b.protocol, b.host_ip, b.host_port, lease.ip,
                                      b.container_port)
                    for b in published
                )  # fmt: skip
            pending = firewall.ensure_start(script, table_likely=bool(others))  # meanwhile:
            try:
                endpoints = [
                    _wire(nl, root, network, record.id, pid, lease, f"eth{index}")
                    for index, (network, lease) in enumerate(plan.networks)
                ]
            finally:
                firewall.ensure_finish(pending)
    except BaseException:
        with contextlib.suppress(CoveError, OSError):
            unplug(root, record.id, ports=True)
        raise
    for network, _ in plan.networks:
        network_event(root, "connect", network, record.id)
    return {"networks": endpoints, "ports": [b.to_dict() for b in published]}


def rules_of(network: Network, root: str = "") -> Any:
    """The firewall's view of `network` (a `firewall.NetworkRules`); with `root`, its set
    elements carry that engine root's id."""
    from cove.engine.network.firewall import NetworkRules

    owner = hostwide.root_id(root) if root else ""
    return NetworkRules(network.bridge, network.subnet, network.internal, owner)


def _wire(
    nl: Netlink,
    root: str,
    network: Network,
    container_id: str,
    pid: int,
    lease: Lease,
    ifname: str,
) -> dict[str, Any]:
    """Plug the namespace of `pid` into `network` with `lease`: the bridge (made if
    missing, with this root's id in its alias; its subnet's claim then `placed`: it lasts
    as long as the bridge), a veth with the lease's MAC and address, the default route (on
    eth0, unless the network is internal). The endpoint, as stored in settings["networks"].
    Firewall rules are the caller's, who holds the host lock."""
    from cove.engine.network import bridge

    mtu = network.mtu or bridge.uplink_mtu(nl)
    if nl.link(network.bridge) is None:
        with contextlib.suppress(OSError):
            hostwide.claim(root, network.id, network.subnet, network.bridge, placed=True)
    index = bridge.ensure_bridge(nl, network.bridge, network.gateway, network.prefixlen, mtu,
                                 owner=hostwide.root_id(root))  # fmt: skip
    veth = bridge.veth_name(container_id, network.id)
    bridge.attach(
        nl, pid, bridge_index=index, veth=veth,
        alias=bridge.veth_alias(container_id, network.id, pid),
        ifname=ifname, ip=lease.ip, prefixlen=lease.prefixlen, mac=lease.mac,
        gateway=lease.gateway, mtu=mtu, default_route=not network.internal and ifname == "eth0",
    )  # fmt: skip
    return {
        "name": network.name, "network_id": network.id, "endpoint_id": lease.endpoint_id,
        "ip": lease.ip, "prefixlen": lease.prefixlen, "gateway": lease.gateway,
        "mac": lease.mac, "aliases": list(lease.aliases), "bridge": network.bridge,
        "veth": veth, "ifname": ifname, "internal": network.internal,
    }  # fmt: skip


def connect(root: str, network: Network, record: ContainerRecord, lease: Lease) -> dict[str, Any]:
    """`network connect` of a running container: wired to `network` with `lease` at once (as
    eth1, eth2...: the first free name), the network's firewall elements added, its
    /etc/hosts and resolv.conf rewritten (the responder of its first user network becomes
    its nameserver), the DNS responder told. Returns the endpoint for settings["networks"];
    the caller keeps the records (settings["connected"], the endpoints) and gives the lease
    back on failure."""
    from cove.engine.network import bridge, firewall
    from cove.engine.network.rtnl import Netlink
    from cove.engine.state import ContainerStore

    if record.pid <= 0:
        raise NetworkError(f"container {record.id[:12]} is not running")
    endpoints = [e for e in endpoint_settings(record.settings) if e.get("network_id") != network.id]
    used = {str(e.get("ifname")) for e in endpoints}
    ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
    with host_lock(), Netlink() as nl:
        others = [link for link in bridge.cove_veths(nl) if bridge.in_use(link)]
        firewall.enable_forwarding(root)
        endpoint = _wire(nl, root, network, record.id, record.pid, lease, ifname)
        try:
            firewall.ensure(firewall.network_script(rules_of(network, root)),
                            table_likely=bool(others))  # fmt: skip
        except BaseException:
            bridge.detach(nl, endpoint["veth"])
            raise
    with ContainerStore(root) as store:
        _rewrite_hosts(store, record, [*endpoints, endpoint])
    if on_user_network([endpoint]):
        _dns_changed(root)
    network_event(root, "connect", network, record.id)
    return endpoint


def disconnect(root: str, network: Network, record: ContainerRecord) -> None:
    """`network disconnect` of a running container: its veth on `network` deleted, its
    lease given back (the caller may give it back again: that is a no-op), its /etc/hosts
    and resolv.conf rewritten, the DNS responder told (its name goes from the network's
    answers). The network's bridge goes if it was the last container on it, and the
    bridge's set elements with it. The caller keeps the records."""
    from cove.engine.network import bridge, repair
    from cove.engine.network.networks import NetworkService
    from cove.engine.network.records import DEFAULT_BRIDGE
    from cove.engine.network.rtnl import Netlink
    from cove.engine.state import ContainerStore

    with host_lock() as lock_fd, Netlink() as nl:
        bridge.detach(nl, bridge.veth_name(record.id, network.id))
        if network.bridge != DEFAULT_BRIDGE:
            others = [link for link in bridge.cove_veths(nl) if bridge.in_use(link)]
            repair.retire_bridges(nl, root, [network], others, lock_fd)
    with NetworkService(root) as service:
        service.release(network, record.id)
    endpoints = [e for e in endpoint_settings(record.settings) if e.get("network_id") != network.id]
    with ContainerStore(root) as store:
        _rewrite_hosts(store, record, endpoints)
    if on_user_network([(network, None)]):
        _dns_changed(root)
    network_event(root, "disconnect", network, record.id)


def _rewrite_hosts(
    store: ContainerStore, record: ContainerRecord, endpoints: Sequence[Mapping[str, Any]]
) -> None:
    write_etc_files(store.container_dir(record.id), record.config, _hostname(record),
                    [str(e.get("ip")) for e in endpoints],
                    str(endpoints[0].get("gateway") or "") if endpoints else "",
                    _endpoints_dns(endpoints))  # fmt: skip


# --- exit ---------------------------------------------------------------------------------


def unplug(root: str, container_id: str, *, ports: bool = True, links: bool = True) -> None:
    """Undo everything of the container in the data plane (idempotent): its port rules
    (`ports`: look for them), its veths (`links`: delete them now; otherwise they go with
    the container's namespace, which the kernel tears down in the background once its last
    process is gone, sparing the caller the ~20 ms a veth's deletion takes), its leases;
    the whole table instead of the rules when no other cove veth is left on the host; the
    bridge of a user network it was the last one on (made again at the next start: bridges
    exist while containers use them, so networks removed, or left by engine roots that are
    gone, leave none behind) and, when the table stays, the bridge's set elements. The slow
    kernel work (unhooking the table's chains, deleting a bridge: ~20 ms each) runs in the
    background, holding the host lock until it is done."""
    from cove.engine.network import bridge, firewall, repair
    from cove.engine.network.networks import NetworkService
    from cove.engine.network.records import DEFAULT_BRIDGE
    from cove.engine.network.rtnl import Netlink

    with NetworkService(root) as service:
        leases = _leases_of(service, container_id)
        networks: dict[str, Network] = {}
        for lease in leases:
            with contextlib.suppress(CoveError):
                network = service.get(lease.network_id)
                networks[network.bridge] = network
        left = list(networks.values())  # (for the events)
        networks.pop(DEFAULT_BRIDGE, None)  # the default network's stays, as docker0 does
        with host_lock() as lock_fd, Netlink() as nl:
            ours = {bridge.veth_name(container_id, lease.network_id) for lease in leases}
            others = []
            for link in bridge.cove_veths(nl):
                if link.name in ours or bridge.alias_owner(link.alias)[0] == container_id:
                    if links:  # (a veth of a network removed meanwhile: found by its alias)
                        bridge.detach(nl, link.name)
                elif bridge.in_use(link):  # (not one going away with its container)
                    others.append(link)
            if not others:
                firewall.remove_table(lock_fd=lock_fd)
            elif ports:
                firewall.remove_container_rules([container_id])
            ordered = [networks[name] for name in sorted(networks)]
            repair.retire_bridges(nl, root, ordered, others, lock_fd, table_stays=bool(others))
        service.release_all(container_id)
    for network in left:
        network_event(root, "disconnect", network, container_id)


def _leases_of(service: NetworkService, container_id: str) -> list[Lease]:
    if not service.db_path.exists():
        return []
    return service.leases_of(container_id)


def stop(root: str, store: ContainerStore, record: ContainerRecord) -> None:
    """At the container's exit (`_finish`, its processes gone): unplug if it had networks
    of its own. Its veths go with its namespace, unless a running container joined that
    namespace (--network container:NAME), which then keeps only lo, as with Docker."""
    if not has_networks(record) and not record.settings.get("networks"):
        return
    try:
        unplug(root, record.id, ports=record.settings.get("ports") != [],
               links=_joined_by_others(store, record))  # fmt: skip
    except (CoveError, OSError):
        pass  # the exit is recorded all the same; `system check` finds what is left


def _joined_by_others(store: ContainerStore, record: ContainerRecord) -> bool:
    for other in store.list(all=False):
        mode = network_mode(other.config)
        if other.id != record.id and mode.startswith(CONTAINER_PREFIX):
            target = mode[len(CONTAINER_PREFIX) :]
            if target == record.name or (len(target) >= 3 and record.id.startswith(target)):
                return True
    return False


def remove(root: str, record: ContainerRecord) -> None:
    """At `rm`: nothing of the container may remain (a killed start may have left some)."""
    if has_networks(record) or record.settings.get("networks"):
        unplug(root, record.id, ports=True)


def endpoint_settings(settings: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = settings.get("networks")
    return [dict(e) for e in found if isinstance(e, Mapping)] if isinstance(found, list) else []
