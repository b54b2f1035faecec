"""`cove`: the Docker-compatible command line.

Commands are modules under this package, imported only when used (as pip's
commands_dict): `cove --help` and short commands stay fast. Each module has
`add_arguments(parser)` and `run(args, context) -> int`. Docker's exit codes: 125 when
cove itself fails or the command line is wrong, 1 for a failed request (no such image...).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.monitor_ahead import LauncherAhead

# command -> (module, one-line help). Aliases map to the same module, as docker's do.
COMMANDS: dict[str, tuple[str, str]] = {
    "attach": ("container_attach", "connect to a running container's stdio"),
    "build": ("build", "build an image from a Dockerfile (Containerfile)"),
    "builder": ("builder", "manage the build cache: prune"),
    "commit": ("container_commit", "make an image from a container's changes"),
    "container": ("container", "manage containers: create, start, stop, ls, rm, prune..."),
    "cp": ("container_cp", "copy files between a container and the host"),
    "create": ("container_create", "create a container"),
    "diff": ("container_diff", "list the files a container added, changed, deleted"),
    "events": ("events", "show engine events as they happen (or since a time)"),
    "exec": ("container_exec", "run a command in a running container"),
    "export": ("container_export", "a container's filesystem as a tar"),
    "images": ("image_ls", "list images"),
    "image": ("image", "manage images: ls, inspect, tag, rm, prune"),
    "import": ("image_import", "make an image from a root filesystem tarball"),
    "info": ("info", "show what the engine and the host have"),
    "inspect": ("inspect", "show details of containers or images (JSON)"),
    "kill": ("container_kill", "send a signal to containers"),
    "load": ("image_load", "load images from a docker-archive or an OCI archive"),
    "login": ("login", "log in to a registry"),
    "logout": ("logout", "log out from a registry"),
    "logs": ("container_logs", "show a container's output"),
    "network": ("network", "manage networks: create, ls, inspect, rm, prune, connect..."),
    "pause": ("container_pause", "freeze containers"),
    "port": ("container_port", "list a container's published ports"),
    "pull": ("image_pull", "download an image from a registry"),
    "push": ("image_push", "upload an image to a registry"),
    "ps": ("container_ps", "list containers"),
    "rename": ("container_rename", "rename a container"),
    "restart": ("container_restart", "restart containers"),
    "rm": ("container_rm", "remove containers"),
    "rmi": ("image_rm", "remove images"),
    "run": ("container_run", "run a command in a new container"),
    "save": ("image_save", "save images to a docker-archive or an OCI archive"),
    "stats": ("container_stats", "show containers' resource usage"),
    "serve": ("serve", "serve the Docker Engine API on a unix socket"),
    "start": ("container_start", "start containers"),
    "stop": ("container_stop", "stop containers"),
    "system": ("system", "engine-wide commands: check [--repair], boot, df, prune"),
    "tag": ("image_tag", "give an image another name"),
    "top": ("container_top", "show a container's processes"),
    "unpause": ("container_unpause", "thaw containers"),
    "update": ("container_update", "change containers' resource limits"),
    "version": ("version", "show cove's version"),
    "volume": ("volume", "manage volumes: create, ls, inspect, rm, prune"),
    "wait": ("container_wait", "wait for containers to stop, print their exit codes"),
}

# Commands that start a container: its launcher is forked as they begin, to load the
# runtime on another core while they load the engine (cove.engine.monitor_ahead).
LAUNCHES_AHEAD = frozenset({"run"})
DEFAULT_ROOT = "/var/lib/cove"
USAGE_ERROR = 125
REQUEST_FAILED = 1


class Context:
    """What every command gets: where the engine keeps its state."""

    def __init__(self, root: str, debug: bool) -> None:
        self.root = root
        self.debug = debug
        # `run`'s launcher, forked before the command loads (cove.engine.monitor_ahead)
        self.launcher: LauncherAhead | None = None

    @property
    def images_dir(self) -> str:
        return os.path.join(self.root, "images")


def main(argv: list[str] | None = None) -> int:
    """The console-script entry point (with `argv`, a call that returns the status)."""
    status = run(sys.argv[1:] if argv is None else argv)
    if argv is None:
        from cove.cli import leave

        leave(status)
    return status


def run(args: list[str]) -> int:
    root = os.environ.get("COVE_ROOT", DEFAULT_ROOT)
    debug = False
    while args and args[0].startswith("-"):
        flag, _, value = args[0].partition("=")
        if flag in ("-h", "--help"):
            sys.stdout.write(_help())
            return 0
        if flag in ("-v", "--version"):
            args = ["version"]
            break
        if flag in ("-D", "--debug"):
            debug, args = True, args[1:]
            continue
        if flag == "--root":
            if not value:
                if len(args) < 2:
                    return _usage("--root needs a folder")
                value, args = args[1], args[1:]
            root, args = value, args[1:]
            continue
        return _usage(f"unknown flag: {flag}")
    if not args:
        sys.stdout.write(_help())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        return _usage(f"'{name}' is not a cove command (see 'cove --help')")
    return dispatch(name, rest, Context(os.path.abspath(root), debug))


def dispatch(name: str, args: list[str], context: Context) -> int:
    module_name, summary = COMMANDS[name]
    if name in LAUNCHES_AHEAD and len(os.sched_getaffinity(0)) > 1:  # (on one core F would
        from cove.engine.monitor_ahead import LauncherAhead  # only take the CLI's turns)

        context.launcher = LauncherAhead.fork()
    try:
        return run_module(module_name, f"cove {name}", summary, args, context)
    finally:
        if context.launcher is not None:
            context.launcher.close()


def run_module(module_name: str, prog: str, summary: str, args: list[str], context: Context) -> int:
    """Import one command module, parse its arguments, run it; errors become exit codes."""
    from cove.cli.engine.parser import CommandParser, UsageError
    from cove.errors import CoveError

    module = __import__(f"cove.cli.engine.{module_name}", fromlist=["run"])
    parser = CommandParser(prog=prog, description=summary)
    module.add_arguments(parser)
    try:
        parsed = parser.parse_args(args)
    except UsageError as exc:
        return _usage(str(exc))
    try:
        status: int = module.run(parsed, context)
        return status
    except UsageError as exc:
        return _usage(str(exc))
    except CoveError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return REQUEST_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line, the traceback only with --debug
        if context.debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"Error: internal error: {type(exc).__name__}: {exc}\n")
        return USAGE_ERROR


def _usage(message: str) -> int:
    sys.stderr.write(f"cove: {message}\n")
    return USAGE_ERROR


def _help() -> str:
    lines = ["usage: cove [--root DIR] [--debug] COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_, summary) in sorted(COMMANDS.items())]
    lines += ["", f"state lives in --root or $COVE_ROOT (default {DEFAULT_ROOT})"]
    return "\n".join(lines) + "\n"
