"""Query parameters and bodies as dockerd reads them: booleans ("1", "true", "0",
"false"), `filters` (a JSON map of lists, or of {value: true} maps as old clients send),
`until` timestamps, JSON bodies that may be empty or `null`."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

from aiohttp import web

from cove.api.errors import BadParameter

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    if name not in request.query:
        return default
    value = request.query[name].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise BadParameter(f"invalid boolean value {request.query[name]!r} for query parameter {name}")


def query_int(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise BadParameter(f"invalid integer value {text!r} for query parameter {name}") from None


def parse_filters(text: str) -> dict[str, list[str]]:
    """`{"label": ["a=b"], "dangling": {"true": true}}` -> {"label": ["a=b"], ...}."""
    if not text:
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        raise BadParameter(f"invalid filters: {text!r} is not JSON") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise BadParameter("invalid filters: want a JSON object of lists")
    filters: dict[str, list[str]] = {}
    for key, values in document.items():
        if isinstance(values, dict):
            items = [str(value) for value, on in values.items() if on]
        elif isinstance(values, list):
            items = [str(value) for value in values]
        elif isinstance(values, str):
            items = [values]
        else:
            raise BadParameter(f"invalid filters: the values of {key!r} are not a list")
        filters[str(key)] = items
    return filters


def request_filters(request: web.Request) -> dict[str, list[str]]:
    return parse_filters(request.query.get("filters", ""))


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_timestamp(text: str, now: float | None = None) -> float:
    """A filter's time as dockerd takes it: a Go duration before now (`10m`, `1h30m`), a
    unix time (`1700000000`, `1700000000.5`), or an RFC 3339 date or date-time."""
    value = text.strip()
    current = time.time() if now is None else now
    if value and _DURATION.sub("", value) == "":
        return current - sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(value))
    try:
        return float(value)
    except ValueError:
        pass
    for candidate in (value.replace("Z", "+00:00"), value):
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if moment.tzinfo is None:
            moment = moment.astimezone()
        return moment.timestamp()
    raise BadParameter(f"invalid time {text!r}: want a duration, a unix time or RFC 3339")


def until_of(filters: dict[str, list[str]]) -> float | None:
    """The `until` filter (the earliest when given several), taken out of `filters`."""
    values = filters.pop("until", [])
    return min(parse_timestamp(value) for value in values) if values else None


async def json_body(request: web.Request, *, default: Any = None) -> Any:
    """The JSON body, or `default` when there is none (empty or `null`)."""
    raw = await request.read()
    if not raw.strip():
        return default
    try:
        document = json.loads(raw)
    except ValueError as exc:
        raise BadParameter(f"invalid JSON body: {exc}") from None
    return default if document is None else document


async def json_object(request: web.Request) -> dict[str, Any]:
    document = await json_body(request, default={})
    if not isinstance(document, dict):
        raise BadParameter("invalid JSON body: want an object")
    return document


def unix_time(text: str | None) -> int:
    """An RFC 3339 time (as the engine keeps them) as unix seconds (0 when unknown)."""
    if not text:
        return 0
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0
