"""cove create [OPTIONS] IMAGE [COMMAND [ARG...]]: make a container, do not start it."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context, run_image
from cove.cli.engine.container_run import exit_code_for, warn
from cove.cli.engine.create_flags import (
    add_create_arguments,
    kernel_memory_warning,
    options_from,
)
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_create_arguments(parser)


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.containers import ContainerService

    try:
        options, settings = options_from(args)
        for message in kernel_memory_warning(args):
            warn(message)
        service = ContainerService(context.root)
        record = run_image.with_image(args, context, lambda: service.create(
            args.image, options, settings, name=args.name, runtime=args.runtime, warn=warn
        ))  # fmt: skip
        run_image.write_cidfile(args, record.id)
    except CoveError as exc:
        sys.stderr.write(f"cove: {exc}\n")
        return exit_code_for(exc)
    sys.stdout.write(record.id + "\n")
    return 0
