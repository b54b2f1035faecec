"""cove run [OPTIONS] IMAGE [COMMAND [ARG...]]"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from cove.cli.engine import Context, run_image
from cove.cli.engine.attach_flags import add_attach_arguments, detach_keys
from cove.cli.engine.create_flags import (
    add_create_arguments,
    kernel_memory_warning,
    options_from,
)
from cove.engine.state import ContainerRecord
from cove.errors import CoveError, InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.engine.attach import AttachClient

# docker's exit codes for `run`: 125 the engine failed, 126 the command cannot be invoked,
# 127 the command was not found; otherwise the container's own status.
ENGINE_FAILED, CANNOT_INVOKE, NOT_FOUND = 125, 126, 127


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_create_arguments(parser)
    parser.add_argument("-d", "--detach", action="store_true", help="run in the background")
    parser.add_argument("-a", "--attach", action="append", default=[],
                        help="STDIN, STDOUT or STDERR: attach only these streams")  # fmt: skip
    add_attach_arguments(parser)
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


def _attached(args: argparse.Namespace) -> set[str]:
    """The streams `run` copies: -a's (docker's names, any case), else stdout and stderr,
    and stdin with -i."""
    if not args.attach:
        return {"stdout", "stderr", *(["stdin"] if args.interactive else [])}
    streams = {name.lower() for name in args.attach}
    unknown = streams - {"stdin", "stdout", "stderr"}
    if unknown:
        raise InvalidArgument(f"invalid value '{sorted(unknown)[0]}' for flag --attach: want "
                              "STDIN, STDOUT or STDERR")  # fmt: skip
    if "stdin" in streams and not args.interactive:
        streams.discard("stdin")  # (docker attaches stdin only when it is kept open)
    return streams


def _null() -> int:
    import os

    return os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)


def run(args: argparse.Namespace, context: Context) -> int:
    import os

    from cove.engine.containers import ContainerService

    held, release = hold_signals()
    try:
        if args.attach and args.detach:
            raise InvalidArgument("conflicting options: -a and -d")
        streams = _attached(args)
        options, settings = options_from(args)
        for message in kernel_memory_warning(args):
            warn(message)
        service = ContainerService(context.root)
        before_start = None
        if args.explain:
            from cove.cli.engine.explain_print import print_explanation

            def before_start(created: ContainerRecord) -> None:
                print_explanation(context.root, created)

        def make() -> tuple[ContainerRecord, AttachClient | None]:
            return service.run(
                args.image, options, settings, name=args.name, runtime=args.runtime,
                attach=not args.detach, warn=warn, before_start=before_start,
                console_size=terminal_size() if args.tty else None, launcher=context.launcher,
            )  # fmt: skip

        record, client = run_image.with_image(args, context, make)
        run_image.write_cidfile(args, record.id)
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
    from cove.engine.attach import DETACHED, pump

    proxied = args.sig_proxy and not args.tty
    restore = forward_signals(record.pid) if proxied else None
    for signum in held:  # what came while the container started: it gets them now
        try:
            os.kill(record.pid if proxied else os.getpid(), signum)
        except ProcessLookupError:
            pass
    try:
        code = pump(client, stdin=0 if "stdin" in streams else None, tty=args.tty,
                    stdout=1 if "stdout" in streams else _null(),
                    stderr=2 if "stderr" in streams else _null(),
                    detach_keys=detach_keys(args, args.tty))  # fmt: skip
    finally:
        client.close()
        if restore is not None:
            restore()
    if code == DETACHED:
        return 0  # the container runs on, as after docker's ctrl-p ctrl-q
    service.finish(record.id)
    if code is None:
        sys.stderr.write("cove: lost the connection to the container's monitor\n")
        return ENGINE_FAILED
    return code
