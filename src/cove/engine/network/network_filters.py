"""`docker network ls --filter`: the filters a listing takes and whether a network passes;
and `docker network prune --filter` (`prune_networks`).

name (a regular expression searched in the name), id (a prefix), label (KEY or KEY=VALUE;
all must match), driver, type (builtin|custom), dangling (true: user networks without
containers; false: the others). Values of one key are OR-ed except label's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from cove.engine.network.records import Network
from cove.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.network.networks import NetworkService

FILTERS = ("dangling", "driver", "id", "label", "name", "type")


def check_filters(filters: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """The filters as lists of values (`InvalidArgument` for an unknown key or value)."""
    checked = {key: list(values) for key, values in (filters or {}).items()}
    for key, values in checked.items():
        if key not in FILTERS:
            raise InvalidArgument(f"invalid filter {key!r} (networks take "
                                  f"{', '.join(FILTERS)})")  # fmt: skip
        for value in values:
            if key == "type" and value not in ("builtin", "custom"):
                raise InvalidArgument(f"invalid filter 'type={value}' (builtin or custom)")
            if key == "dangling" and value.lower() not in ("true", "1", "false", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={value}' (true or false)")
    return checked


def matches(network: Network, filters: Mapping[str, Sequence[str]], used: set[str]) -> bool:
    """Whether `network` passes `filters`; `used`: the ids of networks with containers."""
    for key, values in filters.items():
        if not values:
            continue
        if key == "name":
            if not any(_search(value, network.name) for value in values):
                return False
        elif key == "id":
            if not any(network.id.startswith(value) for value in values):
                return False
        elif key == "driver":
            if network.driver not in values:
                return False
        elif key == "type":
            if ("builtin" if network.builtin else "custom") not in values:
                return False
        elif key == "label":
            if not all(_label_matches(network, value) for value in values):
                return False
        elif key == "dangling":
            dangling = not network.builtin and network.id not in used
            if dangling not in {value.lower() in ("true", "1") for value in values}:
                return False
    return True


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return pattern in text


def _label_matches(network: Network, text: str) -> bool:
    key, eq, wanted = text.partition("=")
    return key in network.labels and (not eq or network.labels[key] == wanted)


PRUNE_FILTERS = ("until", "label", "label!")


def prune_networks(
    service: NetworkService,
    filters: Mapping[str, Sequence[str]] | None = None,
    until: float | None = None,
) -> list[str]:
    """`docker network prune`: the user networks no container is connected to, narrowed by
    `until` (made before that unix time), `label` and `label!`; the names removed."""
    from cove.engine.container_logs import parse_timestamp
    from cove.engine.image_filters import labels_match
    from cove.errors import NetworkInUse, NoSuchNetwork

    given = {key: list(values) for key, values in (filters or {}).items() if values}
    for key in given:
        if key not in PRUNE_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    wanted, unwanted = given.get("label", []), given.get("label!", [])
    removed = []
    for network in service.list({"dangling": ["true"]}):
        if until is not None and (parse_timestamp(network.created) or 0) / 1e9 >= until:
            continue
        if not labels_match(network.labels, wanted, unwanted):
            continue
        try:
            service.remove(network.id)
        except (NetworkInUse, NoSuchNetwork):
            continue  # a container joined it meanwhile, or another prune took it
        removed.append(network.name)
    return removed
