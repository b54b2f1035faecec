"""Published ports: `-p` / `--publish` and `-P` specs as Docker reads them, host ports
picked for `-p CONTAINERPORT` (`resolve`, at start), and `cove port`'s lines.

    -p 80                      container port 80/tcp on a host port picked at start
    -p 8080:80                 host port 8080 (every host address) to 80/tcp
    -p 127.0.0.1:8080:80/udp   host address 127.0.0.1 only, udp
    -p 127.0.0.1::80           127.0.0.1, a picked host port
    -p 8000-8002:80-82         three bindings, pairwise (a range without host ports: picked)
    -P                         every port the image exposes (ExposedPorts), picked host ports

A `PortBinding`'s host_ip is "" for every host address (Docker's HostIp "", shown as
0.0.0.0; "0.0.0.0" given is stored as ""), its host_port 0 for a port to pick. IPv4 only
for now: an IPv6 host address is refused with a clear error. A container's published ports
live in its record, `settings["ports"]`: a list of `PortBinding.to_dict()` (the data plane
writes them with the host ports it picked).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cove.errors import InvalidPort, NetworkError

PROTOCOLS = ("tcp", "udp")
ALL_ADDRESSES = "0.0.0.0"


@dataclass(frozen=True)
class PortBinding:
    host_ip: str
    host_port: int
    container_port: int
    protocol: str = "tcp"

    @property
    def key(self) -> str:
        """Docker's name of the container port: "80/tcp"."""
        return f"{self.container_port}/{self.protocol}"

    def to_dict(self) -> dict[str, object]:
        """The entry of `settings["ports"]`."""
        return {"host_ip": self.host_ip, "host_port": self.host_port,
                "container_port": self.container_port, "protocol": self.protocol}  # fmt: skip

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> PortBinding:
        """An entry of `settings["ports"]` (`InvalidPort` when malformed)."""
        try:
            host_port = data.get("host_port") or 0
            container_port = data["container_port"]
            if not isinstance(host_port, int) or not isinstance(container_port, int):
                raise TypeError("ports are integers")
            binding = cls(host_ip=str(data.get("host_ip") or ""), host_port=host_port,
                          container_port=container_port,
                          protocol=str(data.get("protocol") or "tcp"))  # fmt: skip
        except (KeyError, TypeError) as exc:
            raise InvalidPort(f"invalid published port {dict(data)!r}: {exc}") from None
        if binding.protocol not in PROTOCOLS or not 0 < binding.container_port < 65536:
            raise InvalidPort(f"invalid published port {dict(data)!r}")
        return binding


def parse_publish(spec: str) -> list[PortBinding]:
    """`-p [IP:][HOSTPORT:]CONTAINERPORT[/PROTO]`, with port ranges (see the module
    docstring). `InvalidPort` (Docker's wording) for anything else."""
    text = spec.strip()
    if not text:
        raise InvalidPort("no port specified: empty publish spec")
    body, protocol = _split_protocol(text)
    if body.startswith("["):
        raise InvalidPort(f"invalid publish spec {spec!r}: ipv6 host addresses are not "
                          "supported yet (publish on an IPv4 address)")  # fmt: skip
    if body.count(":") > 2:
        if not _is_ipv4(body.rsplit(":", 2)[0]) and _is_ip(body.rsplit(":", 2)[0]):
            raise InvalidPort(f"invalid publish spec {spec!r}: ipv6 host addresses are not "
                              "supported yet (publish on an IPv4 address)")  # fmt: skip
        raise InvalidPort(f"invalid port format: {spec} (want "
                          "[IP:][HOSTPORT:]CONTAINERPORT[/PROTO])")  # fmt: skip
    parts = body.split(":")
    host_ip, host_text = "", ""
    if len(parts) == 3:
        host_ip, host_text, container_text = parts
        host_ip = _host_ip(host_ip, spec)
    elif len(parts) == 2:
        host_text, container_text = parts
    else:
        (container_text,) = parts
    if not container_text:
        raise InvalidPort(f"no port specified: {spec}<empty>")
    first, last = _port_range(container_text, "containerPort", allow_zero=False)
    container_ports = range(first, last + 1)
    if not host_text:
        return [PortBinding(host_ip, 0, port, protocol) for port in container_ports]
    host_first, host_last = _port_range(host_text, "hostPort", allow_zero=True)
    host_ports = range(host_first, host_last + 1)
    if len(host_ports) != len(container_ports):
        if len(container_ports) == 1:
            raise InvalidPort(f"invalid publish spec {spec!r}: a host port range for one "
                              "container port is not supported (give one host port)")  # fmt: skip
        raise InvalidPort(
            f"invalid ranges specified for container and host Ports: {container_text} and "
            f"{host_text}"
        )
    if host_first == 0 and len(host_ports) > 1:
        raise InvalidPort(f"invalid hostPort: {host_text}")
    return [PortBinding(host_ip, host, port, protocol)
            for host, port in zip(host_ports, container_ports, strict=True)]  # fmt: skip


