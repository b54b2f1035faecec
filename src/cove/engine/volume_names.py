"""The rule for volume names, as Docker's local driver has it (a leaf module: specgen
checks names without importing the volume service)."""

from __future__ import annotations

import re

from cove.errors import InvalidArgument

VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def valid_volume_name(name: str) -> bool:
    return VOLUME_NAME.fullmatch(name) is not None


def check_volume_name(name: str) -> str:
    """`name`, or `InvalidArgument` with Docker's explanation."""
    if not valid_volume_name(name):
        raise InvalidArgument(
            f'invalid volume name "{name}": it includes invalid characters for a local volume'
            ' name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed (two characters at least);'
            " if you intended to pass a host directory, use an absolute path"
        )
    return name
