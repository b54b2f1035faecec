"""cove-runtime create [--bundle B] [--pid-file F] [--console-socket S] ... ID"""

from __future__ import annotations

from cove.cli.runtime import GlobalOptions
from cove.cli.runtime.common import exactly, linux, parse_verb, store, warner
from cove.cli.runtime.flags import Flag, Parsed
from cove.runtime.container_create import CreateOptions, create_container
from cove.runtime.container_run import console_handler

FLAGS = [
    Flag("bundle", takes_value=True, aliases=("b",), help="the bundle folder (default .)"),
    Flag("pid-file", takes_value=True, help="write init's pid to this file"),
    Flag("console-socket", takes_value=True, help="unix socket to send the pty master to"),
    Flag("no-pivot", help="use chroot and MS_MOVE instead of pivot_root"),
    Flag("no-new-keyring", help="keep the caller's session keyring"),
    Flag("preserve-fds", takes_value=True, help="pass N more fds (from 3) to the process"),
]


def create_options(parsed: Parsed) -> CreateOptions:
    return CreateOptions(
        bundle=parsed.text("bundle", "."),
        pid_file=parsed.text("pid-file"),
        console_socket=parsed.text("console-socket"),
        no_pivot=parsed.switch("no-pivot"),
        no_new_keyring=parsed.switch("no-new-keyring"),
        preserve_fds=parsed.number("preserve-fds"),
    )


def run(options: GlobalOptions, args: list[str]) -> int:
    parsed = parse_verb("create", "[flags] CONTAINER_ID", FLAGS, args)
    if parsed is None:
        return 0
    (container_id,) = exactly(parsed, 1, "create", "the container id")
    create = create_options(parsed)
    handler = console_handler(create.console_socket, detach=True, keep=[])
    create_container(store(options), container_id, create, linux(), handler, warner(options))
    return 0