def parse_port_proto(text: str) -> tuple[int, str]:
    """`cove port CONTAINER 80/udp`, an ExposedPorts key: "80/udp" -> (80, "udp")."""
    body, protocol = _split_protocol(text.strip())
    first, last = _port_range(body, "port", allow_zero=False)
    if first != last:
        raise InvalidPort(f"invalid port {text!r}: want one port, not a range")
    return first, protocol


def parse_expose(spec: str) -> list[str]:
    """`--expose 80`, `--expose 8000-8002/udp`: the ExposedPorts keys ("80/tcp")."""
    body, protocol = _split_protocol(spec.strip())
    first, last = _port_range(body, "port", allow_zero=False)
    return [f"{port}/{protocol}" for port in range(first, last + 1)]


def expose_all(exposed: Mapping[str, object]) -> list[PortBinding]:
    """`-P`: every port of the image's ExposedPorts ({"80/tcp": {}}) on a picked host port
    of every host address, by port then protocol."""
    bindings = set()
    for key in exposed:
        for name in parse_expose(str(key)):
            port, protocol = parse_port_proto(name)
            bindings.add(PortBinding("", 0, port, protocol))
    return sorted(bindings, key=lambda b: (b.container_port, b.protocol))


def pick_free_port(protocol: str, host_ip: str, taken: Iterable[int]) -> int:
    """A free host port for `protocol` on `host_ip` ("" = every address): one the kernel
    gives a socket bound to port 0 (its ephemeral range), other than those in `taken`
    (what cove has already published)."""
    if protocol not in PROTOCOLS:
        raise InvalidPort(f"invalid proto: {protocol}")
    avoid = set(taken)
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    for _attempt in range(200):
        try:
            with socket.socket(socket.AF_INET, kind) as probe:
                probe.bind((host_ip or ALL_ADDRESSES, 0))
                port = int(probe.getsockname()[1])
        except OSError as exc:
            raise NetworkError(f"cannot pick a free {protocol} port on "
                               f"{host_ip or ALL_ADDRESSES}: {exc.strerror}") from None  # fmt: skip
        if port not in avoid:
            return port
    raise NetworkError(f"cannot pick a free {protocol} port on {host_ip or ALL_ADDRESSES}: "
                       "every port tried is already published")  # fmt: skip


def resolve(container_id: str, bindings: Iterable[PortBinding]) -> list[PortBinding]:
    """The bindings of a starting container with their host ports (0: a free one, picked
    now); a port another container publishes (a rule in cove's table) is refused with
    Docker's words. The caller (the data plane's `plug`) holds the host lock."""
    from cove.engine.network import firewall

    listing = firewall.ports_listing()
    taken = [
        (protocol, host_ip, port)
        for protocol, host_ip, port, owner in (firewall.published(listing) if listing else [])
        if owner != container_id
    ]
    resolved: list[PortBinding] = []
    for binding in bindings:
        host_port = binding.host_port
        same_proto = [
            (ip, port) for protocol, ip, port in taken if protocol == binding.protocol
        ] + [(b.host_ip, b.host_port) for b in resolved if b.protocol == binding.protocol]
        if host_port == 0:
            host_port = pick_free_port(binding.protocol, binding.host_ip,
                                       [port for _, port in same_proto])  # fmt: skip
        else:
            for ip, port in same_proto:
                if port == host_port and (not ip or not binding.host_ip or ip == binding.host_ip):
                    raise NetworkError(
                        f"Bind for {binding.host_ip or '0.0.0.0'}:{host_port} failed: port is "
                        "already allocated"
                    )
        resolved.append(PortBinding(binding.host_ip, host_port, binding.container_port,
                                    binding.protocol))  # fmt: skip
    return resolved


