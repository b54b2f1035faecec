"""cove run [OPTIONS] IMAGE [COMMAND [ARG...]]  (foreground for now: no -d yet)"""

from __future__ import annotations

import argparse
import sys

from cove.cli.engine import Context
from cove.engine.containers import ContainerService
from cove.engine.create_options import CreateOptions
from cove.errors import CoveError

# docker's exit codes for `run`: 125 the engine failed, 126 the command cannot be invoked,
# 127 the command was not found; otherwise the container's own status.
ENGINE_FAILED, CANNOT_INVOKE, NOT_FOUND = 125, 126, 127


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    parser.add_argument("--rm", action="store_true", help="remove the container when it exits")
    parser.add_argument("--name", default="", help="the container's name")
    parser.add_argument("-i", "--interactive", action="store_true", help="keep stdin open")
    parser.add_argument("-e", "--env", action="append", default=[], help="set NAME=value")
    parser.add_argument("-w", "--workdir", default="", help="working directory inside")
    parser.add_argument("-u", "--user", default="", help="user[:group] or uid[:gid]")
    parser.add_argument("--entrypoint", default=None, help="override the image's entrypoint")
    parser.add_argument("--hostname", default="", help="the container's hostname")
    parser.add_argument("--read-only", action="store_true", help="a read-only root filesystem")
    parser.add_argument("--network", default="none", help="none or host (bridges come later)")
    parser.add_argument("-m", "--memory", default=None, help="memory limit (100m, 1g)")
    parser.add_argument("--cpus", default=None, help="number of CPUs (0.5)")
    parser.add_argument("--pids-limit", type=int, default=None, help="process limit")
    parser.add_argument("--cap-add", action="append", default=[], help="add a capability")
    parser.add_argument("--cap-drop", action="append", default=[], help="drop a capability")
    parser.add_argument("--privileged", action="store_true", help="every capability and device")
    parser.add_argument("--security-opt", action="append", default=[],
                        help="seccomp=FILE|unconfined, no-new-privileges")  # fmt: skip
    parser.add_argument("-v", "--volume", action="append", default=[], help="SRC:DST[:ro]")
    parser.add_argument("--tmpfs", action="append", default=[], help="/path[:options]")
    parser.add_argument("--runtime", default="cove", help="cove, runc, crun, or a path")


def _warn(message: str) -> None:
    sys.stderr.write(f"WARNING: {message}\n")


def run(args: argparse.Namespace, context: Context) -> int:
    options = CreateOptions(
        cmd=list(args.command) or None,
        entrypoint=None if args.entrypoint is None else ([args.entrypoint] if args.entrypoint
                                                          else []),
        env=list(args.env), workdir=args.workdir, user=args.user, hostname=args.hostname,
        read_only=args.read_only, tmpfs=list(args.tmpfs), volumes=list(args.volume),
        memory=args.memory, cpus=args.cpus, pids_limit=args.pids_limit,
        cap_add=list(args.cap_add), cap_drop=list(args.cap_drop), privileged=args.privileged,
        security_opt=list(args.security_opt), interactive=args.interactive,
        network=args.network,
    )  # fmt: skip
    try:
        return ContainerService(context.root).run_foreground(
            args.image, options, name=args.name, remove=args.rm, runtime=args.runtime,
            stdin=0 if args.interactive else None,
            warn=_warn,
        )  # fmt: skip
    except CoveError as exc:
        message = str(exc)
        sys.stderr.write(f"cove: {message}\n")
        if "executable file not found" in message or "no such file or directory" in message:
            return NOT_FOUND
        if "permission denied" in message.lower():
            return CANNOT_INVOKE
        return ENGINE_FAILED
