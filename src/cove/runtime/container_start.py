"""`start`: release a created container's init by opening its exec FIFO."""

from __future__ import annotations

import os
import select

from cove.errors import InvalidState
from cove.oci.state import CREATED
from cove.runtime.proc import is_alive
from cove.runtime.status import status_of
from cove.runtime.store import ContainerRecord, Store


def start_container(store: Store, container_id: str) -> ContainerRecord:
    record = store.load(container_id)
    status = status_of(store, record)
    if status != CREATED:
        raise InvalidState(f"cannot start container {container_id!r}: it is {status}")
    fifo_path = store.fifo_path(container_id)
    fifo = os.open(fifo_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        while True:
            readable, _, _ = select.select([fifo], [], [], 0.1)
            if readable:
                if os.read(fifo, 1):
                    break
                raise InvalidState(f"cannot start container {container_id!r}: init exited")
            if not is_alive(record.pid, record.pid_start):
                raise InvalidState(f"cannot start container {container_id!r}: init exited")
    finally:
        os.close(fifo)
    os.unlink(fifo_path)
    return record
