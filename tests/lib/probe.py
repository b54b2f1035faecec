"""Small helpers shared by the runtime tests: parsing probe output, xfail marking."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from .runtimes import Result, Runtime, wait_for

NAMESPACES = ("cgroup", "ipc", "mnt", "net", "pid", "uts", "user")


def last_json(text: str) -> dict[str, Any]:
    """The last line of `text` that parses as a JSON object."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                return data
    raise AssertionError(f"no JSON object in output:\n{text}")


def probe_json(res: Result) -> dict[str, Any]:
    """Check that a container run succeeded and parse the probe's JSON answer."""
    res.check()
    return last_json(res.stdout)


def key_values(text: str, sep: str = "=") -> dict[str, str]:
    """Parse "key=value" lines (as printed by the shell snippets in tests)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if sep in line:
            key, value = line.split(sep, 1)
            out[key.strip()] = value.strip()
    return out


def host_namespaces(names: Iterable[str] = NAMESPACES) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/self/ns/{ns}") for ns in names}


def wait_for_file(path: Path, timeout: float = 10.0) -> bool:
    return wait_for(path.exists, timeout=timeout)


def xfail_on(
    request: pytest.FixtureRequest, runtime: Runtime, names: Iterable[str], reason: str
) -> None:
    """Mark this test as an expected (strict) failure when running against `names`."""
    if runtime.name in set(names):
        request.node.add_marker(pytest.mark.xfail(reason=f"{runtime.name}: {reason}", strict=True))
