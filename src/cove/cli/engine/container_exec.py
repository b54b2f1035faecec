"""cove exec [-d] [-i] [-t] [-e NAME=VALUE] [-w DIR] [-u USER] CONTAINER COMMAND [ARG...]"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import REQUEST_FAILED, Context
from cove.cli.engine.container_run import ENGINE_FAILED, exit_code_for, terminal_size
from cove.cli.engine.create_flags import read_env_files
from cove.errors import CoveError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    parser.add_argument("-d", "--detach", action="store_true", help="run in the background")
    parser.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    parser.add_argument("-t", "--tty", action="store_true", help="give it a terminal")
    parser.add_argument("-e", "--env", action="append", default=[], help="set NAME=value")
    parser.add_argument("--env-file", action="append", default=[],
                        help="read NAME=value lines from a file")  # fmt: skip
    parser.add_argument("-w", "--workdir", default="", help="working directory inside")
    parser.add_argument("-u", "--user", default="", help="user[:group] or uid[:gid]")
    parser.add_argument("--privileged", action="store_true", help="every capability")


def run(args: argparse.Namespace, context: Context) -> int:
    from cove.engine.container_exec import ExecOptions, exec_in
    from cove.engine.containers import ContainerService

    service = ContainerService(context.root)
    try:
        record = service.get(args.container)
        options = ExecOptions(
            command=list(args.command), detach=args.detach, interactive=args.interactive,
            tty=args.tty, env=[*read_env_files(args.env_file), *args.env],
            workdir=args.workdir, user=args.user,
            privileged=args.privileged, console_size=terminal_size() if args.tty else None,
        )  # fmt: skip
        return exec_in(context.root, record, options)
    except CoveError as exc:
        sys.stderr.write(f"cove: {exc}\n")
        code = exit_code_for(exc)  # 126/127: the command; else docker exec's 1, not 125
        return REQUEST_FAILED if code == ENGINE_FAILED else code
