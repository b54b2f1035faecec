"""Routes under construction (filled by the issue-8 work)."""

from __future__ import annotations

from cove.api.routing import Routes

routes = Routes()
