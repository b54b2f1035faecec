"""`--filter` of the prune commands: KEY=VALUE pairs, with `until` (a duration, a unix time
or an RFC 3339 date, as docker takes it) taken out as a unix time."""

from __future__ import annotations

from cove.cli.engine.volume import filters


def parse(items: list[str]) -> tuple[dict[str, list[str]], float | None]:
    from cove.engine.container_logs import parse_since

    given = filters(items)
    untils = given.pop("until", [])
    if not untils:
        return given, None
    return given, min(parse_since(value, flag="--filter until") for value in untils) / 1e9
