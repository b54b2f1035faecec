"""`docker container prune` with its filters, for the CLI and `POST /containers/prune`:
the stopped containers (exited, created, dead), narrowed by `until` (made before that unix
time), `label` (all must match) and `label!` (none may)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cove.errors import InvalidArgument, InvalidState, NoSuchContainer

PRUNE_FILTERS = ("until", "label", "label!")
STOPPED = ("exited", "created", "dead")


def check_prune_filters(filters: Mapping[str, Sequence[str]]) -> None:
    for key in filters:
        if key not in PRUNE_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")


def prune_containers(
    root: str, filters: Mapping[str, Sequence[str]] | None = None, until: float | None = None
) -> tuple[list[str], int]:
    """Remove them; (their ids, the bytes they had written)."""
    from cove.engine.container_logs import parse_timestamp
    from cove.engine.containers import ContainerService
    from cove.engine.state_records import _match_label
    from cove.engine.system_df import container_size

    given = {key: list(values) for key, values in (filters or {}).items() if values}
    check_prune_filters(given)
    service = ContainerService(root)
    deleted: list[str] = []
    reclaimed = 0
    for record in service.list(True, {"label": given.get("label", [])}):
        if record.status not in STOPPED:
            continue
        if any(_match_label(record, value) for value in given.get("label!", [])):
            continue
        made = (parse_timestamp(record.created) or 0) / 1e9
        if until is not None and made >= until:
            continue
        size = container_size(root, record.id)
        try:
            deleted.append(service.remove(record.id))
        except (InvalidState, NoSuchContainer):
            continue  # started or removed meanwhile
        reclaimed += size
    return deleted, reclaimed
