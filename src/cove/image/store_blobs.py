"""Files of the image store (`cove.image.store`): temp files locked by their writer, so the
debris of a writer killed with -9 can be told from a live write, and durable writes (fsync
of the file, then of its directory after the rename).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from cove.errors import ImageStoreError
from cove.image.digest import CHUNK

_PARTIAL_RE = re.compile(r"(?:blob|file)-(\d+)-[0-9a-f]+\.partial")


@contextlib.contextmanager
def _partial_file(tmp_dir: Path, kind: str) -> Iterator[tuple[BinaryIO, Path]]:
    """A new temp file in `tmp_dir`, locked by its writer (us), removed unless the body
    renamed it away."""
    path = tmp_dir / f"{kind}-{os.getpid()}-{secrets.token_hex(8)}.partial"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except OSError as err:
        raise ImageStoreError(f"cannot create a temp file in {tmp_dir}: {_why(err)}") from None
    fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if we are killed
    out = os.fdopen(fd, "wb")
    try:
        yield out, path
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        raise
    finally:
        out.close()


def _cleanup_partial(tmp_dir: Path) -> list[Path]:
    """Removes the temp files in `tmp_dir` whose writer died; returns them."""
    removed: list[Path] = []
    try:
        entries = list(tmp_dir.iterdir())
    except FileNotFoundError:
        return removed
    for path in entries:
        match = _PARTIAL_RE.fullmatch(path.name)
        if match is None:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # renamed into place or cleaned up meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            if _pid_alive(int(match.group(1))):
                continue  # just created and not locked yet, or the pid was reused
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
        finally:
            os.close(fd)
    return removed


def _chunks(data: bytes | BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    read = getattr(data, "read", None)
    if read is not None:
        while chunk := read(CHUNK):
            yield chunk
        return
    yield from data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the command name, which is in parentheses and may contain spaces.
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] != "Z"


def _why(err: OSError) -> str:
    return err.strerror or errno.errorcode.get(err.errno or 0, str(err))
