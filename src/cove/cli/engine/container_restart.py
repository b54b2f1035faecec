"""cove restart [-t SECONDS] CONTAINER...: stop, then start again (same id)."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context, container_stop

add_arguments = container_stop.add_arguments


def run(args: argparse.Namespace, context: Context) -> int:
    return container_stop.run(args, context, restart=True)
