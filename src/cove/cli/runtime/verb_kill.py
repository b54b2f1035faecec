"""cove-runtime kill [--all] ID [SIGNAL]"""

from __future__ import annotations

import signal

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import parse_verb, store
from cove.cli.runtime.flags import Flag
from cove.errors import InvalidArgument
from cove.runtime.container_kill import kill_container
from cove.runtime.signals import parse_signal

FLAGS = [Flag("all", aliases=("a",), help="signal every process in the container")]


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("kill", "[--all] CONTAINER_ID [SIGNAL]", FLAGS, args)
    if parsed is None:
        return 0
    if len(parsed.positional) not in (1, 2):
        raise InvalidArgument("kill: expected the container id and an optional signal")
    container_id = parsed.positional[0]
    signum = parse_signal(parsed.positional[1]) if len(parsed.positional) == 2 else signal.SIGTERM
    kill_container(store(options), container_id, signum, parsed.switch("all"))
    return 0
