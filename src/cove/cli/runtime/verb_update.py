"""cove-runtime update [--memory ...] [--cpu-quota ...] [--pids-limit ...] [-r FILE] ID"""

from __future__ import annotations

import json
import sys

from cove.cli.runtime import GlobalOptions, log
from cove.cli.runtime.common import exactly, parse_verb, store
from cove.cli.runtime.flags import Flag, Parsed
from cove.errors import InvalidArgument, InvalidSpec
from cove.oci.resources import check_known, parse_resources
from cove.runtime.container_update import update_container

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# flag -> (section, OCI field, kind): how runc's update flags map onto linux.resources.
_FIELDS = {
    "memory": ("memory", "limit", "bytes"),
    "memory-reservation": ("memory", "reservation", "bytes"),
    "memory-swap": ("memory", "swap", "bytes"),
    "kernel-memory": ("memory", "kernel", "bytes"),
    "kernel-memory-tcp": ("memory", "kernelTCP", "bytes"),
    "cpu-shares": ("cpu", "shares", "int"),
    "cpu-quota": ("cpu", "quota", "int"),
    "cpu-period": ("cpu", "period", "int"),
    "cpu-rt-period": ("cpu", "realtimePeriod", "int"),
    "cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"),
    "cpuset-cpus": ("cpu", "cpus", "str"),
    "cpuset-mems": ("cpu", "mems", "str"),
    "pids-limit": ("pids", "limit", "int"),
    "blkio-weight": ("blockIO", "weight", "int"),
}

FLAGS = [
    Flag("resources", takes_value=True, aliases=("r",),
         help="a linux.resources JSON file, or - for stdin"),
    *(Flag(name, takes_value=True, help=f"{section}.{field}")
      for name, (section, field, _) in _FIELDS.items()),
]  # fmt: skip

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_bytes(flag: str, text: str) -> int:
    """ "-1", "1048576", "512k", "100m", "1g" (as runc's and docker's flags accept)."""
    lowered = text.strip().lower().removesuffix("b") if text.strip() != "-1" else "-1"
    unit = lowered[-1:] if lowered[-1:].isalpha() else ""
    number = lowered[: len(lowered) - len(unit)]
    try:
        value = float(number) if "." in number else int(number)
    except ValueError:
        raise InvalidArgument(f"--{flag}: expected bytes like 100m or 1g, got {text!r}") from None
    if unit not in _UNITS:
        raise InvalidArgument(f"--{flag}: unknown unit {unit!r} in {text!r}")
    return -1 if value == -1 else int(value * _UNITS[unit])


def resources_from_flags(parsed: Parsed) -> dict[str, Any]:
    document: dict[str, Any] = {}
    raw = parsed.text("resources")
    if raw:
        try:
            text = sys.stdin.read() if raw == "-" else open(raw).read()
            loaded = json.loads(text)
        except OSError as exc:
            raise InvalidArgument(f"--resources: cannot read {raw}: {exc.strerror}") from None
        except ValueError as exc:
            raise InvalidSpec(f"--resources: malformed JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise InvalidSpec("--resources: expected a JSON object")
        document = loaded
    for name, (section, field, kind) in _FIELDS.items():
        text = parsed.text(name)
        if not text:
            continue
        value: object
        if kind == "bytes":
            value = parse_bytes(name, text)
        elif kind == "int":
            value = parsed.number(name)
        else:
            value = text
        document.setdefault(section, {})[field] = value
    return document


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("update", "[flags] CONTAINER_ID", FLAGS, args)
    if parsed is None:
        return 0
    (container_id,) = exactly(parsed, 1, "update", "the container id")
    document = resources_from_flags(parsed)
    if not document:
        raise InvalidArgument("update: give at least one limit to change (see --help)")
    check_known(document, "resources")
    resources = parse_resources(document, "resources")
    for warning in update_container(store(options), container_id, resources):
        log(options, "warning", warning)
    return 0
