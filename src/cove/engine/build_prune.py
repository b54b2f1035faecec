"""`cove builder prune` (and `POST /build/prune`, and the build cache part of `cove system
prune`): removing the build cache.

What it removes:
- the folders of `RUN --mount=type=cache` that no running step holds (all of them, or
  those last used before `until`; with `keep_storage`, the least recently used ones until
  the rest fits in that many bytes);
- with `all_cache`, also the step cache: every remembered step (made before `until`) is
  forgotten, and the untagged intermediate images those steps made or were built on go
  unless a container uses them. The next build then runs every step again, as after
  `docker builder prune -a`. Tagged images stay.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from cove.engine import build_cache_mounts


@dataclass
class BuildCachePruned:
    deleted: list[str] = field(default_factory=list)  # cache mount names, then image ids
    reclaimed: int = 0


def prune_build_cache(
    root: str,
    *,
    all_cache: bool = False,
    until: float | None = None,
    keep_storage: int = 0,
) -> BuildCachePruned:
    """Remove the build cache as described above; what went and the bytes it held."""
    result = BuildCachePruned()
    build_cache_mounts.sweep_leftovers(root)
    mounts = build_cache_mounts.cache_mounts(root)  # least recently used first
    kept_size = sum(item.size for item in mounts)
    for item in mounts:
        if item.in_use or (until is not None and item.last_used >= until):
            continue
        if keep_storage and kept_size <= keep_storage:
            break
        if build_cache_mounts.remove_cache_mount(root, item.name):
            result.deleted.append(item.name)
            result.reclaimed += item.size
            kept_size -= item.size
    if all_cache:
        _prune_steps(root, until, result)
    return result


def _prune_steps(root: str, until: float | None, result: BuildCachePruned) -> None:
    from cove.engine.build_cache import BuildCache, cache_path

    if not os.path.exists(cache_path(root)):
        return
    with BuildCache(root) as cache:
        step_images = cache.forget_before(until)
    if not step_images or not os.path.isdir(os.path.join(root, "images")):
        return
    from cove.engine.images import ImageService

    removed, freed = ImageService(root).prune(
        select=lambda _store, record: str(record.id) in step_images
    )
    for item in removed:
        result.deleted.extend(item.deleted)
    result.reclaimed += freed
