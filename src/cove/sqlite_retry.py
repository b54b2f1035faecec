"""Retrying an SQLite statement while another process holds the database's lock.

`busy_timeout` does not cover every case (switching to WAL mode, a `BEGIN IMMEDIATE`
that meets a writer in the middle of a checkpoint): those fail at once with "database is
locked". The stores that share an SQLite file between processes (the engine's container
state, the image index, the network leases) retry them here. A leaf module: stdlib only,
so `cove.image` and `cove.engine` may both import it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")


def retry_locked(action: Callable[[], _T], timeout: float) -> _T:
    """`action()`, tried again every 50 ms while it fails because the database is locked,
    for up to `timeout` seconds; other errors, and the last one, propagate."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
