"""`cove diff`: what a container changed in its root filesystem, from its overlay upper dir,
as Docker lists it: "A /path" added, "C /path" changed, "D /path" deleted.

Docker's rules (its overlay `changes`), walking the upper dir parents first:
- a whiteout (a 0/0 character device) is D;
- anything else is A when the image (the lower layers) has nothing there, else C, except
  a directory whose size, mode and mtime are those of the image's: not listed (it was only
  copied up because something below it changed);
- the parent of an A or D is listed as C if it is not yet.
An opaque directory (removed and made again) that the image has is C, and what the image
had in it and the upper dir has not is D (Docker would list nothing for those).
Paths sort as Docker's walk gives them: by components, parents first.

`classify` is pure over `UpperEntry` records and a `LowerView` (unit-tested without
overlayfs); `scan_upper` and `LayersView` read real directories.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cove.errors import InvalidArgument

ADDED, CHANGED, DELETED = "A", "C", "D"
_OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque")


@dataclass(frozen=True)
class Meta:
    is_dir: bool
    size: int
    mode: int
    mtime_ns: int


@dataclass(frozen=True)
class UpperEntry:
    path: str  # "/a/b"
    meta: Meta
    whiteout: bool = False
    opaque: bool = False
    children: frozenset[str] = field(default_factory=frozenset)  # names, for directories


class LowerView(Protocol):
    def stat(self, path: str) -> Meta | None: ...

    def children(self, path: str) -> Iterable[str]: ...


def _same_time(a: int, b: int) -> bool:
    """Docker's sameFsTime: equal, or the same second with one side lacking nanoseconds."""
    if a == b:
        return True
    return a // 1_000_000_000 == b // 1_000_000_000 and (a % 1_000_000_000 == 0
                                                       or b % 1_000_000_000 == 0)  # fmt: skip


def _placeholder(entry: UpperEntry) -> bool:
    if entry.meta.is_dir:
        return not entry.children and not entry.opaque
    return not entry.whiteout and stat.S_ISREG(entry.meta.mode) and entry.meta.size == 0


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def sort_key(path: str) -> tuple[bytes, ...]:
    return tuple(os.fsencode(part) for part in path.split("/") if part)


def classify(
    upper: Iterable[UpperEntry], lower: LowerView, mount_points: Collection[str] = ()
) -> list[tuple[str, str]]:
    """The changes, (kind, path), sorted as Docker lists them. An empty directory or file
    at one of `mount_points` is the runtime's (a mount's target), not a change: skipped, as
    Docker keeps those in a layer of their own."""
    changes: list[tuple[str, str]] = []
    changed_dirs: set[str] = set()

    def record(kind: str, path: str) -> None:
        if kind in (ADDED, DELETED):
            parent = _parent(path)
            if parent != "/" and parent not in changed_dirs:
                changes.append((CHANGED, parent))
                changed_dirs.add(parent)
        changes.append((kind, path))

    for entry in upper:
        if entry.path in mount_points and _placeholder(entry):
            continue
        if entry.whiteout:
            record(DELETED, entry.path)
            continue
        below = lower.stat(entry.path)
        if below is None:
            kind = ADDED
        elif (entry.meta.is_dir and below.is_dir and not entry.opaque
              and entry.meta.size == below.size and entry.meta.mode == below.mode
              and _same_time(entry.meta.mtime_ns, below.mtime_ns)):  # fmt: skip
            continue
        else:
            kind = CHANGED
        if entry.meta.is_dir:
            changed_dirs.add(entry.path)
        record(kind, entry.path)
        if entry.opaque and below is not None and below.is_dir:
            prefix = entry.path.rstrip("/") + "/"
            for name in sorted(set(lower.children(entry.path)) - entry.children):
                record(DELETED, prefix + name)
    unique = dict.fromkeys(changes)
    return sorted(unique, key=lambda change: sort_key(change[1]))


# --- real directories ------------------------------------------------------------------


def _meta(info: os.stat_result) -> Meta:
    return Meta(stat.S_ISDIR(info.st_mode), info.st_size, info.st_mode, info.st_mtime_ns)


def _is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


def _opaque(path: str) -> bool:
    for name in _OPAQUE_XATTRS:
        try:
            if os.getxattr(path, name, follow_symlinks=False) == b"y":
                return True
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return False


def scan_upper(upper: str) -> Iterator[UpperEntry]:
    """The upper dir's entries, parents first, names in byte order."""

    def walk(directory: str, prefix: str) -> Iterator[UpperEntry]:
        with os.scandir(directory) as listing:
            names = sorted((e.name for e in listing), key=os.fsencode)
        for name in names:
            full = os.path.join(directory, name)
            info = os.lstat(full)
            path = prefix + name
            if _is_whiteout(info):
                yield UpperEntry(path, _meta(info), whiteout=True)
            elif stat.S_ISDIR(info.st_mode):
                children = frozenset(os.listdir(full))
                yield UpperEntry(path, _meta(info), opaque=_opaque(full), children=children)
                yield from walk(full, path + "/")
            else:
                yield UpperEntry(path, _meta(info))

    yield from walk(upper, "/")


class LayersView:
    """The image's files as the lower layers (top first) stack them: whiteouts and opaque
    directories hide what is below."""

    def __init__(self, lowers: Sequence[str]) -> None:
        self.lowers = list(lowers)

    def stat(self, path: str) -> Meta | None:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return None
        for layer in self.lowers:
            hides_below = False
            reaches = True
            for depth in range(1, len(parts)):
                ancestor = os.path.join(layer, *parts[:depth])
                try:
                    info = os.lstat(ancestor)
                except (FileNotFoundError, NotADirectoryError):
                    reaches = False
                    break
                if _is_whiteout(info) or not stat.S_ISDIR(info.st_mode):
                    return None
                if _opaque(ancestor):
                    hides_below = True
            if reaches:
                try:
                    found = os.lstat(os.path.join(layer, *parts))
                except (FileNotFoundError, NotADirectoryError):
                    found = None
                if found is not None:
                    return None if _is_whiteout(found) else _meta(found)
            if hides_below:
                return None
        return None

    def children(self, path: str) -> set[str]:
        parts = [p for p in path.split("/") if p]
        names: set[str] = set()
        for layer in self.lowers:
            try:
                names.update(os.listdir(os.path.join(layer, *parts)))
            except (FileNotFoundError, NotADirectoryError):
                continue
        prefix = path.rstrip("/") + "/"
        return {name for name in names if self.stat(prefix + name) is not None}


def mount_points(bundle: str) -> set[str]:
    """The mount destinations of the container's spec (its bundle's config.json)."""
    import json

    try:
        with open(os.path.join(bundle, "config.json")) as f:
            spec = json.load(f)
    except (OSError, ValueError):
        return set()
    return {os.path.normpath("/" + str(m.get("destination", "")).lstrip("/"))
            for m in spec.get("mounts") or []}  # fmt: skip


def container_changes(root: str, container_id: str, bundle: str = "") -> list[tuple[str, str]]:
    from cove.engine.container_create import snapshot_key
    from cove.image.snapshot import OverlaySnapshotter, choose_snapshotter

    snapshots = choose_snapshotter(root)
    if not isinstance(snapshots, OverlaySnapshotter):
        raise InvalidArgument("diff needs overlay snapshots (this engine root copies layers)")
    mount = snapshots.describe(snapshot_key(container_id))
    points = mount_points(bundle) if bundle else set()
    return classify(scan_upper(mount.upperdir), LayersView(mount.lowerdirs), points)
