"""cove.engine.state: container records in SQLite and per-container locks."""

from __future__ import annotations

import multiprocessing
import os
import re
import threading
import time
from pathlib import Path

import pytest

from cove.engine.state import (
    ADJECTIVES,
    SURNAMES,
    ContainerRecord,
    ContainerStore,
    new_id,
    random_name,
)
from cove.errors import (
    AmbiguousContainer,
    ContainerBusy,
    ContainerStoreError,
    InvalidArgument,
    NameConflict,
    NoSuchContainer,
)


def record(name: str = "", cid: str | None = None, **kw: object) -> ContainerRecord:
    return ContainerRecord(
        id=cid or new_id(), name=name, image_id="sha256:" + "ab" * 32, image_name="busybox",
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> ContainerStore:
    return ContainerStore(tmp_path / "engine")


def test_ids_are_64_hex() -> None:
    ids = {new_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids)


def test_word_lists_and_random_names() -> None:
    assert len(set(ADJECTIVES)) >= 50 and len(set(SURNAMES)) >= 50
    for _ in range(20):
        adjective, surname = random_name().split("_")
        assert adjective in ADJECTIVES and surname in SURNAMES


def test_add_get_roundtrip(store: ContainerStore, tmp_path: Path) -> None:
    rec = record(
        "web",
        config={"cmd": ["sh"], "labels": {"a": "1"}},
        bundle="/b",
        rootfs="/r",
        log_path="/l",
        runtime="runc",
    )
    stored = store.add(rec)
    assert stored == rec
    assert store.get(rec.id) == rec
    assert store.get("web") == rec
    assert store.get("/web") == rec
    assert (tmp_path / "engine" / "containers.db").is_file()
    # a second store on the same root (another process) sees it
    assert ContainerStore(tmp_path / "engine").get("web") == rec


def test_wal_mode(store: ContainerStore) -> None:
    (mode,) = store._query("PRAGMA journal_mode")[0]
    assert mode == "wal"


def test_random_name_when_none_given(store: ContainerStore) -> None:
    stored = store.add(record())
    assert re.fullmatch(r"[a-z]+_[a-z]+", stored.name)
    assert store.get(stored.name).id == stored.id


def test_name_conflict_names_name_and_holder(store: ContainerStore) -> None:
    first = store.add(record("xx"))
    with pytest.raises(NameConflict) as info:
        store.add(record("/xx"))
    assert str(info.value).startswith(
        f'Conflict. The container name "/xx" is already in use by container "{first.id[:12]}"'
    )
    assert info.value.holder_id == first.id
    assert len(store.list(all=True)) == 1


def test_duplicate_id_is_refused(store: ContainerStore) -> None:
    rec = store.add(record("aa"))
    with pytest.raises(ContainerStoreError):
        store.add(record("bb", cid=rec.id))
    assert [r.name for r in store.list(all=True)] == ["aa"]


@pytest.mark.parametrize("bad", ["-x", "a", "/", "has space", "a/b", "é1"])
def test_invalid_names(store: ContainerStore, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        store.add(record(bad))


def test_invalid_id_and_status(store: ContainerStore) -> None:
    with pytest.raises(InvalidArgument):
        store.add(record("aa", cid="abc"))
    with pytest.raises(InvalidArgument):
        store.add(record("aa", status="zombie"))


def test_prefix_resolution_and_ambiguity(store: ContainerStore) -> None:
    a = store.add(record("aa", cid="abc1" + "0" * 60))
    b = store.add(record("bb", cid="abc2" + "0" * 60))
    assert store.get("abc1") == a
    assert store.get("abc2") == b
    with pytest.raises(AmbiguousContainer) as info:
        store.get("abc")
    assert set(info.value.candidates) == {a.id, b.id}
    with pytest.raises(NoSuchContainer):
        store.get("abd")
    with pytest.raises(NoSuchContainer):
        store.get("")
    with pytest.raises(NoSuchContainer):
        store.get("nosuchname")


def test_name_wins_over_prefix(store: ContainerStore) -> None:
    target = store.add(record("abc", cid="f" * 64))
    store.add(record("other", cid="abc" + "0" * 61))
    assert store.get("abc") == target
    # a full id wins over a name that happens to look like one
    full = "abc" + "0" * 61
    assert store.get(full).name == "other"


def test_list_all_and_filters(store: ContainerStore) -> None:
    run = store.add(record("run", status="running", config={"labels": {"tier": "web", "a": "1"}}))
    time.sleep(0.001)
    ex = store.add(record("ex", status="exited", exit_code=3))
    time.sleep(0.001)
    cr = store.add(record("cr"))
    assert [r.name for r in store.list()] == ["run"]
    assert [r.name for r in store.list(all=True)] == ["cr", "ex", "run"]
    assert [r.name for r in store.list(filters={"status": ["exited", "created"]})] == [
        "cr",
        "ex",
    ]
    assert [r.name for r in store.list(all=True, filters={"exited": ["3"]})] == ["ex"]
    assert [r.name for r in store.list(all=True, filters={"label": ["tier=web"]})] == ["run"]
    assert [r.name for r in store.list(all=True, filters={"label": ["tier=db"]})] == []
    both = {"label": ["tier=web", "a=1"]}  # labels: every one must match (other keys: any)
    assert [r.name for r in store.list(all=True, filters=both)] == ["run"]
    assert store.list(all=True, filters={"label": ["tier=web", "a=2"]}) == []
    assert [r.name for r in store.list(all=True, filters={"id": [ex.id[:8]]})] == ["ex"]
    assert [r.name for r in store.list(all=True, filters={"name": ["/ru"]})] == ["run"]
    assert [r.name for r in store.list(all=True, filters={"before": ["cr"]})] == ["ex", "run"]
    assert [r.name for r in store.list(all=True, filters={"since": [run.id]})] == ["cr", "ex"]
    assert [r.name for r in store.list(all=True, filters={"ancestor": ["busybox"]})] == [
        "cr",
        "ex",
        "run",
    ]
    assert cr.status == "created"
    with pytest.raises(InvalidArgument):
        store.list(filters={"colour": ["red"]})


def test_update_state(store: ContainerStore) -> None:
    rec = store.add(record("uu"))
    new = store.update_state(
        rec.id, status="exited", pid=0, exit_code=137, oom_killed=True, finished_at="t"
    )
    assert (new.status, new.exit_code, new.oom_killed, new.finished_at) == (
        "exited",
        137,
        True,
        "t",
    )
    assert store.get(rec.id) == new
    with pytest.raises(TypeError):
        store.update_state(rec.id, name="sneaky")
    with pytest.raises(InvalidArgument):
        store.update_state(rec.id, status="bogus")
    with pytest.raises(NoSuchContainer):
        store.update_state("0" * 64, status="running")


def test_rename(store: ContainerStore) -> None:
    # (names that are not hex: "aa" would also be the prefix of an id starting with aa)
    a = store.add(record("ka"))
    b = store.add(record("kb"))
    assert store.rename(a.id, "/kc").name == "kc"
    assert store.get("kc").id == a.id
    with pytest.raises(NoSuchContainer):
        store.get("ka")
    with pytest.raises(NameConflict) as info:
        store.rename(a.id, "kb")
    assert info.value.holder_id == b.id
    assert store.rename(a.id, "kc").name == "kc"  # renaming to its own name is fine
    store.add(record("ka"))  # the old name is free again


def test_remove(store: ContainerStore) -> None:
    a = store.add(record("aa"))
    store.remove(a.id)
    with pytest.raises(NoSuchContainer):
        store.get(a.id)
    with pytest.raises(NoSuchContainer):
        store.remove(a.id)
    store.add(record("aa"))


# --- two processes ---------------------------------------------------------------------------


def _add_same_name(root: str, barrier: object, results: object) -> None:
    store = ContainerStore(root)
    barrier.wait()  # type: ignore[attr-defined]
    try:
        rec = store.add(record("same"))
        results.put(("won", rec.id))  # type: ignore[attr-defined]
    except NameConflict as exc:
        results.put(("conflict", exc.holder_id))  # type: ignore[attr-defined]
    except Exception as exc:  # reported to the parent
        results.put(("error", repr(exc)))  # type: ignore[attr-defined]


def test_concurrent_adds_same_name_exactly_one_wins(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    root = str(tmp_path / "engine")
    ContainerStore(root).close()
    for _ in range(5):
        barrier = ctx.Barrier(2)
        results = ctx.Queue()
        procs = [ctx.Process(target=_add_same_name, args=(root, barrier, results)) for _ in "ab"]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(timeout=30)
            assert p.exitcode == 0
        kinds = sorted(kind for kind, _ in outcomes)
        assert kinds == ["conflict", "won"], outcomes
        won = next(v for k, v in outcomes if k == "won")
        lost = next(v for k, v in outcomes if k == "conflict")
        assert won == lost
        store = ContainerStore(root)
        assert store.get("same").id == won
        store.remove(won)
        store.close()


def _hold_lock(root: str, cid: str, held: object, release: object) -> None:
    store = ContainerStore(root)
    with store.lock(cid):
        held.set()  # type: ignore[attr-defined]
        release.wait(30)  # type: ignore[attr-defined]


def test_lock_serialises_across_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    root = str(tmp_path / "engine")
    store = ContainerStore(root)
    one, two = store.add(record("one")).id, store.add(record("two")).id
    held, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(root, one, held, release))
    proc.start()
    try:
        assert held.wait(30)
        with pytest.raises(ContainerBusy):
            with store.lock(one, timeout=0.2):
                pass
        # another container's lock is independent
        with store.lock(two, timeout=0.2):
            pass
        got = threading.Event()

        def waiter() -> None:
            with store.lock(one):
                got.set()

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.2)
        assert not got.is_set()
        release.set()
        thread.join(10)
        assert got.is_set()
    finally:
        release.set()
        proc.join(30)
    assert (tmp_path / "engine" / "containers" / one / "lock").is_file()


def test_lock_serialises_threads(store: ContainerStore) -> None:
    cid = store.add(record("shared")).id
    inside = 0
    overlaps = 0
    entered = 0
    mutex = threading.Lock()

    def work() -> None:
        nonlocal inside, overlaps, entered
        for _ in range(20):
            with store.lock(cid):
                with mutex:
                    inside += 1
                    entered += 1
                    overlaps += inside > 1
                time.sleep(0.001)
                with mutex:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert overlaps == 0 and entered == 80  # every thread went through all its rounds


def test_lock_rejects_bad_id_and_leaks_no_fd(store: ContainerStore) -> None:
    with pytest.raises(InvalidArgument):
        with store.lock("../../etc"):
            pass
    import gc

    ids = [store.add(record(f"c{index}")).id for index in range(20)]  # (the database opened)
    gc.collect()  # (what earlier tests left to collect closes its files now, not below)
    before = len(os.listdir("/proc/self/fd"))
    for cid in ids:
        with store.lock(cid):
            pass
    assert len(os.listdir("/proc/self/fd")) == before


def test_lock_of_a_removed_container_makes_no_folder(store: ContainerStore) -> None:
    """A command that locks a container another one just removed finds it gone, and does
    not make its folder again (it would stay behind)."""
    gone = new_id()
    with pytest.raises(NoSuchContainer):
        with store.lock(gone):
            pass
    assert not store.container_dir(gone).exists()
    kept = store.add(record("kept")).id  # a record without its folder yet: the folder is made
    with store.lock(kept):
        assert (store.container_dir(kept) / "lock").is_file()
