"""cove unpause CONTAINER...: thaw paused containers."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context, container_pause

add_arguments = container_pause.add_arguments


def run(args: argparse.Namespace, context: Context) -> int:
    return container_pause.run(args, context, unpause=True)
