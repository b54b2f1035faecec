"""cove create [OPTIONS] IMAGE [COMMAND [ARG...]]: make a container, do not start it."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.container_run import exit_code_for, warn
from cove.cli.engine.create_flags import add_create_arguments, options_from
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_create_arguments(parser)


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService

    try:
        options, settings = options_from(args)
        record = ContainerService(context.root).create(
            args.image, options, settings, name=args.name, runtime=args.runtime, warn=warn
        )
    except CoveError as exc:
        sys.stderr.write(f"cove: {exc}\n")
        return exit_code_for(exc)
    sys.stdout.write(record.id + "\n")
    return 0
