"""The volume service without root: names, metadata, list filters, removal and prune rules
against fake container records, a container's volumes (plan, prepare with the image's
files, discard), mounting with recorded system calls and a fake mount table."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from cove.engine.spec_mounts import VolumeRequest
from cove.engine.state_records import ContainerRecord
from cove.engine.volume_data import (
    copy_image_content,
    mount_flags,
    mount_volume,
    mounts_under,
    tree_size,
)
from cove.engine.volume_names import check_volume_name, valid_volume_name
from cove.engine.volumes import ANONYMOUS_LABEL, VolumeService
from cove.errors import InvalidArgument, NoSuchVolume, VolumeError, VolumeInUse
from cove.sys.constants import MNT_DETACH, MS_BIND, MS_NODEV, MS_RDONLY, MS_REC, MS_REMOUNT
from cove.sys.fake import RecordingSyscalls

HEX64 = set("0123456789abcdef")
TMPFS = {"type": "tmpfs", "device": "tmpfs", "o": "size=64m,nodev"}


def record(n: int, status: str = "exited", *names: str, anonymous: bool = False) -> ContainerRecord:
    entries = [{"name": name, "destination": f"/{name}", "anonymous": anonymous} for name in names]
    return ContainerRecord(id=f"{n:064x}", name=f"ctr{n}", image_id="sha256:00",
                           image_name="img", status=status,
                           settings={"volumes": entries} if entries else {})  # fmt: skip


class World:
    """A volume service over a temporary root, fake records and a fake mount table."""

    def __init__(self, root: Path) -> None:
        self.records: list[ContainerRecord] = []
        self.sys = RecordingSyscalls()
        root.mkdir(parents=True, exist_ok=True)
        self.mountinfo = root.parent / "mountinfo"
        self.mountinfo.write_text("")
        self.service = VolumeService(str(root), records=lambda: self.records,
                                     syscalls=self.sys, mountinfo=str(self.mountinfo))  # fmt: skip

    def mounted(self, *points: str) -> None:
        self.mountinfo.write_text("".join(
            f"{100 + i} 1 0:{50 + i} / {p.replace(' ', chr(92) + '040')} rw - tmpfs tmpfs rw\n"
            for i, p in enumerate(points)
        ))  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path / "engine")


# --- names and metadata ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ab", "data", "my_vol.1-x", "0", "a", "-x", ".x", "_x", "a/b",
                                  "a b", "a:b", "..", "é1"])  # fmt: skip
def test_names(name: str) -> None:
    good = (
        len(name) >= 2
        and name[0].isascii()
        and name[0].isalnum()
        and all(c.isascii() and (c.isalnum() or c in "_.-") for c in name)
    )
    assert valid_volume_name(name) is good
    if not good:
        with pytest.raises(InvalidArgument, match="invalid volume name") as info:
            check_volume_name(name)
        assert "\n" not in str(info.value) and "absolute path" in str(info.value)


def test_create_writes_metadata_and_an_empty_mountpoint(world: World) -> None:
    volume = world.service.create("data", labels={"team": "a"}, options=TMPFS)
    folder = world.service.dir / "data"
    assert volume.mountpoint == str(folder / "_data")
    assert Path(volume.mountpoint).is_dir() and os.listdir(volume.mountpoint) == []
    assert stat.S_IMODE(os.stat(volume.mountpoint).st_mode) == 0o755
    meta = json.loads((folder / "volume.json").read_text())
    assert meta == {"Name": "data", "Driver": "local", "CreatedAt": volume.created_at,
                    "Labels": {"team": "a"}, "Options": TMPFS}  # fmt: skip
    assert sorted(os.listdir(world.service.dir)) == [".lock", "data"]  # no temporary left
    info = world.service.inspect("data")
    assert list(info) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options",
                          "Scope"]  # fmt: skip
    assert info["Scope"] == "local" and info["Options"] == dict(sorted(TMPFS.items()))
    assert world.sys.calls == []  # mounted only when a container uses it


def test_create_again_returns_the_volume_as_it_is(world: World) -> None:
    first = world.service.create("data", labels={"a": "1"})
    again = world.service.create("data", labels={"b": "2"})
    assert again == first


def test_random_names_and_anonymous_volumes(world: World) -> None:
    named = world.service.create()
    anon = world.service.create(anonymous=True)
    for volume in (named, anon):
        assert len(volume.name) == 64 and set(volume.name) <= HEX64
    assert not named.anonymous and anon.anonymous
    assert anon.labels == {ANONYMOUS_LABEL: ""}


@pytest.mark.parametrize(
    "options, words",
    [
        ({"size": "1m"}, "invalid volume option 'size'"),
        ({"type": "tmpfs"}, "type requires device"),
        ({"device": "/x"}, "device requires type"),
        ({"o": "size=1m"}, "o requires type"),
        ({"type": "none", "device": "/x"}, "o=bind"),
        ({"type": "none", "device": "/x", "o": "ro"}, "o=bind"),
    ],
)
def test_bad_options_create_nothing(world: World, options: dict[str, str], words: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        world.service.create("data", options=options)
    assert words in str(info.value)
    assert world.service.list() == []


def test_bad_name_or_driver_create_nothing(world: World) -> None:
    with pytest.raises(InvalidArgument, match="invalid volume name"):
        world.service.create("../up")
    with pytest.raises(InvalidArgument, match="only 'local'"):
        world.service.create("data", driver="nfs")
    assert world.service.list() == [] and not (world.service.dir.parent / "up").exists()


def test_leftovers_of_a_crash_are_swept(world: World) -> None:
    world.service.create("first")
    for leftover in (".new-x-1234", ".trash-y-5678"):
        (world.service.dir / leftover / "_data").mkdir(parents=True)
    assert [v.name for v in world.service.list()] == ["first"]
    world.service.create("second")
    assert sorted(os.listdir(world.service.dir)) == [".lock", "first", "second"]


def test_get_of_unknown_or_invalid_names(world: World) -> None:
    for name in ("nothing", "../etc", ""):
        with pytest.raises(NoSuchVolume, match="no such volume"):
            world.service.get(name)


# --- list and filters --------------------------------------------------------------------------


def test_list_filters(world: World) -> None:
    world.service.create("alpha", labels={"team": "a", "tier": "1"})
    world.service.create("beta", labels={"team": "b"})
    world.service.create("gamma")
    world.records = [record(1, "running", "alpha"), record(2, "exited", "beta")]

    def names(**filters: list[str]) -> list[str]:
        return [v.name for v in world.service.list(filters)]

    assert names() == ["alpha", "beta", "gamma"]
    assert names(dangling=["true"]) == ["gamma"]
    assert names(dangling=["false"]) == ["alpha", "beta"]  # a stopped container uses it too
    assert names(name=["a"]) == ["alpha", "beta", "gamma"]
    assert names(name=["alp", "gam"]) == ["alpha", "gamma"]
    assert names(label=["team"]) == ["alpha", "beta"]
    assert names(label=["team=a"]) == ["alpha"]
    assert names(label=["team", "tier=1"]) == ["alpha"]  # labels: all must match
    assert names(**{"label!": ["team=a"]}) == ["beta", "gamma"]
    assert names(driver=["local"]) == ["alpha", "beta", "gamma"]
    assert names(driver=["nfs"]) == []
    with pytest.raises(InvalidArgument, match="invalid filter 'color'"):
        names(color=["red"])
    with pytest.raises(InvalidArgument, match="dangling=maybe"):
        names(dangling=["maybe"])


# --- removal and prune -----------------------------------------------------------------------


def test_remove_refuses_a_volume_in_use_even_with_force(world: World) -> None:
    world.service.create("data")
    world.records = [record(7, "exited", "data")]
    for force in (False, True):
        with pytest.raises(VolumeInUse) as info:
            world.service.remove("data", force=force)
        message = str(info.value)
        assert message.startswith("remove data: volume is in use - [") and "ctr7" in message
        assert f"{7:064x}" in message
    world.records = []
    assert world.service.remove("data") == "data"
    assert world.service.list() == [] and sorted(os.listdir(world.service.dir)) == [".lock"]
    with pytest.raises(NoSuchVolume):
        world.service.remove("data")
    assert world.service.remove("data", force=True) == "data"


def test_remove_unmounts_first(world: World) -> None:
    volume = world.service.create("data", options=TMPFS)
    world.mounted(volume.mountpoint)
    world.sys.fail_on = {}
    calls_before = len(world.sys.calls)
    with pytest.raises(VolumeError, match="still mounted"):
        world.service.remove("data")  # the fake unmount changes no table: it must not delete
    assert world.sys.calls[calls_before:] == [("umount2", volume.mountpoint, 0)]
    assert Path(volume.mountpoint).is_dir()
    world.mounted()
    world.service.remove("data")


def test_prune_rules(world: World) -> None:
    named = world.service.create("named")
    (Path(named.mountpoint) / "f").write_bytes(b"x" * 1000)
    world.service.create("labelled", labels={"keep": "yes"})
    used = world.service.create(anonymous=True)
    unused = world.service.create(anonymous=True)
    (Path(unused.mountpoint) / "sub").mkdir()
    (Path(unused.mountpoint) / "sub" / "g").write_bytes(b"y" * 300)
    os.link(Path(unused.mountpoint) / "sub" / "g", Path(unused.mountpoint) / "h")
    world.records = [record(1, "created", used.name, anonymous=True)]
    assert world.service.prune() == ([unused.name], 300)
    assert world.service.prune() == ([], 0)
    assert world.service.prune(True, {"label!": ["keep"]}) == (["named"], 1000)
    assert [v.name for v in world.service.list()] == sorted(["labelled", used.name])
    with pytest.raises(InvalidArgument, match="prune takes label"):
        world.service.prune(True, {"dangling": ["true"]})
    assert world.service.prune(True) == (["labelled"], 0)
    assert [v.name for v in world.service.list()] == [used.name]


def test_remove_anonymous_keeps_named_and_shared_ones(world: World) -> None:
    world.service.create("named")
    mine = world.service.create(anonymous=True)
    shared = world.service.create(anonymous=True)
    gone = record(1, "exited", mine.name, shared.name, anonymous=True)
    other = record(2, "exited", shared.name)
    gone = ContainerRecord(**{**vars(gone), "settings": {"volumes": [
        {"name": "named", "destination": "/n", "anonymous": False},
        *gone.settings["volumes"],
    ]}})  # fmt: skip
    world.records = [other]
    assert world.service.remove_anonymous(gone) == [mine.name]
    assert sorted(v.name for v in world.service.list()) == sorted(["named", shared.name])


# --- a container's volumes ---------------------------------------------------------------------


def image_rootfs(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    data = rootfs / "srv" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "hello").write_text("hello\n")
    os.chmod(data / "hello", 0o640)
    os.link(data / "hello", data / "hard")
    os.symlink("hello", data / "link")
    os.mkfifo(data / "fifo", 0o600)
    os.chmod(data / "sub", 0o750)
    os.utime(data / "hello", (1_000_000, 1_000_000))
    os.chmod(data, 0o711)
    os.symlink("/srv/data", rootfs / "data")  # an absolute link: resolved inside the rootfs
    return rootfs


def test_plan_then_prepare_copies_the_image_files(world: World, tmp_path: Path) -> None:
    rootfs = image_rootfs(tmp_path)
    requests = [
        VolumeRequest("named", "/data"), VolumeRequest("", "/data/sub"),
        VolumeRequest("bare", "/data", nocopy=True), VolumeRequest("", "/nothing"),
    ]  # fmt: skip
    entries = world.service.plan(requests)
    anon, nowhere = entries[1]["name"], entries[3]["name"]
    assert [(e["name"], e["destination"], e["anonymous"], e["rw"]) for e in entries] == [
        ("named", "/data", False, True), (anon, "/data/sub", True, True),
        ("bare", "/data", False, True), (nowhere, "/nothing", True, True),
    ]  # fmt: skip
    assert entries[0]["source"] == world.service.mountpoint("named")
    assert world.service.list() == []  # planning creates nothing
    created: list[str] = []
    sources = world.service.prepare(requests, entries, str(rootfs), created)
    assert created == ["named", anon, "bare", nowhere]
    assert sources == {"named": world.service.mountpoint("named"),
                       "/data/sub": world.service.mountpoint(anon),
                       "bare": world.service.mountpoint("bare"),
                       "/nothing": world.service.mountpoint(nowhere)}  # fmt: skip
    copy = Path(world.service.mountpoint("named"))
    assert sorted(os.listdir(copy)) == ["fifo", "hard", "hello", "link", "sub"]
    assert (copy / "hello").read_text() == "hello\n"
    assert stat.S_IMODE((copy / "hello").stat().st_mode) == 0o640
    assert (copy / "hello").stat().st_mtime == 1_000_000
    assert (copy / "hard").stat().st_ino == (copy / "hello").stat().st_ino
    assert os.readlink(copy / "link") == "hello"
    assert stat.S_ISFIFO((copy / "fifo").lstat().st_mode)
    assert stat.S_IMODE((copy / "sub").stat().st_mode) == 0o750
    assert stat.S_IMODE(copy.stat().st_mode) == 0o711  # the folder's own mode, as Docker
    assert os.listdir(world.service.mountpoint("bare")) == []  # nocopy
    assert os.listdir(world.service.mountpoint(nowhere)) == []
    assert world.service.get(anon).anonymous and not world.service.get("named").anonymous
    # a second container: nothing new; a volume with files is not filled again
    (copy / "hello").write_text("changed\n")
    again: list[str] = []
    world.service.prepare(requests[:1], entries[:1], str(rootfs), again)
    assert again == [] and (copy / "hello").read_text() == "changed\n"
    # the undo of a failed create removes what it created, unless a container uses it
    world.records = [record(3, "created", "bare")]
    world.service.discard(created)
    assert [v.name for v in world.service.list()] == ["bare"]


def test_prepare_applies_mount_options_and_labels(world: World, tmp_path: Path) -> None:
    rootfs = image_rootfs(tmp_path)
    host = tmp_path / "host"
    host.mkdir()
    requests = [
        VolumeRequest("scratch", "/data", labels={"k": "v"}, options=TMPFS),
        VolumeRequest("hostdir", "/data", options={"type": "none", "o": "bind",
                                                   "device": str(host)}),
    ]  # fmt: skip
    world.service.prepare(requests, world.service.plan(requests), str(rootfs), [])
    scratch = world.service.get("scratch")
    assert scratch.labels == {"k": "v"} and scratch.options == TMPFS
    assert os.listdir(scratch.mountpoint) == []  # a tmpfs is only there while containers run
    assert sorted(os.listdir(host)) == ["fifo", "hard", "hello", "link", "sub"]  # bind: copied
    bad = [VolumeRequest("other", "/x", options={"type": "tmpfs"})]
    with pytest.raises(InvalidArgument, match="requires device"):
        world.service.prepare(bad, world.service.plan(bad), str(rootfs), [])


def test_copy_keeps_extended_attributes_where_possible(tmp_path: Path) -> None:
    rootfs = image_rootfs(tmp_path)
    try:
        os.setxattr(rootfs / "srv" / "data" / "hello", "user.cove", b"1")
    except OSError:
        pytest.skip("this filesystem has no user xattrs")
    target = tmp_path / "target"
    target.mkdir()
    assert copy_image_content(str(rootfs), "/data", str(target))
    assert os.getxattr(target / "hello", "user.cove") == b"1"
    assert not copy_image_content(str(rootfs), "/data/hello", str(tmp_path))  # not a folder
    assert not copy_image_content(str(rootfs), "/missing", str(tmp_path))


# --- mounting ----------------------------------------------------------------------------------


def test_mount_flags() -> None:
    assert mount_flags("size=64m,mode=1777") == (0, "size=64m,mode=1777")
    assert mount_flags("ro,nodev,uid=1") == (MS_RDONLY | MS_NODEV, "uid=1")
    assert mount_flags("ro,rw") == (0, "")
    assert mount_flags("rbind") == (MS_BIND | MS_REC, "")


def test_mount_volume_calls(tmp_path: Path) -> None:
    sys = RecordingSyscalls()
    mount_volume("t", TMPFS, "/v/_data", sys)
    assert sys.calls == [("mount", "tmpfs", "/v/_data", "tmpfs", MS_NODEV, "size=64m")]
    sys = RecordingSyscalls()
    mount_volume("b", {"type": "none", "device": str(tmp_path), "o": "bind,ro"}, "/v/_data", sys)
    assert sys.calls == [
        ("mount", str(tmp_path), "/v/_data", "", MS_BIND, ""),
        ("mount", "", "/v/_data", "", MS_REMOUNT | MS_BIND | MS_RDONLY, ""),
    ]
    with pytest.raises(VolumeError, match="not a folder"):
        mount_volume("b", {"type": "none", "device": "/no/such", "o": "bind"}, "/v/_data", sys)
    failing = RecordingSyscalls(fail_on={"mount": 19})
    with pytest.raises(VolumeError, match=r"cannot mount volume t .*injected failure"):
        mount_volume("t", TMPFS, "/v/_data", failing)


def test_mounts_under_reads_the_table(world: World) -> None:
    world.mounted("/a/vol", "/a/vol/x y", "/a/volume", "/b")
    assert mounts_under("/a/vol", str(world.mountinfo)) == ["/a/vol/x y", "/a/vol"]


def test_start_mounts_and_the_last_stop_unmounts(world: World) -> None:
    volume = world.service.create("scratch", options=TMPFS)
    world.service.create("plain")
    first = record(1, "created", "scratch", "plain")
    second = record(2, "running", "scratch")
    # mounted already (the fake table says so): no mount, the hold is a shared lock
    world.mounted(volume.mountpoint)
    hold = world.service.hold_for_start(first)
    hold.close()
    assert world.sys.calls == []
    # another container still runs with it: it stays mounted
    world.records = [first, second]
    world.service.release(first)
    assert world.sys.calls == []
    # the last one: unmounted
    world.records = [first, ContainerRecord(**{**vars(second), "status": "exited"})]
    world.service.release(first)
    assert world.sys.calls == [("umount2", volume.mountpoint, 0)]
    # not mounted: mounted at start (the fake table never shows it: a clear error)
    world.mounted()
    world.sys.calls.clear()
    with pytest.raises(VolumeError, match=r"cannot keep the volumes .* mounted: scratch"):
        world.service.hold_for_start(first)
    assert world.sys.calls[0] == ("mount", "tmpfs", volume.mountpoint, "tmpfs", MS_NODEV,
                                  "size=64m")  # fmt: skip
    # a container without volumes to mount takes no lock and makes no call
    world.sys.calls.clear()
    world.service.hold_for_start(record(3, "created", "plain")).close()
    world.service.release(record(3, "exited", "plain"))
    assert world.sys.calls == []


def test_idle_mounts_for_system_check(world: World) -> None:
    busy = world.service.create("busy", options=TMPFS)
    idle = world.service.create("idle", options=TMPFS)
    world.service.create("plain")
    world.records = [record(1, "running", "busy"), record(2, "exited", "idle")]
    world.mounted(busy.mountpoint, idle.mountpoint, world.service.mountpoint("plain"))
    assert [v.name for v in world.service.idle_mounts()] == ["idle"]
    world.service.unmount_idle("busy")
    assert world.sys.calls == []
    world.service.unmount_idle("idle")
    assert world.sys.calls == [("umount2", idle.mountpoint, 0)]


def test_release_is_best_effort(world: World) -> None:
    volume = world.service.create("scratch", options=TMPFS)
    world.mounted(volume.mountpoint)
    world.sys.fail_on = {"umount2": 16}  # EBUSY, then the detach fails too
    world.service.release(record(1, "exited", "scratch"))  # no exception
    assert world.sys.calls == [("umount2", volume.mountpoint, 0),
                               ("umount2", volume.mountpoint, MNT_DETACH)]  # fmt: skip


def test_hold_for_start_of_a_missing_volume(world: World) -> None:
    with pytest.raises(VolumeError, match=r"volume gone of container 0{12} no longer exists"):
        world.service.hold_for_start(record(1, "created", "gone"))


def test_tree_size(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1" * 10)
    os.link(tmp_path / "a", tmp_path / "b")
    os.symlink("a", tmp_path / "c")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "e").write_bytes(b"1" * 5)
    assert tree_size(str(tmp_path)) == 15
