"""cove.runtime.cgroups.layout: the host's cgroup hierarchies from mountinfo."""

from __future__ import annotations

from cove.runtime.cgroups.layout import HYBRID, V1, V2, Hierarchy, Layout, parse_mountinfo

NOISE = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
24 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
"""

# As this machine: v1 controllers plus cgroup2 at /sys/fs/cgroup/unified, no optional fields.
HYBRID_HOST = (
    NOISE
    + """\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
)

# A systemd v1 host (CentOS 7 style): optional fields, co-mounted controllers, extra options.
PURE_V1 = """\
25 18 0:21 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:22 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup \
rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:25 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup \
cgroup rw,cpuacct,cpu
30 25 0:26 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:14 master:3 - cgroup \
cgroup rw,cpuset,clone_children
31 25 0:27 / /sys/fs/cgroup/pids ro,nosuid - cgroup cgroup ro,pids
"""

PURE_V2 = NOISE.replace(
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n",
    "31 23 0:28 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n",
)


def test_pure_v1() -> None:
    layout = parse_mountinfo(PURE_V1)
    assert layout.hierarchies == (
        Hierarchy("/sys/fs/cgroup/systemd", 1, ("xattr", "name=systemd")),
        Hierarchy("/sys/fs/cgroup/cpu,cpuacct", 1, ("cpuacct", "cpu")),
        Hierarchy("/sys/fs/cgroup/cpuset", 1, ("cpuset",)),
        Hierarchy("/sys/fs/cgroup/pids", 1, ("pids",)),
    )
    assert layout.mode == V1
    assert layout.unified is None
    assert layout.hierarchies[1].fs_data == "cpuacct,cpu"


def test_pure_v2() -> None:
    layout = parse_mountinfo(PURE_V2)
    assert layout.hierarchies == (Hierarchy("/sys/fs/cgroup", 2, ()),)
    assert layout.mode == V2
    assert layout.unified == Hierarchy("/sys/fs/cgroup", 2, ())
    assert layout.unified.fs_data == ""


def test_hybrid_as_this_host() -> None:
    layout = parse_mountinfo(HYBRID_HOST)
    assert [h.mountpoint for h in layout.hierarchies] == [
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/cpuacct",
        "/sys/fs/cgroup/cpuset",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/systemd",
        "/sys/fs/cgroup/unified",
    ]
    assert [h.version for h in layout.hierarchies] == [1, 1, 1, 1, 1, 2]
    assert layout.hierarchies[4].options == ("name=systemd",)
    assert layout.mode == HYBRID
    assert layout.unified is not None
    assert layout.unified.mountpoint == "/sys/fs/cgroup/unified"


def test_escaped_mountpoints() -> None:
    text = (
        "40 31 0:40 / /cg/with\\040space rw - cgroup cgroup rw,memory\n"
        "41 31 0:41 / /cg/tab\\011and\\134backslash rw - cgroup2 cgroup2 rw\n"
    )
    layout = parse_mountinfo(text)
    assert [h.mountpoint for h in layout.hierarchies] == [
        "/cg/with space",
        "/cg/tab\tand\\backslash",
    ]


def test_first_mount_of_a_mountpoint_wins_and_garbage_is_skipped() -> None:
    text = (
        "garbage\n"
        "\n"
        "1 2 3 4 - cgroup\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
        "33 31 0:30 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpuacct\n"
    )
    assert parse_mountinfo(text).hierarchies == (Hierarchy("/sys/fs/cgroup/cpu", 1, ("cpu",)),)


def test_no_cgroups() -> None:
    layout = parse_mountinfo(NOISE)
    assert layout.hierarchies == ()
    assert layout.unified is None


def test_mode_from_versions() -> None:
    v1 = Hierarchy("/a", 1, ("cpu",))
    v2 = Hierarchy("/b", 2, ())
    assert Layout((v1,)).mode == V1
    assert Layout((v2,)).mode == V2
    assert Layout((v1, v2)).mode == HYBRID
    assert Layout((v2, v1)).mode == HYBRID
