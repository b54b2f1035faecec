"""cove.runtime.rootfs: the exact mount sequence of `prepare_rootfs` and of single mounts
(`mount_entry`), checked on the recording fake. cgroup mounts are in
`test_rootfs_cgroups.py`, what follows the mounts in `test_rootfs_finalize.py`."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from cove.errors import PathEscapesRoot, RootfsError
from cove.oci.default_spec import default_spec
from cove.runtime import rootfs
from cove.runtime.cgroups.layout import parse_mountinfo
from cove.runtime.devices import DEFAULT_DEVICES, DEV_SYMLINKS
from cove.runtime.rootfs import mount_entry, prepare_rootfs, switch_root
from cove.sys import constants as c
from cove.sys.fake import RecordingSyscalls
from tests.unit.runtime.rootfs_helpers import (
    HYBRID,
    PURE_V2,
    RO,
    ConfigFactory,
    SelectiveFailure,
    mount_of,
    no_locked_flags,  # noqa: F401  (autouse)
    spec_with,
)

_real_locked_flags = rootfs._locked_flags


# --- prepare_rootfs -----------------------------------------------------------------------


def test_prepare_sequence(
    make_config: ConfigFactory, unit_bundle: Path, fake_sys: RecordingSyscalls
) -> None:
    (unit_bundle / "data").mkdir()
    (unit_bundle / "hosts").write_text("127.0.0.1 localhost\n")
    config = make_config(
        spec_with(
            [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {
                    "destination": "/tmp",
                    "type": "tmpfs",
                    "source": "tmpfs",
                    "options": ["nosuid", "nodev", "mode=1777"],
                },
                {
                    "destination": "/data",
                    "type": "none",
                    "source": "data",
                    "options": ["bind", "ro"],
                },
                {
                    "destination": "/etc/hosts",
                    "type": "bind",
                    "source": "hosts",
                    "options": ["rbind", "rslave", "private"],
                },
                {"destination": "/run", "type": "tmpfs", "options": ["size=1m"]},
            ]
        )
    )
    root = config.rootfs
    prepare_rootfs(fake_sys, config, None)
    assert fake_sys.calls == [
        ("mount", "", "/", "", c.MS_PRIVATE | c.MS_REC, ""),
        ("mount", root, root, "", c.MS_BIND | c.MS_REC, ""),
        ("mount", "proc", f"{root}/proc", "proc", 0, ""),
        ("mount", "tmpfs", f"{root}/tmp", "tmpfs", c.MS_NOSUID | c.MS_NODEV, "mode=1777"),
        ("mount", f"{unit_bundle}/data", f"{root}/data", "", c.MS_BIND, ""),
        ("mount", "", f"{root}/data", "", c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY, ""),
        ("mount", f"{unit_bundle}/hosts", f"{root}/etc/hosts", "", c.MS_BIND | c.MS_REC, ""),
        ("mount", "", f"{root}/etc/hosts", "", c.MS_SLAVE | c.MS_REC, ""),
        ("mount", "", f"{root}/etc/hosts", "", c.MS_PRIVATE, ""),
        ("mount", "tmpfs", f"{root}/run", "tmpfs", 0, "size=1m"),
    ]
    # mount points were made inside the rootfs: directories, and a file for a file bind
    for name in ("proc", "tmp", "data", "run"):
        assert os.path.isdir(f"{root}/{name}")
    assert os.path.isfile(f"{root}/etc/hosts")
    # no /dev mount: no device nodes, no symlinks
    assert not os.path.exists(f"{root}/dev")


def test_rootfs_propagation_is_the_first_mount(
    make_config: ConfigFactory, fake_sys: RecordingSyscalls
) -> None:
    config = make_config(spec_with([], rootfsPropagation="rshared"))
    prepare_rootfs(fake_sys, config, None)
    assert fake_sys.calls[0] == ("mount", "", "/", "", c.MS_SHARED | c.MS_REC, "")
    # pivot_root needs the rootfs's parent mount private: made so before the self-bind.
    assert fake_sys.calls[1][0] == "mount" and fake_sys.calls[1][4] == c.MS_PRIVATE
    assert config.rootfs.startswith(str(fake_sys.calls[1][2]).rstrip("/") + "/")
    assert fake_sys.calls[2][4] == c.MS_BIND | c.MS_REC
    assert len(fake_sys.calls) == 3


def test_shared_propagation_is_applied_again_after_pivot(
    fake_sys: RecordingSyscalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "open", lambda *a, **k: 99)
    monkeypatch.setattr(os, "close", lambda fd: None)
    monkeypatch.setattr(os, "chdir", lambda path: None)
    monkeypatch.setattr(os, "fchdir", lambda fd: None)
    switch_root(fake_sys, "/rootfs", no_pivot=False, propagation=c.MS_SHARED | c.MS_REC)
    assert fake_sys.calls[-1] == ("mount", "", "/", "", c.MS_SHARED | c.MS_REC, "")


@pytest.mark.parametrize(
    ("options", "bind", "remount"),
    [
        (["bind", "ro"], c.MS_BIND, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY),
        (["rbind", "ro"], c.MS_BIND | c.MS_REC, c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY),
        (
            ["rbind", "nosuid", "nodev", "ro"],
            c.MS_BIND | c.MS_REC,
            c.MS_BIND | c.MS_REMOUNT | c.MS_NOSUID | c.MS_NODEV | c.MS_RDONLY,
        ),
        (["bind"], c.MS_BIND, None),
        (["rbind", "rw"], c.MS_BIND | c.MS_REC, None),
    ],
)
def test_bind_then_remount_for_flags(
    make_config: ConfigFactory,
    unit_bundle: Path,
    fake_sys: RecordingSyscalls,
    options: list[str],
    bind: int,
    remount: int | None,
) -> None:
    (unit_bundle / "src").mkdir()
    config = make_config(
        spec_with([{"destination": "/mnt", "type": "none", "source": "src", "options": options}])
    )
    mount_entry(fake_sys, config, config.mounts[0], None)
    target = f"{config.rootfs}/mnt"
    expected: list[tuple[object, ...]] = [("mount", f"{unit_bundle}/src", target, "", bind, "")]
    if remount is not None:
        expected.append(("mount", "", target, "", remount, ""))
    assert fake_sys.calls == expected


def test_remount_repeats_locked_flags(
    make_config: ConfigFactory,
    unit_bundle: Path,
    fake_sys: RecordingSyscalls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rootfs, "_locked_flags", _real_locked_flags)

    class FakeStatvfs:
        f_flag = os.ST_NOSUID | os.ST_NODEV

    monkeypatch.setattr(rootfs.os, "statvfs", lambda path: FakeStatvfs())
    (unit_bundle / "src").mkdir()
    config = make_config(
        spec_with([{"destination": "/m", "type": "bind", "source": "src", "options": ["ro"]}])
    )
    mount_entry(fake_sys, config, config.mounts[0], None)
    assert fake_sys.calls[-1] == (
        "mount",
        "",
        f"{config.rootfs}/m",
        "",
        c.MS_BIND | c.MS_REMOUNT | c.MS_RDONLY | c.MS_NOSUID | c.MS_NODEV,
        "",
    )


def test_locked_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeStatvfs:
        f_flag = os.ST_NOSUID | os.ST_NODEV | os.ST_NOEXEC | os.ST_RDONLY

    monkeypatch.setattr(rootfs.os, "statvfs", lambda path: FakeStatvfs())
    # read-only is not carried over: the mount's own options decide it
    assert _real_locked_flags("/x") == c.MS_NOSUID | c.MS_NODEV | c.MS_NOEXEC

    def missing(path: str) -> None:
        raise FileNotFoundError(path)

    monkeypatch.setattr(rootfs.os, "statvfs", missing)
    assert _real_locked_flags("/x") == 0


def test_hostile_destination_symlink_stays_inside(
    make_config: ConfigFactory, unit_bundle: Path, fake_sys: RecordingSyscalls
) -> None:
    root = unit_bundle / "rootfs"
    (root / "data").symlink_to("/etc")  # the host's /etc, if followed naively
    (unit_bundle / "passwd").write_text("hostile\n")
    config = make_config(
        spec_with(
            [
                {"destination": "/data", "type": "tmpfs", "source": "tmpfs"},
                {"destination": "/data/passwd", "type": "bind", "source": "passwd"},
            ]
        )
    )
    prepare_rootfs(fake_sys, config, None)
    assert fake_sys.calls[2] == ("mount", "tmpfs", f"{config.rootfs}/etc", "tmpfs", 0, "")
    assert fake_sys.calls[3][2] == f"{config.rootfs}/etc/passwd"
    for call in fake_sys.calls[1:]:
        assert str(call[2]).startswith(config.rootfs + "/") or call[2] == config.rootfs
    assert (root / "etc").is_dir()
    assert (root / "etc" / "passwd").is_file()


@pytest.mark.parametrize(
    ("link", "destination"),
    [("../../../../../../etc", "/data"), ("/", "/data/../../tmp"), ("", "/../escape")],
)
def test_destination_climbing_out_is_refused(
    make_config: ConfigFactory,
    unit_bundle: Path,
    fake_sys: RecordingSyscalls,
    link: str,
    destination: str,
) -> None:
    if link:
        (unit_bundle / "rootfs" / "data").symlink_to(link)
    config = make_config(spec_with([{"destination": destination, "type": "tmpfs"}]))
    with pytest.raises(PathEscapesRoot):
        prepare_rootfs(fake_sys, config, None)
    assert [call[2] for call in fake_sys.calls] == ["/", config.rootfs]  # nothing mounted
    assert not (unit_bundle / "escape").exists()


def test_sysfs_eperm_falls_back_to_binding_host_sys(make_config: ConfigFactory) -> None:
    fake = SelectiveFailure(lambda source, target, fstype: fstype == "sysfs", errno.EPERM)
    config = make_config(default_spec())
    entry = mount_of(config, "/sys")
    mount_entry(fake, config, entry, None)
    target = f"{config.rootfs}/sys"
    assert fake.calls == [
        ("mount", "sysfs", target, "sysfs", RO, ""),
        ("mount", "/sys", target, "", c.MS_BIND | c.MS_REC, ""),
        ("mount", "", target, "", c.MS_BIND | c.MS_REMOUNT | RO, ""),
    ]


def test_sysfs_other_errors_are_not_hidden(make_config: ConfigFactory) -> None:
    fake = SelectiveFailure(lambda source, target, fstype: fstype == "sysfs", errno.EACCES)
    config = make_config(default_spec())
    with pytest.raises(RootfsError, match=r"^mount /sys: "):
        mount_entry(fake, config, mount_of(config, "/sys"), None)
    assert len(fake.calls) == 1


def test_other_fs_eperm_is_an_error(make_config: ConfigFactory) -> None:
    fake = SelectiveFailure(lambda source, target, fstype: fstype == "proc", errno.EPERM)
    config = make_config(default_spec())
    with pytest.raises(RootfsError, match=r"^mount /proc: "):
        mount_entry(fake, config, mount_of(config, "/proc"), None)


def test_failing_bind_names_source_and_target(
    make_config: ConfigFactory, unit_bundle: Path
) -> None:
    (unit_bundle / "src").mkdir()
    config = make_config(spec_with([{"destination": "/m", "type": "bind", "source": "src"}]))
    fake = RecordingSyscalls(fail_on={"mount": errno.EINVAL})
    with pytest.raises(RootfsError, match=f"^bind mount {unit_bundle}/src on {config.rootfs}/m:"):
        mount_entry(fake, config, config.mounts[0], None)


def test_failing_first_mount_stops_everything(make_config: ConfigFactory) -> None:
    fake = RecordingSyscalls(fail_on={"mount": errno.EPERM})
    with pytest.raises(RootfsError, match="rootfsPropagation") as info:
        prepare_rootfs(fake, make_config(default_spec()), None)
    assert "injected failure" in str(info.value)
    assert len(fake.calls) == 1


def test_rootless_default_spec_full_sequence(make_config: ConfigFactory) -> None:
    config = make_config(default_spec(rootless=True))
    fake = RecordingSyscalls()
    prepare_rootfs(fake, config, parse_mountinfo(HYBRID))
    r = config.rootfs
    cg = f"{r}/sys/fs/cgroup"
    cg_flags = RO | c.MS_RELATIME
    cg_rw = cg_flags & ~c.MS_RDONLY
    remount = c.MS_BIND | c.MS_REMOUNT | cg_flags
    assert fake.calls == [
        ("mount", "", "/", "", c.MS_PRIVATE | c.MS_REC, ""),
        ("mount", r, r, "", c.MS_BIND | c.MS_REC, ""),
        ("mount", "proc", f"{r}/proc", "proc", 0, ""),
        (
            "mount",
            "tmpfs",
            f"{r}/dev",
            "tmpfs",
            c.MS_NOSUID | c.MS_STRICTATIME,
            "mode=755,size=65536k",
        ),
        (
            "mount",
            "devpts",
            f"{r}/dev/pts",
            "devpts",
            c.MS_NOSUID | c.MS_NOEXEC,
            "newinstance,ptmxmode=0666,mode=0620",
        ),
        ("mount", "shm", f"{r}/dev/shm", "tmpfs", RO & ~c.MS_RDONLY, "mode=1777,size=65536k"),
        ("mount", "mqueue", f"{r}/dev/mqueue", "mqueue", RO & ~c.MS_RDONLY, ""),
        ("mount", "/sys", f"{r}/sys", "", c.MS_BIND | c.MS_REC, ""),
        ("mount", "", f"{r}/sys", "", c.MS_BIND | c.MS_REMOUNT | RO, ""),
        ("mount", "tmpfs", cg, "tmpfs", cg_rw, "mode=755"),
        ("mount", "cgroup", f"{cg}/cpu", "cgroup", cg_flags, "cpu"),
        ("mount", "", f"{cg}/cpu", "", remount, ""),
        ("mount", "cgroup", f"{cg}/memory", "cgroup", cg_flags, "memory"),
        ("mount", "", f"{cg}/memory", "", remount, ""),
        ("mount", "cgroup", f"{cg}/systemd", "cgroup", cg_flags, "name=systemd"),
        ("mount", "", f"{cg}/systemd", "", remount, ""),
        ("mount", "cgroup2", f"{cg}/unified", "cgroup2", cg_flags, ""),
        ("mount", "", f"{cg}/unified", "", remount, ""),
        ("mount", "", cg, "", c.MS_REMOUNT | cg_rw | c.MS_RDONLY, "mode=755"),
        *[("mount", d.path, f"{r}{d.path}", "bind", c.MS_BIND, "") for d in DEFAULT_DEVICES],
    ]
    for target, link in DEV_SYMLINKS:
        assert os.readlink(f"{r}{link}") == target


def test_spec_devices_are_created_after_the_defaults(make_config: ConfigFactory) -> None:
    data = default_spec(rootless=True)
    data["mounts"] = [m for m in data["mounts"] if m["type"] != "cgroup"]
    data["linux"]["devices"] = [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229}]
    config = make_config(data)
    fake = RecordingSyscalls()
    prepare_rootfs(fake, config, None)
    assert fake.calls[-1] == (
        "mount",
        "/dev/fuse",
        f"{config.rootfs}/dev/fuse",
        "bind",
        c.MS_BIND,
        "",
    )
    assert fake.calls[-2][1] == DEFAULT_DEVICES[-1].path


def test_missing_cwd_is_created_inside(make_config: ConfigFactory, unit_bundle: Path) -> None:
    root = unit_bundle / "rootfs"
    (root / "work").symlink_to("/srv")
    data = spec_with([])
    data["process"]["cwd"] = "/work/app"
    prepare_rootfs(RecordingSyscalls(), make_config(data), None)
    assert (root / "srv" / "app").is_dir()


def test_existing_cwd_is_left_alone(make_config: ConfigFactory, unit_bundle: Path) -> None:
    root = unit_bundle / "rootfs"
    (root / "home").write_text("a file, not a dir")
    data = spec_with([])
    data["process"]["cwd"] = "/home"
    prepare_rootfs(RecordingSyscalls(), make_config(data), None)
    assert (root / "home").read_text() == "a file, not a dir"


@pytest.mark.parametrize(("rootless", "hint"), [(True, True), (False, False)])
def test_rootfs_self_bind_failure(make_config: ConfigFactory, rootless: bool, hint: bool) -> None:
    data = default_spec(rootless=rootless)
    data["mounts"] = []
    config = make_config(data)
    fake = SelectiveFailure(lambda source, target, fstype: source == config.rootfs, errno.EACCES)
    with pytest.raises(RootfsError) as info:
        prepare_rootfs(fake, config, None)
    message = str(info.value)
    assert message.startswith(f"root.path: cannot use {config.rootfs}: Permission denied")
    assert ("check the permissions of its parent folders" in message) is hint
    assert len(fake.calls) == 2


def test_before_cgroup_runs_just_before_each_cgroup_mount(make_config: ConfigFactory) -> None:
    data = default_spec(rootless=True)
    data["mounts"].append(dict(data["mounts"][-1], destination="/cg2"))
    config = make_config(data)
    fake = RecordingSyscalls()
    prepare_rootfs(
        fake, config, parse_mountinfo(PURE_V2), lambda: fake.calls.append(("before_cgroup",))
    )
    markers = [i for i, call in enumerate(fake.calls) if call == ("before_cgroup",)]
    assert len(markers) == 2
    for index in markers:
        assert fake.calls[index + 1][3] == "cgroup2"
    assert fake.calls[markers[0] - 1][2] == f"{config.rootfs}/sys"  # after the /sys remount


def test_before_cgroup_not_called_without_cgroup_mounts(make_config: ConfigFactory) -> None:
    called: list[bool] = []
    prepare_rootfs(
        RecordingSyscalls(), make_config(spec_with([])), None, lambda: called.append(True)
    )
    assert called == []
