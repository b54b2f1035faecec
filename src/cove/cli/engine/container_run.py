"""cove run [OPTIONS] IMAGE [COMMAND [ARG...]]"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from cove.cli.engine import Context
from cove.cli.engine.create_flags import add_create_arguments, options_from
from cove.engine.state import ContainerRecord
from cove.errors import CoveError

# docker's exit codes for `run`: 125 the engine failed, 126 the command cannot be invoked,
# 127 the command was not found; otherwise the container's own status.
ENGINE_FAILED, CANNOT_INVOKE, NOT_FOUND = 125, 126, 127


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_create_arguments(parser)
    parser.add_argument("-d", "--detach", action="store_true", help="run in the background")
    parser.add_argument("--explain", action="store_true",
                        help="print each isolation step, then run the container")  # fmt: skip


def warn(message: str) -> None:
    sys.stderr.write(f"WARNING: {message}\n")


def exit_code_for(exc: CoveError) -> int:
    message = str(exc).lower()  # crun writes "No such file or directory"
    if "executable file not found" in message or "no such file or directory" in message:
        return NOT_FOUND
    if "permission denied" in message:
        return CANNOT_INVOKE
    return ENGINE_FAILED


def terminal_size() -> tuple[int, int] | None:
    """(rows, columns) of the terminal on stdin or stdout; None without one."""
    import os

    for fd in (0, 1):
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        if size.lines and size.columns:
            return size.lines, size.columns
    return None


def forward_signals(pid: int) -> Callable[[], None]:
    """docker run's --sig-proxy: Ctrl-C and friends go to the container, not to cove.
    Returns what puts the previous handlers back."""
    import os

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    return _set_handlers(forward)


def hold_signals() -> tuple[list[int], Callable[[], None]]:
    """While the container is made and started, the signals `forward_signals` forwards are
    held (a list that fills up) instead of ending cove half-way, which would leave a created
    container, or one recorded running whose process never starts; the same signal twice
    acts at once, as before (a stuck start can still be interrupted). Returns the list and
    what puts the previous handlers back."""
    import os
    import signal

    held: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if signum not in held:
            held.append(signum)
            return
        restore()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        os.kill(os.getpid(), signum)

    restore = _set_handlers(hold)
    return held, restore


def _set_handlers(handler: Callable[[int, object], None]) -> Callable[[], None]:
    import signal

    forwarded = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                 signal.SIGUSR2)  # fmt: skip
    previous = {signum: signal.signal(signum, handler) for signum in forwarded}

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore


def run(args: argparse.Namespace, context: Context) -> int:
    import os

    from cove.engine.containers import ContainerService

    held, release = hold_signals()
    try:
        options, settings = options_from(args)
        service = ContainerService(context.root)
        before_start = None
        if args.explain:
            from cove.cli.engine.explain_print import print_explanation

            def before_start(created: ContainerRecord) -> None:
                print_explanation(context.root, created)

        record, client = service.run(
            args.image, options, settings, name=args.name, runtime=args.runtime,
            attach=not args.detach, warn=warn, before_start=before_start,
            console_size=terminal_size() if args.tty else None, launcher=context.launcher,
        )  # fmt: skip
    except CoveError as exc:
        sys.stderr.write(f"cove: {exc}\n")
        return exit_code_for(exc)
    finally:
        release()
    if client is None:
        sys.stdout.write(record.id + "\n")
        sys.stdout.flush()
        for signum in held:  # the container runs: now cove ends as it was asked to
            os.kill(os.getpid(), signum)
        return 0
    from cove.engine.attach import pump

    restore = None if args.tty else forward_signals(record.pid)
    for signum in held:  # what came while the container started: it gets them now
        try:
            os.kill(os.getpid() if args.tty else record.pid, signum)
        except ProcessLookupError:
            pass
    try:
        code = pump(client, stdin=0 if args.interactive else None, tty=args.tty)
    finally:
        client.close()
        if restore is not None:
            restore()
    service.finish(record.id)
    if code is None:
        sys.stderr.write("cove: lost the connection to the container's monitor\n")
        return ENGINE_FAILED
    return code
