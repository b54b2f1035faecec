"""`start`: release a created container's init by opening its exec FIFO, then run the
poststart hooks."""

from __future__ import annotations

import os
import select

from cove.errors import InvalidState, ProcessSetupError
from cove.oci.state import CREATED, RUNNING
from cove.runtime.proc import is_alive
from cove.runtime.status import state_of, status_of
from cove.runtime.store import ContainerRecord, Store


def start_container(store: Store, container_id: str) -> list[str]:
    """Start the container; returns the warnings of failing poststart hooks."""
    record = store.load(container_id)
    status = status_of(store, record)
    if status != CREATED:
        raise InvalidState(f"cannot start container {container_id!r}: it is {status}")
    fifo_path = store.fifo_path(container_id)
    fifo = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        verdict = _read_verdict(fifo, record)
    finally:
        os.close(fifo)
        os.unlink(fifo_path)
    if verdict:
        # init ran the startContainer hooks and one failed; init has exited.
        raise ProcessSetupError(f"cannot start container {container_id!r}: {verdict}")
    hooks = record.hooks.get("poststart")
    if not hooks:
        return []
    from cove.oci.runtime_spec import parse_hook_list
    from cove.runtime.hooks import run_hooks

    state = state_of(store, record).replace(status=RUNNING)
    return run_hooks("poststart", parse_hook_list(hooks, "poststart"), state, record.bundle)


def _read_verdict(fifo: int, record: ContainerRecord) -> str:
    """'' once init is released; otherwise why it could not go on."""
    message = b""
    while True:
        readable, _, _ = select.select([fifo], [], [], 0.1)
        if readable:
            data = os.read(fifo, 4096)
            if not data:
                if message:
                    return message[1:].decode(errors="replace")
                return "init exited"
            message += data
            if message[:1] == b"0":
                return ""
            continue  # b"1" and the reason: read until init closes its end
        if not message and not is_alive(record.pid, record.pid_start):
            return "init exited"