def format_host(binding: PortBinding) -> str:
    """Where a binding listens, "0.0.0.0:8080" (`cove port CONTAINER 80`)."""
    return f"{binding.host_ip or ALL_ADDRESSES}:{binding.host_port}"


def format_port_line(binding: PortBinding) -> str:
    """A line of `cove port CONTAINER`: "80/tcp -> 0.0.0.0:8080"."""
    return f"{binding.key} -> {format_host(binding)}"


def ports_column(bindings: list[PortBinding], exposed: list[str]) -> str:
    """`docker ps`'s PORTS: "0.0.0.0:8080->80/tcp" for each published port, then each
    exposed one ("443/tcp") that is not published, joined by ", "."""
    shown = [f"{format_host(b)}->{b.key}" for b in bindings if b.host_port]
    taken = {b.key for b in bindings if b.host_port}
    for key in sorted(set(exposed) - taken, key=lambda k: (int(k.split("/")[0]), k)):
        shown.append(key)
    return ", ".join(shown)


def published(settings: Mapping[str, object]) -> list[PortBinding]:
    """A container record's published ports (`settings["ports"]`), sorted as `cove port`
    prints them; malformed entries are left out."""
    entries = settings.get("ports") if isinstance(settings, Mapping) else None
    found = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping):
            try:
                found.append(PortBinding.from_dict(entry))
            except InvalidPort:
                continue
    return sorted(found, key=_order)


def _order(binding: PortBinding) -> tuple[int, str, tuple[int, ...], int]:
    address = tuple(ipaddress.IPv4Address(binding.host_ip or ALL_ADDRESSES).packed) \
        if _is_ipv4(binding.host_ip or ALL_ADDRESSES) else (256,)  # fmt: skip
    return binding.container_port, binding.protocol, address, binding.host_port


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _split_protocol(text: str) -> tuple[str, str]:
    body, slash, protocol = text.partition("/")
    if not slash:
        return body, "tcp"
    protocol = protocol.lower()
    if protocol not in PROTOCOLS:
        if protocol == "sctp":
            raise InvalidPort("invalid proto: sctp (cove publishes tcp and udp)")
        raise InvalidPort(f"invalid proto: {protocol}")
    return body, protocol


def _host_ip(text: str, spec: str) -> str:
    if not text:
        return ""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidPort(f"invalid ip address: {text}") from None
    if address.version != 4:
        raise InvalidPort(f"invalid publish spec {spec!r}: ipv6 host addresses are not "
                          "supported yet (publish on an IPv4 address)")  # fmt: skip
    return "" if text == ALL_ADDRESSES else str(address)


def _port_range(text: str, what: str, *, allow_zero: bool) -> tuple[int, int]:
    start, dash, end = text.partition("-")
    first = _port(start, what, text, allow_zero)
    last = _port(end, what, text, allow_zero) if dash else first
    if last < first:
        raise InvalidPort(f"invalid {what} range: {text} (the end comes before the start)")
    return first, last


def _port(text: str, what: str, whole: str, allow_zero: bool) -> int:
    if not text.isdigit() or not text.isascii():
        raise InvalidPort(f"invalid {what}: {whole}")
    value = int(text)
    if value > 65535 or (value == 0 and not allow_zero):
        raise InvalidPort(f"invalid {what}: {whole} (ports go from 1 to 65535)")
    return value
