"""Helpers shared by the parity tests (tests/compat/test_parity_*.py): run results,
raw requests through docker-py's HTTP session, API errors, and the patterns their
documents are checked with.
"""

from __future__ import annotations

import re
from typing import Any

import docker as docker_sdk  # type: ignore[import-untyped]
import pytest

NONE = ("--network", "none")
HEX64 = re.compile(r"[0-9a-f]{64}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def ok(res: Any) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return str(res.stdout)


def raw(client: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """One request through docker-py's HTTP session (same transport, no model layer):
    (status, JSON body or text)."""
    url = f"{client.api.base_url}/v{client.api.api_version}{path}"
    response = getattr(client.api, method)(url, **kwargs)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


def api_error(call: Any) -> Any:
    with pytest.raises(docker_sdk.errors.APIError) as caught:
        call()
    return caught.value
