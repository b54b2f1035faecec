"""Command-line entry points. Exceptions become exit codes here and nowhere else."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn


def leave(status: int) -> NoReturn:
    """End a command-line process with `status`, skipping the interpreter's teardown:
    tearing down the modules a command loaded costs ~10 ms and frees nothing the kernel
    would not. What was printed is flushed first. While another thread still runs (the
    normal exit waits for it), or when flushing fails (a closed pipe: Python's own exit
    reports it), the normal exit is taken."""
    threading = sys.modules.get("threading")
    if threading is None or threading.active_count() == 1:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            raise SystemExit(status) from None
        os._exit(status)
    raise SystemExit(status)
