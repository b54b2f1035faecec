"""cove.engine.build_cache_mounts and build_prune without a build: folders, locks, pruning."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cove.engine import build_cache_mounts as mounts
from cove.engine.build_prune import prune_build_cache
from cove.image.build.instructions import Mount


def cache(target: str, **kw: object) -> Mount:
    return Mount(type="cache", target=target, **kw)  # type: ignore[arg-type]


def fill(folder: str, size: int) -> None:
    Path(folder, "data").write_bytes(b"x" * size)


def test_a_held_folder_is_made_with_its_mode_and_listed_in_use(tmp_path: Path) -> None:
    root = str(tmp_path)
    with mounts.held_cache_mount(root, cache("/c", id="app", mode=0o700, uid=5, gid=6)) as folder:
        info = os.stat(folder)
        assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o700, 5, 6)
        fill(folder, 5000)
        (listed,) = mounts.cache_mounts(root)
        assert (listed.id, listed.target, listed.in_use, listed.uses) == ("app", "/c", True, 1)
        assert listed.size >= 5000
        assert not mounts.remove_cache_mount(root, listed.name)  # held: kept
    (listed,) = mounts.cache_mounts(root)
    assert not listed.in_use
    assert mounts.remove_cache_mount(root, listed.name)
    assert os.listdir(mounts.mounts_dir(root)) == []  # folder and sidecar gone


def test_the_id_names_the_folder_and_the_target_is_the_default_id(tmp_path: Path) -> None:
    root = str(tmp_path)
    with mounts.held_cache_mount(root, cache("/a", id="shared")) as one:
        pass
    with mounts.held_cache_mount(root, cache("/b", id="shared")) as two:
        pass
    with mounts.held_cache_mount(root, cache("/a")) as three:
        pass
    assert one == two != three
    uses = {m.name: m.uses for m in mounts.cache_mounts(root)}
    assert uses == {os.path.basename(one): 2, os.path.basename(three): 1}


def test_locked_sharing_holds_the_folder_alone(tmp_path: Path) -> None:
    import fcntl

    root = str(tmp_path)
    with mounts.held_cache_mount(root, cache("/c", sharing="locked")) as folder:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    with mounts.held_cache_mount(root, cache("/c")) as folder:  # shared: others may share
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_a_folder_pruned_while_a_step_waits_for_its_lock_is_made_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(tmp_path)
    with mounts.held_cache_mount(root, cache("/c")) as folder:
        fill(folder, 10)
    real_flock = mounts.fcntl.flock
    pruned: list[bool] = []

    def flock_after_a_prune(fd: int, operation: int) -> None:
        if not pruned:  # a prune wins the race once, between the open and the lock
            pruned.append(False)
            pruned[0] = mounts.remove_cache_mount(root, os.path.basename(folder))
        real_flock(fd, operation)

    monkeypatch.setattr(mounts.fcntl, "flock", flock_after_a_prune)
    with mounts.held_cache_mount(root, cache("/c")) as again:
        assert pruned == [True]
        assert again == folder and os.listdir(again) == []  # a new, empty folder


def test_prune_keeps_storage_for_the_most_recently_used(tmp_path: Path) -> None:
    root = str(tmp_path)
    names = []
    for index, target in enumerate(("/old", "/mid", "/new")):
        with mounts.held_cache_mount(root, cache(target)) as folder:
            fill(folder, 10_000)
        past = time.time() - 1000 + index * 100
        os.utime(folder + ".json", (past, past))
        names.append(os.path.basename(folder))
    pruned = prune_build_cache(root, keep_storage=25_000)
    assert pruned.deleted == [names[0]] and pruned.reclaimed >= 10_000
    pruned = prune_build_cache(root, until=time.time() - 950)  # /mid was used 900 s ago
    assert pruned.deleted == []
    pruned = prune_build_cache(root, until=time.time() - 850)
    assert pruned.deleted == [names[1]]
    assert [m.name for m in mounts.cache_mounts(root)] == [names[2]]


def test_leftovers_of_a_killed_prune_or_build_are_swept(tmp_path: Path) -> None:
    root = str(tmp_path)
    base = Path(mounts.mounts_dir(root))
    base.mkdir(parents=True)
    (base / ".0123.cafe.pruning").mkdir()
    (base / ("a" * 32 + ".json")).write_text("{}")  # a sidecar without its folder
    old_partial = base / ("b" * 32 + ".beef.partial")
    old_partial.mkdir()
    os.utime(old_partial, (time.time() - 3600, time.time() - 3600))
    new_partial = base / ("c" * 32 + ".f00d.partial")
    new_partial.mkdir()  # a build is making it
    mounts.sweep_leftovers(root)
    assert sorted(os.listdir(base)) == [new_partial.name]
