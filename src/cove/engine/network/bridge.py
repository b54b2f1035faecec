"""The links of cove's networks: a Linux bridge per network (the gateway's address on it),
and a veth pair per container and network.

    host namespace                              container namespace
    cove0 (bridge, 172.17.0.1/16, up) <- cvXXXXXXXX (veth, up) ==== eth0 (MAC and address
                                                                     of the lease, default
                                                                     route via the gateway)

- MTU: the network's, else that of the uplink (the interface of the host's default route),
  on the bridge and on both ends of each veth.
- The bridge's MAC address is fixed at creation (`bridge_mac`), as Docker does. Its alias
  ("cove:<made at>:<engine root id>", `bridge_alias`) says when it was made and whose it is.
- The host end is "cv" + 8 hex digits of a hash of (container id, network id), so the same
  container on the same network always gets the same name; its alias ("cove:<container
  id>:<network id prefix>:<init pid>", `ip -d link`) says whose it is (`system check` reads
  it) and whether that container still runs.
- The container end is made directly in the container's namespace (no rename), named eth0,
  eth1, ... in the order of its networks.
- A veth goes with the container's namespace when its last process exits; `detach` deletes
  it at once (so nothing lingers while the kernel tears the namespace down).
- The bridge gets `route_localnet=1`: published ports reached through 127.0.0.1 are DNATed to
  the container, which the kernel only routes out of a device that allows it.
- Each veth's bridge port is in hairpin mode (as Docker's without its userland proxy): a
  container that reaches its own published port through the host's address gets the
  DNATed frames back by the port they came in on. Routed traffic needs no hairpin, but with
  br_netfilter loaded (Docker loads it) the DNAT happens at the bridge, which then bridges
  the frame back out of its ingress port. (`firewall` masquerades that traffic.)

No internal network gets a default route (as Docker): only its subnet is reachable.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import time

from cove.engine.network.rtnl import Link, Netlink, NetlinkError
from cove.errors import NetworkError

DEFAULT_MTU = 1500
VETH_RE = re.compile(r"cv[0-9a-f]{8}")
USER_BRIDGE_RE = re.compile(r"cv-[0-9a-f]{12}")
ALIAS_PREFIX = "cove:"


def bridge_mac(name: str) -> str:
    """The bridge's own MAC address, from its name (locally administered, unicast; not in
    02:42:..., the containers' range). Set at creation, so that it stays when ports come and
    go: the kernel would otherwise give the bridge its lowest port's address, and change it
    when that port goes, leaving the containers' ARP caches with a stale gateway address
    (a few seconds without a gateway after a `network disconnect` or a container's exit)."""
    digest = hashlib.sha256(f"cove-bridge:{name}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x06, *digest[:5]))


def veth_name(container_id: str, network_id: str) -> str:
    return "cv" + hashlib.sha256(f"{container_id}:{network_id}".encode()).hexdigest()[:8]


def veth_alias(container_id: str, network_id: str, pid: int) -> str:
    """ "cove:<container id>:<12 digits of the network id>:<pid of the container's init>"
    (an alias holds at most 127 bytes)."""
    return f"{ALIAS_PREFIX}{container_id}:{network_id[:12]}:{pid}"


def alias_owner(alias: str) -> tuple[str, str, int]:
    """(container id, network id prefix, init pid) of a cove veth's alias; ("", "", 0) for
    another alias."""
    if not alias.startswith(ALIAS_PREFIX):
        return "", "", 0
    container_id, _, rest = alias[len(ALIAS_PREFIX) :].partition(":")
    network_id, _, pid = rest.partition(":")
    return container_id, network_id, int(pid) if pid.isdigit() else 0


def in_use(link: Link) -> bool:
    """The veth's container still runs (its init lives). A veth whose container is gone
    lingers until the kernel has torn the namespace down, which it does in the background."""
    pid = alias_owner(link.alias)[2]
    return pid <= 0 or os.path.exists(f"/proc/{pid}")


def uplink_mtu(nl: Netlink) -> int:
    """The MTU of the interface of the host's IPv4 default route (1500 without one)."""
    index = nl.default_route_link()
    if index:
        for link in nl.links():
            if link.index == index and link.mtu:
                return link.mtu
    return DEFAULT_MTU


def _sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        raise NetworkError(f"cannot set {path}: {exc.strerror or exc}") from None


def ensure_bridge(
    nl: Netlink, name: str, gateway: str, prefixlen: int, mtu: int, owner: str = ""
) -> int:
    """The bridge `name`, up, with the gateway's address: made if missing (its alias says
    when, and `owner`, the id of the engine root whose network it is); its index."""
    link = nl.link(name)
    if link is None:
        try:
            nl.add_bridge(name, mtu, bridge_mac(name))
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:  # another start made it first
                raise NetworkError(f"cannot create bridge {name}: {exc.strerror}") from None
        link = nl.link(name)
        if link is None:
            raise NetworkError(f"bridge {name} vanished as it was made")
        # the MTU set again: one given after creation stays when the last port goes; the
        # alias: when it was made (`system check` leaves a bridge being set up alone) and
        # by which root (`system check` looks only at its own)
        nl.set_link(link.index, mtu=mtu, alias=bridge_alias(owner))
    elif link.kind != "bridge":
        raise NetworkError(f"interface {name} exists and is not a bridge ({link.kind or 'none'})")
    elif not link.up:
        nl.set_link(link.index, up=True)
    _sysctl(f"/proc/sys/net/ipv4/conf/{name}/route_localnet", "1")
    present = nl.addresses(link.index)
    if any(other.master == link.index for other in nl.links()):
        pass  # in use: "cove0" is every engine root's default bridge; another root's subnet
    else:  # idle: addresses of networks gone with their root would pile up (and use pools)
        for _, address, length in present:
            if (address, length) != (gateway, prefixlen):
                nl.delete_address(link.index, address, length)
    if (link.index, gateway, prefixlen) not in present:
        try:
            nl.add_address(link.index, gateway, prefixlen)
        except NetlinkError as exc:
            if exc.errno != errno.EEXIST:
                raise NetworkError(
                    f"cannot give bridge {name} the address {gateway}/{prefixlen}: {exc.strerror}"
                ) from None
    return link.index


def bridge_alias(owner: str = "", made: float | None = None) -> str:
    """ "cove:<made at, unix time>:<owner>": owner, the id of the engine root whose network
    the bridge is (`hostwide.root_id`)."""
    stamp = int(time.time() if made is None else made)
    return f"{ALIAS_PREFIX}{stamp}:{owner}" if owner else f"{ALIAS_PREFIX}{stamp}"


def bridge_owner(alias: str) -> str:
    """The engine root id a bridge's alias names ("" for none: made by an older cove)."""
    if not alias.startswith(ALIAS_PREFIX):
        return ""
    made, _, owner = alias[len(ALIAS_PREFIX) :].partition(":")
    return owner if made.isdigit() else ""


def young_bridge(link: Link) -> bool:
    """A bridge made less than the check's grace period ago (see `system_check`)."""
    from cove.engine.system_check import _grace

    made = link.alias[len(ALIAS_PREFIX) :].partition(":")[0]
    made = made if link.alias.startswith(ALIAS_PREFIX) else ""
    return made.isdigit() and time.time() - int(made) < _grace()


def delete_in_background(name: str, lock_fd: int) -> None:
    """`ip link delete NAME` in a process that holds the lock `lock_fd` until it is done (the
    kernel takes ~20 ms to unregister a device: the caller does not wait for it)."""
    import shutil
    import subprocess

    binary = shutil.which("ip") or "/usr/sbin/ip"
    subprocess.Popen([binary, "link", "delete", name, "type", "bridge"], pass_fds=[lock_fd],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def delete_bridge(nl: Netlink, name: str) -> bool:
    link = nl.link(name)
    if link is None or link.kind != "bridge":
        return False
    return nl.delete_link(name)


def attach(
    nl: Netlink,
    pid: int,
    *,
    bridge_index: int,
    veth: str,
    alias: str,
    ifname: str,
    ip: str,
    prefixlen: int,
    mac: str,
    gateway: str,
    mtu: int,
    default_route: bool,
) -> None:
    """Plug the container whose init is `pid` into the bridge (see the module docstring).
    On failure the veth is deleted again."""
    try:
        netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise NetworkError(
            f"cannot open the network namespace of pid {pid}: {exc.strerror}"
        ) from None
    try:
        nl.delete_link(veth)  # a leftover of a killed start of this container
        nl.add_veth(veth, ifname, peer_netns_fd=netns, peer_mac=mac, master=bridge_index, mtu=mtu)
    except NetlinkError as exc:
        raise NetworkError(f"cannot create veth {veth} for pid {pid}: {exc.strerror}") from None
    finally:
        os.close(netns)
    try:
        nl.set_link(nl.index(veth), alias=alias, hairpin=True)
        with Netlink.inside(pid) as inner:
            index = inner.index(ifname)
            inner.add_address(index, ip, prefixlen)
            inner.set_link(index, up=True)
            inner.set_link(inner.index("lo"), up=True)
            if default_route and gateway:
                try:
                    inner.add_default_route(gateway, index)
                except NetlinkError as exc:
                    if exc.errno != errno.EEXIST:  # a first network's route is there already
                        raise
    except (NetlinkError, OSError) as exc:
        try:
            nl.delete_link(veth)
        except NetlinkError:
            pass
        raise NetworkError(
            f"cannot configure {ifname} of pid {pid}: {exc.strerror or exc}"
        ) from None


def detach(nl: Netlink, veth: str) -> bool:
    """Delete the veth pair (False when it is gone already)."""
    try:
        return nl.delete_link(veth)
    except NetlinkError as exc:
        raise NetworkError(f"cannot delete veth {veth}: {exc.strerror}") from None


def cove_veths(nl: Netlink) -> list[Link]:
    """The host ends of cove's veths."""
    return [link for link in nl.links() if link.kind == "veth" and VETH_RE.fullmatch(link.name)]


def cove_bridge_name(name: str) -> bool:
    """Named as cove names bridges ("cove0", "cv-<12 hex>")."""
    return name == "cove0" or USER_BRIDGE_RE.fullmatch(name) is not None


def bridge_names(nl: Netlink) -> list[str]:
    """Bridges named as cove names them ("cove0", "cv-<12 hex>")."""
    return [
        link.name for link in nl.links() if link.kind == "bridge" and cove_bridge_name(link.name)
    ]
