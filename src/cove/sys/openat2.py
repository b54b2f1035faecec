"""openat2(2) (Linux 5.6+) through libc's syscall(): open a path with the kernel resolving
it under a directory as if that directory were `/` (RESOLVE_IN_ROOT).

`available()` says whether the running kernel has it (ENOSYS otherwise, or EPERM under a
seccomp filter that does not know it); callers fall back to a component-by-component walk
(`cove.engine.rootfs_path`).
"""

from __future__ import annotations

import errno as errno_module
import functools
import os
import struct

from cove.sys.libc import Long, call, errno, pin

SYS_OPENAT2 = 437  # the same number on every architecture (added after the unification)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


def openat2(dir_fd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    """A new fd for `path` relative to `dir_fd`; raises OSError as os.open does."""
    how = struct.pack("=QQQ", flags | os.O_CLOEXEC, mode, resolve)
    keep, address = pin(how)
    fd = call(
        "syscall", Long(SYS_OPENAT2), Long(dir_fd), os.fsencode(path), Long(address),
        Long(len(how)),
    )  # fmt: skip
    del keep
    if fd < 0:
        number = errno()
        raise OSError(number, os.strerror(number), path)
    return fd


@functools.cache
def available() -> bool:
    """Whether openat2 works here (checked once per process)."""
    try:
        fd = openat2(-100, "/", os.O_PATH | os.O_DIRECTORY, 0, RESOLVE_IN_ROOT)
    except OSError as exc:
        if exc.errno in (errno_module.ENOSYS, errno_module.EPERM, errno_module.EINVAL):
            return False
        raise
    os.close(fd)
    return True
