"""The flock(2) beside a folder of records (`<folder>/.lock`): volumes and networks keep
their JSON records under one each."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cove.errors import CoveError


def lock_folder(folder: Path, shared: bool, error: type[CoveError], what: str) -> int:
    """The locked fd of `folder`'s lock (made with the folder when missing); closing the only
    descriptor releases it. `error` names `what` when it cannot be opened."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise error(f"cannot open the {what} lock in {folder}: {err.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd
