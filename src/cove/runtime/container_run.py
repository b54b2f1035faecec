"""`run`: create + start, then (unless --detach) wait for init and delete."""

from __future__ import annotations

import os

from cove.oci.data import Data
from cove.runtime import terminal
from cove.runtime.container_create import CreateOptions, create_container
from cove.runtime.container_delete import destroy
from cove.runtime.container_start import start_container
from cove.runtime.foreground import wait_for
from cove.runtime.store import Store

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from cove.runtime.process.launcher import ConsoleHandler
    from cove.sys import Syscalls


class RunOptions(Data):
    __slots__ = ("create", "detach", "keep")

    def __init__(
        self,
        create: CreateOptions | None = None,
        detach: bool = False,
        keep: bool = False,
    ) -> None:
        self.create = CreateOptions() if create is None else create
        self.detach = detach
        self.keep = keep


def console_handler(console_socket: str, detach: bool, keep: list[int]) -> ConsoleHandler | None:
    """Where the pty master goes: the console socket, or kept for the foreground proxy."""
    if console_socket:
        sock = terminal.connect_console_socket(console_socket)

        def send(master: int) -> None:
            try:
                terminal.send_master(sock, master)
            finally:
                os.close(master)
                sock.close()

        return send
    if detach:
        return None
    return keep.append


def run_container(
    store: Store,
    container_id: str,
    options: RunOptions,
    sys: Syscalls,
    warn: Callable[[str], None] | None = None,
) -> int:
    masters: list[int] = []
    handler = console_handler(options.create.console_socket, options.detach, masters)
    record = create_container(store, container_id, options.create, sys, handler, warn)

    def report(warnings: list[str]) -> None:
        for warning in warnings:
            if warn is not None:
                warn(warning)

    try:
        report(start_container(store, container_id))
    except BaseException:
        report(destroy(store, record))
        raise
    if options.detach:
        return 0
    try:
        return wait_for(record.pid, masters[0] if masters else None)
    finally:
        if not options.keep:
            report(destroy(store, record))
