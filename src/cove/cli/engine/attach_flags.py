"""The flags `cove run` and `cove attach` share about the attached terminal:
`--detach-keys` (default ctrl-p,ctrl-q: with a terminal, they leave the container running)
and `--sig-proxy` (default true: signals to cove go to the container)."""

from __future__ import annotations

import argparse

from cove.cli.engine.parser import parse_bool


def add_attach_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detach-keys", default="",
                        help="the keys that detach (default ctrl-p,ctrl-q)")  # fmt: skip
    parser.add_argument("--sig-proxy", type=parse_bool, nargs="?", const=True, default=True,
                        metavar="BOOL", help="signals to cove go to the container")  # fmt: skip


def detach_keys(args: argparse.Namespace, tty: bool) -> bytes:
    """The detach sequence (none without a terminal, as docker's)."""
    from cove.engine.detach_keys import DEFAULT_DETACH_KEYS, parse_detach_keys

    keys = parse_detach_keys(args.detach_keys or DEFAULT_DETACH_KEYS)
    return keys if tty else b""
