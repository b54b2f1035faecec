"""cove.runtime.store: container directories, locks, records and stale sweeping."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.errors import ContainerExists, InvalidArgument, NoSuchContainer, StateCorrupt
from cove.runtime.store import EXEC_FIFO, STATE_FILE, ContainerRecord, Store, check_id


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "state"))


@pytest.fixture
def fds() -> Iterator[list[int]]:
    """Descriptors a test opened (locks), closed at teardown if the test did not."""
    opened: list[int] = []
    yield opened
    for fd in opened:
        try:
            os.close(fd)
        except OSError:
            pass


def record(container_id: str = "ct1", creating: bool = False, **fields: object) -> ContainerRecord:
    return ContainerRecord(
        id=container_id,
        bundle="/bundles/b",
        rootfs="/bundles/b/rootfs",
        created="2024-05-01T12:00:00.000000000Z",
        creating=creating,
        **fields,
    )


def lock_is_held(path: str) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_reserve_creates_and_locks(store: Store, fds: list[int]) -> None:
    fd = store.reserve("ct1")
    fds.append(fd)
    path = store.container_dir("ct1")
    assert os.path.isdir(path)
    assert path == os.path.join(store.root, "ct1")
    assert lock_is_held(path)
    assert os.stat(path).st_mode & 0o777 == 0o711
    os.close(fd)
    fds.remove(fd)
    assert not lock_is_held(path)


def test_duplicate_reserve_while_creating(store: Store, fds: list[int]) -> None:
    fds.append(store.reserve("ct1"))
    with pytest.raises(ContainerExists, match=r"container 'ct1' already exists"):
        store.reserve("ct1")


def test_duplicate_reserve_of_a_finished_container(store: Store, fds: list[int]) -> None:
    fd = store.reserve("ct1")
    store.save(record(creating=False))
    os.close(fd)
    with pytest.raises(ContainerExists):
        store.reserve("ct1")
    assert store.load("ct1") == record(creating=False)


def test_save_load_round_trip(store: Store, fds: list[int]) -> None:
    fds.append(store.reserve("ct1"))
    saved = record(
        pid=1234,
        pid_start=98765,
        owner="root",
        cgroup_paths={"/sys/fs/cgroup/memory": "/sys/fs/cgroup/memory/cove/ct1"},
        annotations={"org.example/ünï": "välue"},
    )
    store.save(saved)
    assert store.load("ct1") == saved
    state_path = Path(store.container_dir("ct1"), STATE_FILE)
    assert json.loads(state_path.read_text())["pid"] == 1234
    assert os.listdir(store.container_dir("ct1")) == [STATE_FILE]  # no temp file left


def test_save_replaces(store: Store, fds: list[int]) -> None:
    fds.append(store.reserve("ct1"))
    store.save(record(creating=True))
    store.save(record(creating=False, pid=9))
    assert store.load("ct1").pid == 9


def test_load_unknown(store: Store) -> None:
    with pytest.raises(NoSuchContainer, match=r"container 'nope' does not exist"):
        store.load("nope")


def test_load_sweeps_a_dir_left_before_the_first_write(store: Store, fds: list[int]) -> None:
    os.close(store.reserve("ct1"))  # create killed before it saved anything
    with pytest.raises(NoSuchContainer):
        store.load("ct1")
    assert not os.path.exists(store.container_dir("ct1"))


def test_load_keeps_a_dir_whose_create_is_running(store: Store, fds: list[int]) -> None:
    fds.append(store.reserve("ct1"))
    with pytest.raises(NoSuchContainer):
        store.load("ct1")
    assert os.path.isdir(store.container_dir("ct1"))


@pytest.mark.parametrize(
    "content", ["{not json", "", "[1, 2]", '{"id": "ct1", "bogus": 1}', '{"id": "ct1"}']
)
def test_corrupt_state(store: Store, fds: list[int], content: str) -> None:
    fds.append(store.reserve("ct1"))
    Path(store.container_dir("ct1"), STATE_FILE).write_text(content)
    with pytest.raises(StateCorrupt, match=r"^container 'ct1': unreadable state"):
        store.load("ct1")


def test_stale_creating_record_is_swept_on_load(store: Store, fds: list[int]) -> None:
    fd = store.reserve("ct1")
    store.save(record(creating=True))
    os.close(fd)  # the creating process died: lock released
    with pytest.raises(NoSuchContainer):
        store.load("ct1")
    assert not os.path.exists(store.container_dir("ct1"))


def test_creating_record_with_held_lock_is_kept(store: Store, fds: list[int]) -> None:
    fds.append(store.reserve("ct1"))
    store.save(record(creating=True))
    assert store.load("ct1").creating is True
    assert os.path.isdir(store.container_dir("ct1"))


def test_stale_record_is_swept_by_reserve(store: Store, fds: list[int]) -> None:
    fd = store.reserve("ct1")
    store.save(record(creating=True))
    Path(store.fifo_path("ct1")).write_text("")
    os.close(fd)
    fd = store.reserve("ct1")
    fds.append(fd)
    assert os.listdir(store.container_dir("ct1")) == []
    assert lock_is_held(store.container_dir("ct1"))


def test_stale_dir_without_record_is_swept_by_reserve(store: Store, fds: list[int]) -> None:
    os.close(store.reserve("ct1"))  # killed before the first save
    fds.append(store.reserve("ct1"))


def test_sweep_removes_the_stale_cgroups(store: Store, fds: list[int], tmp_path: Path) -> None:
    cgroup = tmp_path / "fake-cgroup" / "memory" / "cove" / "ct1"
    (cgroup / "child").mkdir(parents=True)
    fd = store.reserve("ct1")
    store.save(record(creating=True, cgroup_paths={str(tmp_path / "fake-cgroup"): str(cgroup)}))
    os.close(fd)
    with pytest.raises(NoSuchContainer):
        store.load("ct1")
    assert not cgroup.exists()
    assert cgroup.parent.exists()


def test_corrupt_stale_dir_is_not_swept(store: Store, fds: list[int]) -> None:
    fd = store.reserve("ct1")
    Path(store.container_dir("ct1"), STATE_FILE).write_text("{broken")
    os.close(fd)
    with pytest.raises(ContainerExists):
        store.reserve("ct1")
    assert os.path.isdir(store.container_dir("ct1"))


def test_ids_lists_only_valid_ids(store: Store) -> None:
    assert store.ids() == []  # root does not exist yet
    for name in ("b", "a-1", "not valid", "c@d", "x.y_z+1"):
        os.makedirs(os.path.join(store.root, name))
    assert store.ids() == ["a-1", "b", "x.y_z+1"]


def test_remove(store: Store, fds: list[int]) -> None:
    fd = store.reserve("ct1")
    store.save(record())
    Path(store.fifo_path("ct1")).write_text("")
    os.close(fd)
    assert store.remove("ct1") is True
    assert not os.path.exists(store.container_dir("ct1"))
    assert store.remove("ct1") is False  # already gone: fine


def test_remove_racing_another_remove(
    store: Store, fds: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    fd = store.reserve("ct1")
    store.save(record())
    os.close(fd)
    listdir = os.listdir

    def listed_then_removed_by_the_other(path: str) -> list[str]:
        names = listdir(path)
        monkeypatch.setattr("cove.runtime.store.os.listdir", listdir)
        Store(store.root).remove("ct1")  # the other delete wins after this one listed
        return names

    monkeypatch.setattr("cove.runtime.store.os.listdir", listed_then_removed_by_the_other)
    assert store.remove("ct1") is False  # the state file was the other's to remove
    assert not os.path.exists(store.container_dir("ct1"))


def test_paths(store: Store, tmp_path: Path) -> None:
    assert store.root == str(tmp_path / "state")
    assert store.fifo_path("ct1") == str(tmp_path / "state" / "ct1" / EXEC_FIFO)
    assert Store("relative/root").root == os.path.abspath("relative/root")


@pytest.mark.parametrize("good", ["abc", "a_b-c.d+e", "123", "A", ".hidden", "a..b"])
def test_check_id_accepts(good: str) -> None:
    assert check_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", ".", "..", "a/b", "a b", "../etc", "/abs", "a\nb", "tab\t", "a:b", "a\x00"]
)
def test_check_id_rejects(bad: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^invalid container id"):
        check_id(bad)


@pytest.mark.parametrize("bad", ["../x", "a/b", ".."])
def test_store_paths_refuse_bad_ids(store: Store, bad: str) -> None:
    with pytest.raises(InvalidArgument):
        store.container_dir(bad)
    with pytest.raises(InvalidArgument):
        store.reserve(bad)


@pytest.mark.parametrize("bad", ["café", "ид", "٣"])
def test_check_id_rejects_non_ascii(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        check_id(bad)
