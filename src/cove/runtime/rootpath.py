"""Resolve a container path inside the rootfs, as if the rootfs were `/`.

Symlinks are followed but resolved relative to the rootfs: an absolute link means the
container's own root, as it will once the container runs. A `..` that would climb above
the root, written in the path or reached through a link, is an escape attempt and an
error, so a hostile image or config cannot make the runtime mount or create anything
outside the rootfs.
"""

from __future__ import annotations

import os
import stat

from cove.errors import PathEscapesRoot

_MAX_SYMLINKS = 255


def resolve_in_root(root: str, path: str) -> str:
    """The host path of `path` seen from inside `root`; missing components are kept."""
    pending = [part for part in path.split("/") if part]
    pending.reverse()
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if not resolved:
                raise PathEscapesRoot(f"{path!r} leads outside the container's root")
            resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            mode = os.lstat(candidate).st_mode
        except FileNotFoundError:
            resolved.append(part)
            continue
        except NotADirectoryError:
            raise PathEscapesRoot(
                f"{path!r}: {os.path.join('/', *resolved)!r} is not a directory"
            ) from None
        if not stat.S_ISLNK(mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise PathEscapesRoot(f"{path!r}: too many levels of symbolic links")
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed([p for p in target.split("/") if p]))
    return os.path.join(root, *resolved)


def make_parents(root: str, host_path: str) -> None:
    """mkdir -p for a path already resolved by `resolve_in_root` (so inside `root`)."""
    host_path = os.path.normpath(host_path)
    if not (host_path == root or host_path.startswith(root.rstrip("/") + "/")):
        raise PathEscapesRoot(f"{host_path!r} is outside the container root {root!r}")
    os.makedirs(host_path, mode=0o755, exist_ok=True)


def ensure_mountpoint(root: str, host_path: str, is_file: bool) -> None:
    """Create the directory or empty file a mount needs, inside `root`."""
    if is_file:
        make_parents(root, os.path.dirname(host_path))
        if not os.path.lexists(host_path):
            os.close(os.open(host_path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o644))
    else:
        make_parents(root, host_path)
