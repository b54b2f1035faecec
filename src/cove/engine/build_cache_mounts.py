"""The folders behind `RUN --mount=type=cache` (BuildKit's cache mounts), their disk use
and their pruning (`cove builder prune`, `POST /build/prune`, `cove system prune`).

Layout: `<root>/build/cache-mounts/<name>` with `<name>` the first 32 hex digits of the
sha256 of the mount's id (the id defaults to the target), and beside it `<name>.json`:
{"id", "target", "created", "uses"}; the sidecar's mtime is when a step last used it.

Locks: a step holds a shared flock on the folder while its container runs (`sharing=locked`
an exclusive one), so a prune, which takes an exclusive lock without waiting, skips the
folders in use. A prune renames a folder away before removing it; a step that locked a
folder checks that it is still the one at its path, and else makes it anew.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cove.image.build.instructions import Mount

FOLDER = ("build", "cache-mounts")
#: fills a new cache folder (given its path); True if it copied something
Seed = Callable[[str], bool]
_ATTEMPTS = 5  # a prune removing the folder each time we lock it is not worth more
PARTIAL_AGE = 60.0  # seconds


@dataclass(frozen=True)
class CacheMount:
    """One cache mount, as `docker system df -v` lists build cache records."""

    name: str  # the folder's name: the record's ID
    id: str  # the mount's id (its target when none was given)
    target: str
    created: float
    last_used: float
    uses: int  # how many steps mounted it
    size: int
    in_use: bool


def mounts_dir(root: str) -> str:
    return os.path.join(root, *FOLDER)


def _name(mount: Mount) -> str:
    key = mount.id or mount.target
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _make(folder: str, mount: Mount, seed: Seed | None) -> None:
    """Make `folder` with the mount's owner and mode, and what `seed` copies into it
    (atomically: a racing build makes its own and one of the two wins)."""
    os.makedirs(os.path.dirname(folder), mode=0o700, exist_ok=True)
    partial = f"{folder}.{os.urandom(4).hex()}.partial"
    os.mkdir(partial, 0o755)
    try:
        seeded = seed is not None and seed(partial)  # takes the source's owner and mode
        if not seeded or mount.uid is not None or mount.gid is not None:
            os.chown(partial, mount.uid or 0, mount.gid or 0)
        if not seeded or mount.mode is not None:
            os.chmod(partial, 0o755 if mount.mode is None else mount.mode)
        os.rename(partial, folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # (or another build made it meanwhile)
        if not os.path.isdir(folder):
            raise


def _write_sidecar(folder: str, mount: Mount) -> None:
    """Count one more use (two steps at once may count one: it is only shown)."""
    sidecar = folder + ".json"
    document, _ = _read_sidecar(folder)
    uses = document.get("uses")
    document = {"id": document.get("id", mount.id or mount.target),
                "target": document.get("target", mount.target),
                "created": document.get("created", time.time()),
                "uses": (uses if isinstance(uses, int) else 0) + 1}  # fmt: skip
    partial = f"{sidecar}.{os.urandom(4).hex()}.partial"
    with open(partial, "w") as out:
        json.dump(document, out)
    os.replace(partial, sidecar)


@contextlib.contextmanager
def held_cache_mount(root: str, mount: Mount, seed: Seed | None = None) -> Iterator[str]:
    """The folder of `mount`, locked for one step (shared; exclusive for `sharing=locked`)
    so that no prune removes it while the step's container has it mounted. `seed` fills a
    new folder (`from=`: what a stage or an image has at `source`)."""
    folder = os.path.join(mounts_dir(root), _name(mount))
    mode = fcntl.LOCK_EX if mount.sharing == "locked" else fcntl.LOCK_SH
    for _ in range(_ATTEMPTS):
        if not os.path.isdir(folder):
            _make(folder, mount, seed)
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # pruned between the two calls
        try:
            fcntl.flock(fd, mode)
            if _same_file(fd, folder):
                _write_sidecar(folder, mount)
                yield folder
                return
        finally:
            os.close(fd)
    raise OSError(f"cache mount {mount.id or mount.target}: removed by a prune each time")


def _same_file(fd: int, path: str) -> bool:
    try:
        at_path = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def _is_name(entry: str) -> bool:
    return len(entry) == 32 and all(c in "0123456789abcdef" for c in entry)


def _read_sidecar(folder: str) -> tuple[dict[str, object], float]:
    try:
        with open(folder + ".json") as sidecar:
            document = json.load(sidecar)
        used = os.stat(folder + ".json").st_mtime
    except (OSError, ValueError):
        document, used = {}, os.stat(folder).st_mtime
    return (document if isinstance(document, dict) else {}), used


def _entries(root: str) -> list[tuple[str, str]]:
    """(name, path) of what the cache mounts' folder holds."""
    base = mounts_dir(root)
    try:
        return [(entry, os.path.join(base, entry)) for entry in os.listdir(base)]
    except FileNotFoundError:
        return []


def _held_alone(folder: str) -> int | None:
    """An fd holding `folder`'s exclusive lock, or None when a step holds the folder
    (FileNotFoundError when it is gone)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _in_use(folder: str) -> bool:
    try:
        fd = _held_alone(folder)
    except FileNotFoundError:
        return False
    if fd is None:
        return True
    os.close(fd)
    return False


def cache_mounts(root: str) -> list[CacheMount]:
    """Every cache mount with its size, oldest use first."""
    from cove.engine.volume_data import tree_size

    found = []
    for entry, folder in _entries(root):
        if not _is_name(entry) or not os.path.isdir(folder):
            continue
        try:
            document, used = _read_sidecar(folder)
            size = tree_size(folder)
        except OSError:
            continue  # pruned meanwhile
        created, uses = document.get("created"), document.get("uses")
        found.append(CacheMount(
            name=entry, id=str(document.get("id", "")), target=str(document.get("target", "")),
            created=float(created) if isinstance(created, (int, float)) else used,
            last_used=used, uses=uses if isinstance(uses, int) else 0, size=size,
            in_use=_in_use(folder),
        ))  # fmt: skip
    return sorted(found, key=lambda item: item.last_used)


def remove_cache_mount(root: str, name: str) -> bool:
    """Remove one cache mount unless a step holds it; True if it went."""
    base = mounts_dir(root)
    folder = os.path.join(base, name)
    try:
        fd = _held_alone(folder)
    except FileNotFoundError:
        return False
    if fd is None:
        return False
    try:
        doomed = os.path.join(base, f".{name}.{os.urandom(4).hex()}.pruning")
        os.rename(folder, doomed)  # a step that locks it next sees it moved
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(folder + ".json")
    shutil.rmtree(doomed, ignore_errors=True)
    return True


def leftovers(root: str) -> list[str]:
    """What a prune or a build killed midway left: folders renamed for removal, partial
    folders and sidecars (a partial one only once it is old: a build may be making it),
    and sidecars without their folder."""
    found = []
    for entry, path in _entries(root):
        if entry.endswith(".partial") and _younger_than(path, PARTIAL_AGE):
            continue
        if entry.endswith((".pruning", ".partial")) or (
            entry.endswith(".json") and not os.path.isdir(path[:-5])
        ):
            found.append(path)
    return sorted(found)


def remove_leftover(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def sweep_leftovers(root: str) -> None:
    for path in leftovers(root):
        remove_leftover(path)


def _younger_than(path: str, seconds: float) -> bool:
    try:
        return time.time() - os.lstat(path).st_mtime < seconds
    except FileNotFoundError:
        return True
