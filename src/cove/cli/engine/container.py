"""cove container SUBCOMMAND: the container verbs under one name, as docker's."""

from __future__ import annotations

import argparse

from cove.cli.engine import Context, run_module

SUBCOMMANDS = {
    "attach": ("container_attach", "connect to a running container's stdio"),
    "commit": ("container_commit", "make an image from a container's changes"),
    "cp": ("container_cp", "copy files between a container and the host"),
    "cleanup": ("container_cleanup", "record a container's exit (the monitor runs this)"),
    "create": ("container_create", "create a container"),
    "diff": ("container_diff", "list the files a container added, changed, deleted"),
    "exec": ("container_exec", "run a command in a running container"),
    "export": ("container_export", "a container's filesystem as a tar"),
    "healthcheck": (
        "container_healthcheck",
        "run a container's healthcheck once (the monitor runs this)",
    ),
    "inspect": ("container_inspect", "show containers' details (JSON)"),
    "kill": ("container_kill", "send a signal to containers"),
    "logs": ("container_logs", "show a container's output"),
    "ls": ("container_ps", "list containers"),
    "list": ("container_ps", "list containers"),
    "pause": ("container_pause", "freeze containers"),
    "prune": ("container_prune", "remove every stopped container"),
    "ps": ("container_ps", "list containers"),
    "rename": ("container_rename", "rename a container"),
    "restart": ("container_restart", "restart containers"),
    "rm": ("container_rm", "remove containers"),
    "run": ("container_run", "run a command in a new container"),
    "start": ("container_start", "start containers"),
    "stats": ("container_stats", "show containers' resource usage"),
    "stop": ("container_stop", "stop containers"),
    "top": ("container_top", "show a container's processes"),
    "unpause": ("container_unpause", "thaw containers"),
    "update": ("container_update", "change containers' resource limits"),
    "wait": ("container_wait", "wait for containers to stop, print their exit codes"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subcommand", choices=sorted(SUBCOMMANDS))
    parser.add_argument("rest", nargs=argparse.REMAINDER)


def run(args: argparse.Namespace, context: Context) -> int:
    module_name, summary = SUBCOMMANDS[args.subcommand]
    return run_module(module_name, f"cove container {args.subcommand}", summary, args.rest,
                      context)  # fmt: skip
