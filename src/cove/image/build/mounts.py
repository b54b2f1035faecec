"""`RUN --mount=` specifications: `type=cache,target=/root/.cache,sharing=locked`.

The value is a comma-separated list (CSV quoting: a field in double quotes may hold a
comma) of `key=value` fields or bare boolean keys (`ro`, `rw`, `readonly`, `required`).
Keys are case-insensitive; `dst`/`destination` mean `target`, `src` means `source`.
The type defaults to `bind`. A bind mount is read-only unless `rw` is given; the others
are writable. Unknown keys, types and values are errors.

Values may hold `$VAR`s, expanded per stage (`cove.image.build.expand`); `parse_mount`
with `deferred=True` accepts an unexpanded spec, leaving numeric fields that hold a
variable unset until the expanded spec is parsed again. `from` must be literal: it
decides the build graph before any stage runs.
"""

from __future__ import annotations

import csv
import re

from cove.image.build.instructions import Mount

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_SHARING = ("shared", "private", "locked")
_BOOL_KEYS = ("readonly", "ro", "rw", "readwrite", "required")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class MountSpecError(ValueError):
    """A malformed `--mount` value (the parser adds the Dockerfile line)."""


def _bool(key: str, value: str | None) -> bool:
    if value is None:
        return True
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise MountSpecError(f"invalid value for {key}: {value!r} (expected true or false)")


def _int(key: str, value: str, base: int = 10) -> int:
    try:
        number = int(value, base)
    except ValueError:
        kind = "an octal" if base == 8 else "a"
        raise MountSpecError(
            f"invalid value for {key}: {value!r} (expected {kind} number)"
        ) from None
    if number < 0:
        raise MountSpecError(f"invalid value for {key}: {value!r} (negative)")
    return number


def parse_size(text: str) -> int:
    """`64m`, `1g`, `512k`, `1048576`: bytes (binary multiples, as Docker's units)."""
    match = _SIZE.match(text)
    if match is None:
        raise MountSpecError(f"invalid size: {text!r}")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def _fields(spec: str) -> list[str]:
    try:
        rows = list(csv.reader([spec], skipinitialspace=False, strict=True))
    except csv.Error as exc:
        raise MountSpecError(f"invalid mount specification {spec!r}: {exc}") from None
    return [field for field in (rows[0] if rows else []) if field != ""]


def parse_mount(
    spec: str, *, deferred: bool = False, expand: Callable[[str], str] | None = None
) -> Mount:
    """The mount `spec` describes. With `deferred`, numeric fields holding a `$` are left
    unset (to be parsed once expanded) instead of being errors; `expand` is applied to
    every value but the type's."""
    fields: list[tuple[str, str | None]] = []
    mount_type = "bind"
    for field in _fields(spec):
        key, sep, value = field.partition("=")
        key = key.strip().lower()
        if not sep:
            if key not in _BOOL_KEYS:
                raise MountSpecError(f"unexpected key {key!r} in {field!r}: expected key=value")
            fields.append((key, None))
        elif key == "type":
            if value not in MOUNT_TYPES:
                raise MountSpecError(f"unsupported mount type {value!r}")
            mount_type = value
        else:
            fields.append((key, expand(value) if expand is not None else value))
    readonly = mount_type == "bind"
    required = False
    target = source = mount_id = env = ""
    from_: str | None = None
    sharing: str | None = None
    mode = uid = gid = size = None
    for key, given in fields:
        if key in _BOOL_KEYS:
            flag = _bool(key, given)
            if key in ("readonly", "ro"):
                readonly = flag
            elif key in ("rw", "readwrite"):
                readonly = not flag
            else:
                required = flag
            continue
        if given is None:
            continue  # not reached: bare keys are boolean keys
        value = given
        if deferred and "$" in value and key in ("mode", "uid", "gid", "size", "sharing"):
            continue
        if key in ("target", "dst", "destination"):
            target = value
        elif key in ("source", "src"):
            source = value
        elif key == "from":
            from_ = value
        elif key == "id":
            mount_id = value
        elif key == "sharing":
            if value not in _SHARING:
                raise MountSpecError(
                    f"unsupported sharing value {value!r} (expected shared, private or locked)"
                )
            sharing = value
        elif key == "mode":
            mode = _int(key, value, 8)
        elif key == "uid":
            uid = _int(key, value)
        elif key == "gid":
            gid = _int(key, value)
        elif key == "size":
            size = parse_size(value)
        elif key == "env":
            env = value
        else:
            raise MountSpecError(f"unexpected key {key!r} in {key}={value}")
    if mount_type in ("bind", "cache", "tmpfs") and not target:
        raise MountSpecError(f"mount type {mount_type} needs a target (target=/path)")
    if from_ is not None and mount_type not in ("bind", "cache"):
        raise MountSpecError(f"mount type {mount_type} does not take from=")
    if sharing is not None and mount_type != "cache":
        raise MountSpecError(f"mount type {mount_type} does not take sharing=")
    if mount_id and mount_type not in ("cache", "secret", "ssh"):
        raise MountSpecError(f"mount type {mount_type} does not take id=")
    if size is not None and mount_type != "tmpfs":
        raise MountSpecError(f"mount type {mount_type} does not take size=")
    return Mount(
        type=mount_type,
        target=target,
        source=source,
        from_=from_,
        readonly=readonly,
        id=mount_id,
        sharing=sharing or "shared",
        mode=mode,
        uid=uid,
        gid=gid,
        size=size,
        required=required,
        env=env,
    )
