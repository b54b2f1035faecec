"""`cove-runtime`: an OCI runtime with runc's command line.

Global flags (--root, --log, --log-format, --debug, --systemd-cgroup, --rootless) are
accepted before the verb, as runc documents, and after it, as callers sometimes pass
them. Each verb lives in its own module, imported only when used.
"""

from __future__ import annotations

import os
import sys

from cove.cli import leave
from cove.errors import CoveError, InvalidArgument
from cove.oci.data import Data

VERBS = {
    "create": "create a container and leave its process waiting for start",
    "delete": "delete a container and everything it holds",
    "events": "print a container's resource figures and OOM events",
    "exec": "run a process inside a running container",
    "features": "print what this runtime supports (JSON)",
    "kill": "send a signal to a container's init (or all its processes)",
    "list": "list the containers under the root",
    "pause": "freeze every process of a container",
    "ps": "list the processes of a container",
    "resume": "thaw a paused container",
    "run": "create and start a container, wait for it, delete it",
    "spec": "write a default config.json",
    "start": "start a created container",
    "state": "print the state of a container",
    "update": "change the resource limits of a container",
}

_GLOBAL_VALUE_FLAGS = ("root", "log", "log-format", "criu", "rootless")
_GLOBAL_SWITCHES = ("debug", "systemd-cgroup")


class GlobalOptions(Data):
    __slots__ = ("debug", "log", "log_format", "rest", "root", "rootless", "systemd_cgroup")

    def __init__(
        self,
        root: str = "/run/cove-runtime",
        log: str = "",
        log_format: str = "text",
        debug: bool = False,
        systemd_cgroup: bool = False,
        rootless: str = "auto",
        rest: list[str] | None = None,
    ) -> None:
        self.root = root
        self.log = log
        self.log_format = log_format
        self.debug = debug
        self.systemd_cgroup = systemd_cgroup
        self.rootless = rootless
        self.rest = [] if rest is None else rest


def main(argv: list[str] | None = None) -> int:
    """The console-script entry point: exits without the interpreter's teardown."""
    status = run(sys.argv[1:] if argv is None else argv)
    if argv is not None:
        return status
    leave(status)


def run(args: list[str]) -> int:
    options = GlobalOptions(root=os.environ.get("COVE_RUNTIME_ROOT") or default_root())
    try:
        verb, verb_args = _split_globals(args, options)
        if verb in ("", "help", "--help", "-h"):
            sys.stdout.write(_help())
            return 0
        if verb in ("--version", "-v", "version"):
            from cove import __version__
            from cove.oci.default_spec import SPEC_VERSION

            sys.stdout.write(f"cove-runtime version {__version__}\nspec: {SPEC_VERSION}\n")
            return 0
        if verb not in VERBS:
            raise InvalidArgument(f"unknown command {verb!r} (see cove-runtime --help)")
        prewarm_pid = 0
        if verb in ("create", "run", "exec"):
            # Before importing the verb: see cove.runtime.cgroups.prewarm.
            from cove.runtime.cgroups.prewarm import start_prewarm

            prewarm_pid = start_prewarm()
        if options.systemd_cgroup:
            log(
                options,
                "warning",
                "--systemd-cgroup: the systemd cgroup driver is not "
                "supported; cgroups are managed through cgroupfs",
            )
        # __import__ rather than importlib: importlib pulls in `warnings` on the hot path.
        name = f"cove.cli.runtime.verb_{verb}"
        __import__(name)
        module = sys.modules[name]
        try:
            status: int = module.run(options, verb_args)
        finally:
            if prewarm_pid:
                from cove.runtime.cgroups.prewarm import reap

                reap(prewarm_pid)
        return status
    except CoveError as exc:
        log(options, "error", str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so in one line; the traceback only with --debug
        if options.debug:
            import traceback

            traceback.print_exc()
        log(options, "error", f"internal error: {type(exc).__name__}: {exc}")
        return 1


def default_root() -> str:
    """/run/cove-runtime for root; for other users their runtime dir, as runc does."""
    if os.geteuid() == 0:
        return "/run/cove-runtime"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    if os.path.isdir(runtime_dir):
        return os.path.join(runtime_dir, "cove-runtime")
    return f"/tmp/cove-runtime-{os.geteuid()}"


def _split_globals(args: list[str], options: GlobalOptions) -> tuple[str, list[str]]:
    verb = ""
    rest: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        name, has_value, value = arg.lstrip("-").partition("=")
        is_flag = arg.startswith("-") and arg != "-"
        if verb and (arg == "--" or (verb == "exec" and not is_flag and rest_has_id(rest))):
            rest.extend(args[index - 1 :])
            break
        if is_flag and name in _GLOBAL_SWITCHES:
            setattr(options, name.replace("-", "_"), not has_value or value == "true")
        elif (
            is_flag and name in _GLOBAL_VALUE_FLAGS and not (verb == "spec" and name == "rootless")
        ):
            if not has_value:
                if index >= len(args):
                    raise InvalidArgument(f"flag {arg!r} needs a value")
                value = args[index]
                index += 1
            setattr(options, name.replace("-", "_"), value)
        elif not verb and not is_flag:
            verb = arg
        elif not verb and arg in ("--help", "-h", "--version", "-v"):
            verb = arg
        elif not verb:
            raise InvalidArgument(f"unknown global flag {arg!r}")
        else:
            rest.append(arg)
    if options.log_format not in ("text", "json"):
        raise InvalidArgument(f"--log-format: expected text or json, got {options.log_format!r}")
    return verb, rest


def rest_has_id(rest: list[str]) -> bool:
    """For exec: once the container id is seen, the remaining words are the command."""
    from cove.cli.runtime.verb_exec import VALUE_FLAGS

    skip = False
    for arg in rest:
        if skip:
            skip = False
            continue
        if arg.startswith("-"):
            skip = arg.lstrip("-") in VALUE_FLAGS
            continue
        return True
    return False


def log(options: GlobalOptions, level: str, message: str) -> None:
    """Errors to stderr, and to --log in runc's text or JSON form (containerd reads it)."""
    sys.stderr.write(
        f"cove-runtime: {message}\n" if level == "error" else f"cove-runtime: {level}: {message}\n"
    )
    if not options.log:
        return
    import json
    import time

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if options.log_format == "json":
        line = json.dumps({"level": level, "msg": message, "time": stamp})
    else:
        line = f'time="{stamp}" level={level} msg={json.dumps(message)}'
    try:
        with open(options.log, "a") as log_file:
            log_file.write(line + "\n")
    except OSError as exc:
        sys.stderr.write(f"cove-runtime: cannot write log {options.log!r}: {exc.strerror}\n")


def _help() -> str:
    lines = ["usage: cove-runtime [global flags] COMMAND [flags] [arguments]", "", "commands:"]
    lines += [f"  {verb:<8} {text}" for verb, text in sorted(VERBS.items())]
    lines += [
        "",
        "global flags:",
        "  --root DIR            state directory (default /run/cove-runtime)",
        "  --log FILE            also write errors to FILE",
        "  --log-format FORMAT   text or json",
        "  --debug               log debug messages",
        "  --systemd-cgroup      accepted; cgroups are managed through cgroupfs",
        "",
        "run 'cove-runtime COMMAND --help' for a command's flags",
    ]
    return "\n".join(lines) + "\n"
