"""Docker's checks at create of --network and of the flags that depend on it (-p, -P,
--expose, --ip, --network-alias, --dns..., more networks): nothing is touched on the host;
`attach.py` does that at start."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cove.engine.network.attach import CONTAINER_PREFIX, PSEUDO_MODES
from cove.errors import InvalidArgument

if TYPE_CHECKING:
    from cove.engine.network.ports import PortBinding
    from cove.engine.state import ContainerRecord, ContainerStore


@dataclass
class CreateCheck:
    """What `check_create` found: the port bindings asked for (host port 0: picked at
    start), the joined container for container:NAME, warnings."""

    bindings: list[PortBinding] = field(default_factory=list)
    joined: ContainerRecord | None = None
    warnings: list[str] = field(default_factory=list)


def check_create(
    root: str,
    store: ContainerStore,
    options: Any,
    exposed: Sequence[str] = (),
) -> CreateCheck:
    """Docker's checks of --network and the flags that depend on it. `options`: the
    CreateOptions; `exposed`: the image's ExposedPorts keys (for -P)."""
    from cove.engine.network import ports

    mode = str(options.network or "bridge")
    found = CreateCheck()
    for spec in options.expose:
        ports.parse_expose(spec)  # (InvalidPort names what is wrong)
    publish = [b for spec in options.publish for b in ports.parse_publish(spec)]
    if options.publish_all:
        asked = {(b.container_port, b.protocol) for b in publish}
        publish += [b for b in ports.expose_all({key: {} for key in exposed})
                    if (b.container_port, b.protocol) not in asked]  # fmt: skip
    mac = str(getattr(options, "mac_address", "") or "")
    if mac:
        from cove.engine.network.ipam import parse_mac

        parse_mac(mac)
        if mode in ("host", "none") or mode.startswith(CONTAINER_PREFIX):
            raise InvalidArgument("conflicting options: mac-address and the network mode")
    if mode.startswith(CONTAINER_PREFIX):
        target = mode[len(CONTAINER_PREFIX) :]
        if not target:
            raise InvalidArgument("invalid value 'container:' for flag --network: name a container")
        if options.publish or options.publish_all:
            raise InvalidArgument("conflicting options: port publishing and the container type "
                                  "network mode")  # fmt: skip
        if options.hostname:
            raise InvalidArgument("conflicting options: hostname and the network mode")
        if options.dns or options.dns_search or options.dns_options or options.add_hosts:
            raise InvalidArgument("conflicting options: dns and the network mode")
        if options.ip:
            raise InvalidArgument("conflicting options: --ip and the network mode")
        found.joined = store.get(target)
        return found
    if options.ip or options.network_aliases:
        if mode in ("bridge", *PSEUDO_MODES):
            flag = "--ip" if options.ip else "--network-alias"
            raise InvalidArgument(f"{flag}: user specified IP address and aliases are supported "
                                  "on user defined networks only")  # fmt: skip
    if options.connect:
        _check_more_networks(root, mode, options.connect)
    if mode == "host":
        if publish:
            found.warnings.append("Published ports are discarded when using host network mode")
        return found
    if mode == "none":
        return found
    from cove.engine.network.networks import NetworkService

    network = NetworkService(root).get(mode)
    if network.pseudo:  # found by id
        return found
    if options.ip:
        import ipaddress

        try:
            address = ipaddress.IPv4Address(options.ip)
        except ValueError:
            raise InvalidArgument(f"invalid value '{options.ip}' for flag --ip: not an IPv4 "
                                  "address") from None  # fmt: skip
        if address not in ipaddress.IPv4Network(network.subnet):
            raise InvalidArgument(f"invalid value '{options.ip}' for flag --ip: not in the subnet "
                                  f"{network.subnet} of network {network.name}")  # fmt: skip
    if network.internal and publish:
        found.warnings.append(f"network {network.name} is internal: published ports are ignored")
        publish = []
    found.bindings = publish
    return found


def _check_more_networks(root: str, mode: str, more: Sequence[Mapping[str, Any]]) -> None:
    """Networks after the first (`--network a --network b`): user networks only, each once,
    as Docker has it."""
    from cove.engine.network.networks import NetworkService

    service = NetworkService(root)
    seen = set()
    for term in [mode, *(str(entry.get("network") or "") for entry in more)]:
        network = service.get(term) if not term.startswith(CONTAINER_PREFIX) else None
        if network is None or network.pseudo or network.name == "bridge":
            raise InvalidArgument("conflicting options: cannot attach both user-defined and "
                                  "non-user-defined network-modes")  # fmt: skip
        if network.id in seen:
            raise InvalidArgument(f"network {network.name} is given more than once")
        seen.add(network.id)
