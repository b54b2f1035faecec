"""cove.runtime.rootfs: the cgroup mounts (/sys/fs/cgroup) with and without a cgroup
namespace, on hybrid and pure v2 layouts, checked on the recording fake."""

from __future__ import annotations

import errno
import os

import pytest

from cove.errors import RootfsError
from cove.oci.default_spec import default_spec
from cove.runtime.cgroups.layout import Layout, parse_mountinfo
from cove.runtime.config import ContainerConfig
from cove.runtime.rootfs import mount_entry
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
)

# --- cgroup mounts ------------------------------------------------------------------------


def cgroup_config(make_config: ConfigFactory, own_namespace: bool) -> ContainerConfig:
    data = default_spec()
    if not own_namespace:
        data["linux"]["namespaces"] = [
            ns for ns in data["linux"]["namespaces"] if ns["type"] != "cgroup"
        ]
    return make_config(data)


@pytest.mark.parametrize("layout", [None, Layout(())])
def test_cgroup_mount_needs_a_hierarchy(
    make_config: ConfigFactory, fake_sys: RecordingSyscalls, layout: Layout | None
) -> None:
    config = cgroup_config(make_config, True)
    with pytest.raises(RootfsError, match=r"^mount /sys/fs/cgroup: the host has no cgroup"):
        mount_entry(fake_sys, config, mount_of(config, "/sys/fs/cgroup"), layout)


def test_cgroup_without_namespace_binds_each_hierarchy(
    make_config: ConfigFactory, fake_sys: RecordingSyscalls
) -> None:
    """A tmpfs, then each hierarchy bound (the container's own cgroup folder when it
    exists; here, with no such folder, the hierarchy itself), then the tmpfs made ro."""
    config = cgroup_config(make_config, False)
    layout = parse_mountinfo(HYBRID)
    mount_entry(fake_sys, config, mount_of(config, "/sys/fs/cgroup"), layout)
    target = f"{config.rootfs}/sys/fs/cgroup"
    assert fake_sys.calls[0][:4] == ("mount", "tmpfs", target, "tmpfs")
    binds = [call for call in fake_sys.calls if call[4] == c.MS_BIND | c.MS_REC]
    assert [call[1] for call in binds] == [h.mountpoint for h in layout.hierarchies]
    assert [call[2] for call in binds] == [
        f"{target}/{h.mountpoint.rsplit('/', 1)[1]}" for h in layout.hierarchies
    ]
    assert fake_sys.calls[-1][2] == target and fake_sys.calls[-1][4] & c.MS_RDONLY


def test_cgroup_v2_with_namespace_is_one_mount(
    make_config: ConfigFactory, fake_sys: RecordingSyscalls
) -> None:
    config = cgroup_config(make_config, True)
    mount_entry(fake_sys, config, mount_of(config, "/sys/fs/cgroup"), parse_mountinfo(PURE_V2))
    assert fake_sys.calls == [
        ("mount", "cgroup2", f"{config.rootfs}/sys/fs/cgroup", "cgroup2", RO | c.MS_RELATIME, "")
    ]


def test_cgroup_v1_read_write_has_no_final_remount(
    make_config: ConfigFactory, fake_sys: RecordingSyscalls
) -> None:
    data = default_spec()
    data["mounts"][-1]["options"] = ["nosuid"]
    config = make_config(data)
    mount_entry(fake_sys, config, mount_of(config, "/sys/fs/cgroup"), parse_mountinfo(HYBRID))
    assert fake_sys.calls[0][3] == "tmpfs"
    assert len(fake_sys.calls) == 1 + 2 * 4
    assert all(not call[4] & c.MS_RDONLY for call in fake_sys.calls)
    assert os.path.isdir(f"{config.rootfs}/sys/fs/cgroup/unified")


def test_cgroup_mount_failure_is_a_rootfs_error(make_config: ConfigFactory) -> None:
    fake = SelectiveFailure(lambda source, target, fstype: fstype == "cgroup", errno.EBUSY)
    config = cgroup_config(make_config, True)
    with pytest.raises(RootfsError, match=r"^mount /sys/fs/cgroup: "):
        mount_entry(fake, config, mount_of(config, "/sys/fs/cgroup"), parse_mountinfo(HYBRID))
