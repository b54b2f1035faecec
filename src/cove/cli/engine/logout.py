"""cove logout [SERVER]: forget the credentials stored for a registry."""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.cli.engine.login import server_name
from cove.image.registry.auth import CredentialStore


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")


def run(args: argparse.Namespace, context: Context) -> int:
    server = server_name(args.server)
    if CredentialStore().remove(server):
        sys.stdout.write(f"Removing login credentials for {server}\n")
    else:
        sys.stdout.write(f"Not logged in to {server}\n")
    return 0
