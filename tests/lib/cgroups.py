"""Cgroup helpers shared by the kernel-level cgroup tests."""

from __future__ import annotations

import errno
import os
import time


def remove_cgroup_dir(path: str, timeout: float = 5.0) -> None:
    """rmdir a scratch cgroup; a task that just died may still be leaving it (EBUSY)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
