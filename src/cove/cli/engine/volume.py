"""cove volume SUBCOMMAND: create, ls, inspect, rm, prune."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context, run_module

SUBCOMMANDS = {
    "create": ("volume_create", "create a volume"),
    "inspect": ("volume_inspect", "show volumes' details (JSON)"),
    "ls": ("volume_ls", "list volumes"),
    "list": ("volume_ls", "list volumes"),
    "prune": ("volume_prune", "remove unused volumes"),
    "rm": ("volume_rm", "remove volumes"),
    "remove": ("volume_rm", "remove volumes"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subcommand", choices=sorted(SUBCOMMANDS))
    parser.add_argument("rest", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace, context: Context) -> int:
    module_name, summary = SUBCOMMANDS[args.subcommand]
    return run_module(module_name, f"cove volume {args.subcommand}", summary, args.rest, context)


def pairs(items: list[str], flag: str) -> dict[str, str]:
    """KEY=VALUE flags (--label, --opt, --filter) as a dict; a bare KEY has the value ""."""
    from cove.cli.engine.parser import UsageError

    result: dict[str, str] = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid value '{item}' for flag {flag}: want KEY=VALUE")
        result[key] = value
    return result


def filters(items: list[str]) -> dict[str, list[str]]:
    """--filter KEY=VALUE (repeatable) as {KEY: [VALUE...]}."""
    from cove.cli.engine.parser import UsageError

    result: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"invalid value '{item}' for flag --filter: want KEY=VALUE")
        result.setdefault(key, []).append(value)
    return result
