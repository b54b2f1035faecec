"""Opening a path inside a container's root filesystem from the host, as the container
would see it, without ever leaving that root: the base of `cove cp`.

The root is a directory fd. A path is resolved as if that directory were `/`: absolute
symlinks start again at the root, and `..` (written, or reached through a link) stops at
the root, as `/..` is `/`. Nothing the container controls (its symlinks, renames while we
look) can make the host open a file outside the root.

With openat2(2) (`cove.sys.openat2`) the kernel does this (RESOLVE_IN_ROOT). Otherwise
`open_in_root` walks the path one component at a time from fds, never following a link by
name: each link is read (readlinkat) and its target spliced into the rest of the path.
Both give the same answers (the unit tests run the two on the same hostile trees).
"""

from __future__ import annotations

import errno
import os
import stat

MAX_SYMLINKS = 40  # as the kernel's path walk
O_PATH_NOFOLLOW = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def split(path: str) -> list[str]:
    """The components of `path` ("." and empty ones dropped; ".." kept)."""
    return [part for part in path.split("/") if part not in ("", ".")]


def open_in_root(
    root_fd: int,
    path: str,
    flags: int = os.O_PATH,
    *,
    follow: bool = True,
    mode: int = 0o644,
    kernel: bool | None = None,
) -> int:
    """An fd for `path` resolved inside the root `root_fd` (see the module docstring).

    `follow=False` leaves a final symlink unfollowed (with O_PATH the fd is the link's
    own). `kernel` picks openat2 (True), the walk (False) or the best available (None).
    Raises OSError as os.open does (ELOOP after too many links)."""
    from cove.sys import openat2

    if kernel is None:
        kernel = openat2.available()
    flags |= os.O_CLOEXEC
    if not follow:
        flags |= os.O_NOFOLLOW
    if kernel:
        relative = "/".join(split(path)) or "."
        resolve = openat2.RESOLVE_IN_ROOT | openat2.RESOLVE_NO_MAGICLINKS
        return openat2.openat2(root_fd, relative, flags, mode if flags & os.O_CREAT else 0,
                               resolve)  # fmt: skip
    return _walk(root_fd, path, flags, follow, mode)


def _walk(root_fd: int, path: str, flags: int, follow: bool, mode: int) -> int:
    pending = split(path)
    stack = [os.open(".", O_PATH_NOFOLLOW | os.O_DIRECTORY, dir_fd=root_fd)]
    links = 0
    try:
        while pending:
            part = pending.pop(0)
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            here = stack[-1]
            last = not pending
            try:
                info = os.stat(part, dir_fd=here, follow_symlinks=False)
            except FileNotFoundError:
                if last and flags & os.O_CREAT:
                    return os.open(part, flags | os.O_NOFOLLOW, mode, dir_fd=here)
                raise
            if last and flags & os.O_CREAT and flags & os.O_EXCL:
                raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), path)
            if stat.S_ISLNK(info.st_mode) and (follow or not last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(part, dir_fd=here)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending[:0] = split(target) or []
                continue
            if last:
                # O_NOFOLLOW: if it was swapped for a link since the stat, refuse (ELOOP)
                # or, with O_PATH, open the link itself: never follow it by name
                return os.open(part, flags | os.O_NOFOLLOW, mode, dir_fd=here)
            if not stat.S_ISDIR(info.st_mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            stack.append(os.open(part, O_PATH_NOFOLLOW | os.O_DIRECTORY, dir_fd=here))
        return os.open(".", flags & ~os.O_NOFOLLOW, dir_fd=stack[-1])
    finally:
        for fd in stack:
            os.close(fd)


def real_path(root_fd: int, path: str, *, follow: bool = True) -> str:
    """`path` with its links resolved inside the root, as an absolute path of the root's
    view ("/a/b"); components that do not exist are kept as written (as realpath -m)."""
    pending = split(path)
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = "/".join([*resolved, part])
        try:
            fd = open_in_root(root_fd, candidate, os.O_PATH, follow=False)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(part)
            continue
        try:
            info = os.fstat(fd)
            target = os.readlink("", dir_fd=fd) if stat.S_ISLNK(info.st_mode) else None
        finally:
            os.close(fd)
        if target is None or (not follow and not pending):
            resolved.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        if target.startswith("/"):
            resolved = []
        pending[:0] = split(target)
    return "/" + "/".join(resolved)


def lstat_in_root(root_fd: int, path: str, *, follow: bool = False) -> os.stat_result | None:
    """The stat of `path` inside the root (of a final link itself unless `follow`); None
    when it does not exist."""
    try:
        fd = open_in_root(root_fd, path, os.O_PATH, follow=follow)
    except FileNotFoundError:
        return None
    try:
        return os.fstat(fd)
    finally:
        os.close(fd)


def reopen(fd: int, flags: int) -> int:
    """A new open file description of what an O_PATH fd names (our own fd: the magic link
    under /proc/self/fd is ours to follow)."""
    return os.open(f"/proc/self/fd/{fd}", flags | os.O_CLOEXEC)
