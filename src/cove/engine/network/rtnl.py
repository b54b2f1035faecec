"""A small rtnetlink client: the few link, address and route requests container networking
needs, spoken directly on a NETLINK_ROUTE socket.

Why not pyroute2: importing it costs about 100 ms, as much as a whole `cove run`; these
requests are a few struct packs each. Only stdlib is imported, so the module is cheap to
load on every start and stop.

A `Netlink` is bound to the network namespace it was opened in: `Netlink.inside(pid)`
opens one in the namespace of process `pid` (a setns of the calling thread only, undone at
once), so one process configures both ends of a veth without forking.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

# message types
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_GETROUTE = 24, 26
NLMSG_ERROR, NLMSG_DONE = 2, 3
# flags
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE, NLM_F_REPLACE = 0x300, 0x200, 0x400, 0x100
# link attributes
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_IFALIAS, IFLA_NET_NS_FD = 18, 20, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFLA_INFO_SLAVE_KIND, IFLA_INFO_SLAVE_DATA = 4, 5
IFLA_BRPORT_MODE = 4  # a bridge port's hairpin mode (u8): frames may leave by the port they came in
IFF_UP = 0x1
# address and route attributes
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_HEADER = struct.Struct("=LHHLL")  # nlmsghdr
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg
_ATTR = struct.Struct("=HH")


def attr(kind: int, value: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    length = _ATTR.size + len(value)
    return _ATTR.pack(length, kind) + value + b"\0" * (-length % 4)


def text(value: str) -> bytes:
    return value.encode() + b"\0"


def u32(value: int) -> bytes:
    return struct.pack("=I", value)


def ipv4(address: str) -> bytes:
    return socket.inet_aton(address)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """rtattrs from `offset` to the end (the last of a kind wins; NLA_F_NESTED ignored)."""
    found: dict[int, bytes] = {}
    while offset + _ATTR.size <= len(data):
        length, kind = _ATTR.unpack_from(data, offset)
        if length < _ATTR.size:
            break
        found[kind & 0x3FFF] = data[offset + _ATTR.size : offset + length]
        offset += (length + 3) & ~3
    return found


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str  # "veth", "bridge", "" (no linkinfo)
    master: int
    mtu: int
    up: bool
    alias: str


class NetlinkError(OSError):
    pass


class Netlink:
    """A NETLINK_ROUTE socket; requests raise `NetlinkError` (an OSError with the errno)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)  # fmt: skip
        self.sock.bind((0, 0))
        self.seq = 0

    @classmethod
    def inside(cls, pid: int) -> Netlink:
        """A socket in the network namespace of `pid` (only this thread enters it, and
        leaves again before returning)."""
        from cove.sys.constants import CLONE_NEWNET
        from cove.sys.linux import LinuxSyscalls

        calls = LinuxSyscalls()
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                calls.setns(target, CLONE_NEWNET)
                try:
                    return cls()
                finally:
                    calls.setns(own, CLONE_NEWNET)
            finally:
                os.close(target)
        finally:
            os.close(own)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------

    def _send(self, kind: int, flags: int, payload: bytes) -> int:
        self.seq += 1
        header = _HEADER.pack(_HEADER.size + len(payload), kind, flags | NLM_F_REQUEST, self.seq, 0)
        self.sock.send(header + payload)
        return self.seq

    def _replies(self, seq: int) -> Iterator[tuple[int, int, bytes]]:
        """(type, flags, payload) of the answers to `seq`, until DONE or the ACK/error."""
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, kind, flags, got, _pid = _HEADER.unpack_from(data, offset)
                if length < _HEADER.size:
                    return
                body = data[offset + _HEADER.size : offset + length]
                offset += (length + 3) & ~3
                if got != seq:
                    continue
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", body)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return
                yield kind, flags, body
                if not flags & NLM_F_MULTI:
                    return

    def request(self, kind: int, payload: bytes, flags: int = 0) -> None:
        """A change, acknowledged (errors raise)."""
        for _ in self._replies(self._send(kind, flags | NLM_F_ACK, payload)):
            pass

    def dump(self, kind: int, payload: bytes) -> list[bytes]:
        return [body for _, _, body in self._replies(self._send(kind, NLM_F_DUMP, payload))]

    # --- links ---------------------------------------------------------------------------

    def links(self) -> list[Link]:
        return [_link(body) for body in self.dump(RTM_GETLINK, ifinfo())]

    def link(self, name: str) -> Link | None:
        seq = self._send(RTM_GETLINK, NLM_F_ACK, ifinfo() + attr(IFLA_IFNAME, text(name)))
        try:
            for _, _, body in self._replies(seq):
                return _link(body)
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return None
            raise
        return None

    def index(self, name: str) -> int:
        found = self.link(name)
        if found is None:
            raise NetlinkError(errno.ENODEV, f"no such network interface: {name}")
        return found.index

    def add_bridge(self, name: str, mtu: int = 0, mac: str = "") -> None:
        """A bridge, up. `mac`: its address, kept as ports come and go (without one the
        kernel gives the bridge the lowest address of its ports, which changes)."""
        attrs = attr(IFLA_IFNAME, text(name)) + attr(
            IFLA_LINKINFO, attr(IFLA_INFO_KIND, text("bridge"))
        )
        if mtu:
            attrs += attr(IFLA_MTU, u32(mtu))
        if mac:
            attrs += attr(IFLA_ADDRESS, mac_bytes(mac))
        self.request(RTM_NEWLINK, ifinfo(flags=IFF_UP, change=IFF_UP) + attrs,
                     NLM_F_CREATE | NLM_F_EXCL)  # fmt: skip

    def add_veth(
        self,
        name: str,
        peer: str,
        *,
        peer_netns_fd: int = -1,
        peer_mac: str = "",
        master: int = 0,
        mtu: int = 0,
    ) -> None:
        """A veth pair `name` (here, up, enslaved to `master`) and `peer` (made directly in
        the namespace of `peer_netns_fd`, down)."""
        peer_attrs = attr(IFLA_IFNAME, text(peer))
        if peer_netns_fd >= 0:
            peer_attrs += attr(IFLA_NET_NS_FD, u32(peer_netns_fd))
        if peer_mac:
            peer_attrs += attr(IFLA_ADDRESS, mac_bytes(peer_mac))
        if mtu:
            peer_attrs += attr(IFLA_MTU, u32(mtu))
        info = attr(IFLA_INFO_KIND, text("veth"))
        info += attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, ifinfo() + peer_attrs))
        attrs = attr(IFLA_IFNAME, text(name)) + attr(IFLA_LINKINFO, info)
        if mtu:
            attrs += attr(IFLA_MTU, u32(mtu))
        if master:
            attrs += attr(IFLA_MASTER, u32(master))
        self.request(RTM_NEWLINK, ifinfo(flags=IFF_UP, change=IFF_UP) + attrs,
                     NLM_F_CREATE | NLM_F_EXCL)  # fmt: skip

    def set_link(
        self,
        index: int,
        *,
        up: bool | None = None,
        mtu: int = 0,
        alias: str | None = None,
        hairpin: bool | None = None,
    ) -> None:
        """Change a link. `hairpin`: the hairpin mode of the bridge port it is (`ip link set
        DEV type bridge_slave hairpin on`; EOPNOTSUPP when the link is no bridge's port)."""
        flags = change = 0
        if up is not None:
            flags, change = (IFF_UP if up else 0), IFF_UP
        attrs = b""
        if mtu:
            attrs += attr(IFLA_MTU, u32(mtu))
        if alias is not None:
            attrs += attr(IFLA_IFALIAS, alias.encode())
        if hairpin is not None:
            port = attr(IFLA_BRPORT_MODE, bytes([int(hairpin)]))
            attrs += attr(IFLA_LINKINFO, attr(IFLA_INFO_SLAVE_KIND, text("bridge"))
                          + attr(IFLA_INFO_SLAVE_DATA, port))  # fmt: skip
        self.request(RTM_NEWLINK, ifinfo(index, flags, change) + attrs)

    def delete_link(self, name: str) -> bool:
        """False when there is no such link."""
        try:
            self.request(RTM_DELLINK, ifinfo() + attr(IFLA_IFNAME, text(name)))
        except NetlinkError as exc:
            if exc.errno == errno.ENODEV:
                return False
            raise
        return True

    # --- addresses and routes --------------------------------------------------------------

    def add_address(self, index: int, address: str, prefixlen: int) -> None:
        """An IPv4 address with its broadcast (EEXIST when it is there already)."""
        packed = ipv4(address)
        host_bits = (1 << (32 - prefixlen)) - 1 if prefixlen < 32 else 0
        broadcast = struct.pack("!I", struct.unpack("!I", packed)[0] | host_bits)
        payload = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        payload += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        if prefixlen < 31:
            payload += attr(IFA_BROADCAST, broadcast)
        self.request(RTM_NEWADDR, payload, NLM_F_CREATE | NLM_F_EXCL)

    def delete_address(self, index: int, address: str, prefixlen: int) -> None:
        payload = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        self.request(RTM_DELADDR, payload + attr(IFA_LOCAL, ipv4(address)))

    def addresses(self, index: int = 0) -> list[tuple[int, str, int]]:
        """(link index, address, prefix length) of the IPv4 addresses (of `index`, or all)."""
        found = []
        for body in self.dump(RTM_GETADDR, _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)):
            _family, prefixlen, _flags, _scope, link = _IFADDR.unpack_from(body)
            attrs = parse_attrs(body, _IFADDR.size)
            raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
            if raw and (not index or link == index):
                found.append((link, socket.inet_ntoa(raw), prefixlen))
        return found

    def add_default_route(self, gateway: str, index: int) -> None:
        payload = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                              RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)  # fmt: skip
        payload += attr(RTA_GATEWAY, ipv4(gateway)) + attr(RTA_OIF, u32(index))
        self.request(RTM_NEWROUTE, payload, NLM_F_CREATE | NLM_F_EXCL)

    def routes(self, table: int = RT_TABLE_MAIN) -> list[tuple[str, int, int]]:
        """(destination, prefix length, link index) of the IPv4 routes of `table` (the
        default route: ("0.0.0.0", 0, index))."""
        found = []
        for body in self.dump(RTM_GETROUTE, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            _f, dst_len, _s, _t, kind_table, _p, _sc, _k, _fl = _RTMSG.unpack_from(body)
            attrs = parse_attrs(body, _RTMSG.size)
            if RTA_TABLE in attrs:
                kind_table = struct.unpack("=I", attrs[RTA_TABLE])[0]
            if kind_table != table:
                continue
            dst = socket.inet_ntoa(attrs[RTA_DST]) if RTA_DST in attrs else "0.0.0.0"
            oif = struct.unpack("=I", attrs[RTA_OIF])[0] if RTA_OIF in attrs else 0
            found.append((dst, dst_len, oif))
        return found

    def default_route_link(self) -> int:
        """The link of the IPv4 default route in the main table (0 when there is none)."""
        for body in self.dump(RTM_GETROUTE, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            _f, dst_len, _s, _t, table, _p, _sc, kind, _fl = _RTMSG.unpack_from(body)
            attrs = parse_attrs(body, _RTMSG.size)
            if RTA_TABLE in attrs:
                table = struct.unpack("=I", attrs[RTA_TABLE])[0]
            if dst_len == 0 and table == RT_TABLE_MAIN and kind == RTN_UNICAST:
                if RTA_OIF in attrs:
                    oif: int = struct.unpack("=I", attrs[RTA_OIF])[0]
                    return oif
        return 0


def _link(body: bytes) -> Link:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(body)
    attrs = parse_attrs(body, _IFINFO.size)
    kind = ""
    if IFLA_LINKINFO in attrs:
        info = parse_attrs(attrs[IFLA_LINKINFO])
        kind = info.get(IFLA_INFO_KIND, b"").rstrip(b"\0").decode(errors="replace")
    master = struct.unpack("=I", attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else 0
    mtu = struct.unpack("=I", attrs[IFLA_MTU])[0] if IFLA_MTU in attrs else 0
    return Link(
        index=index,
        name=attrs.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace"),
        kind=kind,
        master=master,
        mtu=mtu,
        up=bool(flags & IFF_UP),
        alias=attrs.get(IFLA_IFALIAS, b"").rstrip(b"\0").decode(errors="replace"),
    )
