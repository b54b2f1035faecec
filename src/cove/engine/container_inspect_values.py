"""Reading a container record's values leniently, for `docker inspect`
(`cove.engine.container_inspect`): what no longer parses reads as Docker's zero value
(0, "", null, an empty list), never as an error.
"""

from __future__ import annotations

from collections.abc import Mapping

from cove.engine.create_options import parse_bytes
from cove.errors import CoveError

ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what Docker prints for unset times


def as_int(value: object) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def optional_int(value: object) -> int | None:
    return None if value is None or value == "" else as_int(value)


def size(value: object) -> int:
    """A size option ("512m", 1024, "-1") in bytes; 0 when unset or invalid."""
    if value is None or value == "" or isinstance(value, bool):
        return 0
    if str(value).strip() == "-1":
        return -1
    if not isinstance(value, (str, int)):
        return 0
    try:
        return parse_bytes(value, "")
    except CoveError:
        return 0


def nano_cpus(value: object) -> int:
    """--cpus ("1.5") in nano-CPUs; 0 when unset or invalid."""
    if value is None or value == "" or isinstance(value, bool):
        return 0
    try:
        nano = round(float(str(value)) * 1e9)
    except (ValueError, OverflowError):
        return 0
    return nano if nano > 0 else 0


def strings(value: object) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return []


def string_map(value: object) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return {}


def list_or_none(value: object) -> list[str] | None:
    items = strings(value)
    return items or None


def time_or_zero(text: str) -> str:
    return text or ZERO_TIME
