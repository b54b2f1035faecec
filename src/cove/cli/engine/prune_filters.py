"""The prune commands' `--filter` (KEY=VALUE pairs, with `until`, a duration, a unix time
or an RFC 3339 date as docker takes it, taken out as a unix time) and their prompt."""

from __future__ import annotations

from cove.cli.engine.volume import filters


def parse(items: list[str]) -> tuple[dict[str, list[str]], float | None]:
    from cove.engine.container_logs import parse_since

    given = filters(items)
    untils = given.pop("until", [])
    if not untils:
        return given, None
    return given, min(parse_since(value, flag="--filter until") for value in untils) / 1e9


def confirmed(
    force: bool, warning: str, question: str = "Are you sure you want to continue?"
) -> bool:
    """docker's prompt before a prune: asked only on a terminal and without -f."""
    import sys

    if force or not sys.stdin.isatty():
        return True
    sys.stdout.write(f"{warning}\n{question} [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
