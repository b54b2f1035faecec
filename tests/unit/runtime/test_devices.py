"""cove.runtime.devices: device nodes (bound or made) and the standard /dev symlinks."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from cove.errors import RootfsError
from cove.oci.runtime_spec import Device
from cove.runtime.devices import DEFAULT_DEVICES, DEV_SYMLINKS, create_dev_symlinks, create_devices
from cove.sys import constants as c
from cove.sys.fake import RecordingSyscalls


@pytest.fixture
def root(tmp_path: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    (rootfs / "dev").mkdir(parents=True)
    return rootfs


@pytest.fixture
def fake_nodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """mknod and chown recorded (and mknod made a plain file): no root needed."""
    calls: list[tuple[object, ...]] = []

    def mknod(path: str, mode: int, device: int) -> None:
        calls.append(("mknod", path, mode, device))
        with open(path, "x"):
            pass

    def chown(path: str, uid: int, gid: int) -> None:
        calls.append(("chown", path, uid, gid))

    monkeypatch.setattr(os, "mknod", mknod)
    monkeypatch.setattr(os, "chown", chown)
    return calls


def test_default_devices_are_runcs() -> None:
    assert [(d.path, d.major, d.minor) for d in DEFAULT_DEVICES] == [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    assert all(d.type == "c" and d.file_mode == 0o666 for d in DEFAULT_DEVICES)


def test_bind_from_host(root: Path, fake_sys: RecordingSyscalls) -> None:
    create_devices(fake_sys, str(root), DEFAULT_DEVICES, bind_from_host=True)
    assert fake_sys.calls == [
        ("mount", d.path, f"{root}{d.path}", "bind", c.MS_BIND, "") for d in DEFAULT_DEVICES
    ]
    for device in DEFAULT_DEVICES:
        mountpoint = root / device.path.lstrip("/")
        assert mountpoint.is_file()
        assert mountpoint.stat().st_size == 0


def test_bind_from_host_makes_parent_dirs(tmp_path: Path, fake_sys: RecordingSyscalls) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    create_devices(fake_sys, str(root), (Device("c", "/dev/net/tun", 10, 200),), True)
    assert (root / "dev" / "net" / "tun").is_file()
    assert fake_sys.calls == [
        ("mount", "/dev/net/tun", f"{root}/dev/net/tun", "bind", c.MS_BIND, "")
    ]


def test_bind_target_through_hostile_symlink_stays_inside(
    root: Path, tmp_path: Path, fake_sys: RecordingSyscalls
) -> None:
    outside = tmp_path / "host-dir"
    outside.mkdir()
    (root / "dev" / "fuse").symlink_to(outside / "fuse")
    create_devices(fake_sys, str(root), (Device("c", "/dev/fuse", 10, 229),), True)
    # the link is replaced by the device's own mount point, never followed
    assert fake_sys.calls[0][2] == f"{root}/dev/fuse"
    assert not (root / "dev" / "fuse").is_symlink()
    assert not (outside / "fuse").exists()


def test_mknod_without_user_namespace(
    root: Path, fake_sys: RecordingSyscalls, fake_nodes: list[tuple[object, ...]]
) -> None:
    devices = (
        Device("c", "/dev/null", 1, 3, file_mode=0o666, uid=0, gid=0),
        Device("b", "/dev/loop0", 7, 0, file_mode=0o660, uid=0, gid=6),
        Device("u", "/dev/kmsg", 1, 11),  # no mode: 0666
    )
    create_devices(fake_sys, str(root), devices, bind_from_host=False)
    assert fake_sys.calls == []
    assert fake_nodes == [
        ("mknod", f"{root}/dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3)),
        ("chown", f"{root}/dev/null", 0, 0),
        ("mknod", f"{root}/dev/loop0", 0o660 | stat.S_IFBLK, os.makedev(7, 0)),
        ("chown", f"{root}/dev/loop0", 0, 6),
        ("mknod", f"{root}/dev/kmsg", 0o666 | stat.S_IFCHR, os.makedev(1, 11)),
        ("chown", f"{root}/dev/kmsg", 0, 0),
    ]
    # chmod after mknod: the umask must not narrow the mode
    assert stat.S_IMODE((root / "dev" / "loop0").stat().st_mode) == 0o660
    assert stat.S_IMODE((root / "dev" / "null").stat().st_mode) == 0o666


def test_fifo_is_made_even_with_bind_from_host(
    root: Path, fake_sys: RecordingSyscalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "chown", lambda path, uid, gid: None)
    create_devices(fake_sys, str(root), (Device("p", "/dev/myfifo", file_mode=0o640),), True)
    assert fake_sys.calls == []
    made = (root / "dev" / "myfifo").stat()
    assert stat.S_ISFIFO(made.st_mode)
    assert stat.S_IMODE(made.st_mode) == 0o640


def test_existing_node_is_replaced(
    root: Path, fake_sys: RecordingSyscalls, fake_nodes: list[tuple[object, ...]]
) -> None:
    (root / "dev" / "zero").write_text("old content")
    create_devices(fake_sys, str(root), (Device("c", "/dev/zero", 1, 5),), False)
    assert (root / "dev" / "zero").read_text() == ""


def test_mknod_failure_names_the_device(
    root: Path, fake_sys: RecordingSyscalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    def denied(path: str, mode: int, device: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "mknod", denied)
    with pytest.raises(RootfsError, match=r"^cannot create device /dev/null: Operation not perm"):
        create_devices(fake_sys, str(root), DEFAULT_DEVICES[:1], bind_from_host=False)


def test_dev_symlinks(root: Path) -> None:
    create_dev_symlinks(str(root))
    links = {name: os.readlink(root / "dev" / name) for name in os.listdir(root / "dev")}
    assert links == {
        "fd": "/proc/self/fd",
        "stdin": "/proc/self/fd/0",
        "stdout": "/proc/self/fd/1",
        "stderr": "/proc/self/fd/2",
        "ptmx": "pts/ptmx",
    }
    assert len(DEV_SYMLINKS) == 5


def test_dev_symlinks_keep_existing_files_but_ptmx(root: Path) -> None:
    (root / "dev" / "stdin").write_text("")
    (root / "dev" / "ptmx").write_text("")  # e.g. a host ptmx node from the config
    create_dev_symlinks(str(root))
    assert (root / "dev" / "stdin").is_file()
    assert os.readlink(root / "dev" / "ptmx") == "pts/ptmx"
    assert os.readlink(root / "dev" / "stdout") == "/proc/self/fd/1"


def test_dev_symlinks_keep_existing_symlinks(root: Path) -> None:
    (root / "dev" / "fd").symlink_to("elsewhere")
    create_dev_symlinks(str(root))
    assert os.readlink(root / "dev" / "fd") == "elsewhere"
    assert not os.path.lexists(root / "dev" / "elsewhere")
    create_dev_symlinks(str(root))  # idempotent
