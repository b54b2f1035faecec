"""What the verb modules share: the store, the syscall layer, argument checks."""

from __future__ import annotations

import sys

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.flags import Flag, Parsed, parse, usage
from cove.errors import InvalidArgument
from cove.runtime.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from cove.sys import Syscalls

HELP = Flag("help", aliases=("h",), help="show this help")


def store(options: GlobalOptions) -> Store:
    return Store(options.root)


def warner(options: GlobalOptions) -> Callable[[str], None]:
    """Where the runtime's warnings go: stderr and the --log file."""
    from cove.cli.runtime import log

    return lambda message: log(options, "warning", message)


def linux() -> Syscalls:
    from cove.sys.linux import LinuxSyscalls

    return LinuxSyscalls()


def parse_verb(
    verb: str, synopsis: str, flags: list[Flag], args: list[str], stop_at_positional: bool = False
) -> Parsed | None:
    """Parse; None means help was printed and the verb should return 0."""
    parsed = parse(args, [*flags, HELP], stop_at_positional)
    if parsed.switch("help"):
        sys.stdout.write(usage(verb, synopsis, flags))
        return None
    return parsed


def exactly(parsed: Parsed, count: int, verb: str, what: str) -> list[str]:
    if len(parsed.positional) != count:
        raise InvalidArgument(f"{verb}: expected {what}, got {len(parsed.positional)} argument(s)")
    return parsed.positional
