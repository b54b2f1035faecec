"""explain: a runtime spec -> the shell steps that build the same container by hand.

Specs come from cove's own generator (a fake hybrid or v2 host, as in test_specgen) or are
written out by hand; the tests check which lines appear and in which order.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from cove.engine.create_options import CreateOptions
from cove.engine.explain import explain, render
from cove.engine.host_info import UNLIMITED, HostInfo
from cove.engine.specgen import DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, generate_spec
from cove.errors import InvalidSpec
from cove.image.image_config import ExecutionConfig
from cove.oci.default_spec import default_spec
from cove.runtime.capabilities import CAPABILITY_NAMES

CID = "0123456789abcdef0123456789abcdef"
SNAP = "/var/lib/cove/snapshots/7"
ROOTFS = f"{SNAP}/merged"
OVERLAY = {
    "lowerdir": "/var/lib/cove/layers/b:/var/lib/cove/layers/a",
    "upperdir": f"{SNAP}/upper",
    "workdir": f"{SNAP}/work",
    "target": ROOTFS,
}
V1_DIRS = (("cpuset", "cpuset"), ("cpu", "cpu,cpuacct"), ("cpuacct", "cpu,cpuacct"),
           ("memory", "memory"), ("devices", "devices"), ("pids", "pids"), ("blkio", "blkio"),
           ("hugetlb", "hugetlb"), ("", "unified"))  # fmt: skip
V1 = {name: f"/sys/fs/cgroup/{folder}/cove/{CID}" for name, folder in V1_DIRS}
V2 = {"": f"/sys/fs/cgroup/cove/{CID}"}
MEM_V1 = V1["memory"]
CPU_V1 = V1["cpu"]
IMAGE = ExecutionConfig(cmd=("/bin/sh",), env=("PATH=/usr/bin:/bin",))


def make_host(**changes: Any) -> HostInfo:
    host = HostInfo(
        cgroup_v2=False,
        rlimit_hard={"nofile": 20000},
        can_raise_rlimits=False,
        capabilities=CAPABILITY_NAMES,
        cpus_online={0, 1, 2, 3},
        swap_limit=True,
        hostname="thehost",
    )
    for key, value in changes.items():
        setattr(host, key, value)
    return host


@pytest.fixture
def rootfs(tmp_path: Path) -> str:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    return str(root)


def gen(rootfs: str, options: CreateOptions | None = None, **host: Any) -> dict[str, Any]:
    generated = generate_spec(
        IMAGE, options or CreateOptions(), rootfs, container_id=CID, host=make_host(**host)
    )
    spec = generated.spec
    spec["root"]["path"] = ROOTFS  # as the engine's snapshot would be
    return spec


def lines_of(
    spec: dict[str, Any],
    cgroups: dict[str, str] | None = None,
    overlay: dict[str, str] | None = OVERLAY,
) -> list[str]:
    return explain(
        spec,
        container_id=CID,
        rootfs_mount=overlay,
        cgroup_paths=V1 if cgroups is None else cgroups,
    )


def index(lines: list[str], line: str) -> int:
    assert line in lines, f"{line!r} not in:\n" + "\n".join(lines)
    return lines.index(line)


def starting(lines: list[str], prefix: str) -> list[str]:
    return [line for line in lines if line.startswith(prefix)]


def limited(rootfs: str, **host: Any) -> dict[str, Any]:
    return gen(rootfs, CreateOptions(memory="512m", cpus="1.5", pids_limit=100), **host)


def hand_spec(**linux: Any) -> dict[str, Any]:
    """A minimal hand-written spec: /bin/true in new mount and pid namespaces."""
    return {
        "ociVersion": "1.0.2",
        "root": {"path": "/srv/root"},
        "process": {"args": ["/bin/true"], "cwd": "/"},
        "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}], **linux},
    }


# --- shape ---------------------------------------------------------------------------------


def test_sections_are_numbered_in_the_runtime_order(rootfs: str) -> None:
    headings = starting(lines_of(limited(rootfs)), "# ")
    numbered = [h for h in headings if h[2:3].isdigit()]
    assert numbered == [
        "# 1. root filesystem",
        "# 2. control groups",
        "# 3. namespaces",
        "# 4. mounts, inside the new mount namespace",
        "# 5. device nodes",
        "# 6. switch to the new root",
        "# 7. kernel settings and hidden paths",
        "# 8. hostname and limits",
        "# 9. privileges",
        "# 10. the program",
    ]


def test_render_is_one_line_each() -> None:
    assert render(["# 1. a", "b", "", "c"]) == "# 1. a\nb\n\nc\n"
    assert render([]) == ""


def test_the_spec_given_is_not_changed(rootfs: str) -> None:
    spec = limited(rootfs)
    before = copy.deepcopy(spec)
    lines_of(spec)
    assert spec == before


def test_a_spec_the_runtime_could_not_read_is_refused() -> None:
    with pytest.raises(InvalidSpec):
        explain({"ociVersion": "1.0.2"}, container_id=CID, rootfs_mount=None, cgroup_paths={})


# --- 1. root filesystem --------------------------------------------------------------------


def test_the_overlay_mount_comes_first(rootfs: str) -> None:
    lines = lines_of(limited(rootfs))
    overlay = (
        "mount -t overlay overlay -o lowerdir=/var/lib/cove/layers/b:/var/lib/cove/layers/a,"
        f"upperdir={SNAP}/upper,workdir={SNAP}/work $ROOT"
    )
    assert (
        index(lines, f"ROOT={ROOTFS}") < index(lines, overlay) < index(lines, "# 2. control groups")
    )


def test_an_overlay_target_other_than_the_root_is_named(rootfs: str) -> None:
    overlay = {**OVERLAY, "target": "/mnt/elsewhere", "index": "off"}
    lines = lines_of(limited(rootfs), overlay=overlay)
    assert starting(lines, "mount -t overlay")[0].endswith(",index=off /mnt/elsewhere")


def test_without_an_overlay_the_root_folder_is_bound_onto_itself(rootfs: str) -> None:
    lines = lines_of(limited(rootfs), overlay=None)
    assert not starting(lines, "mount -t overlay")
    assert index(lines, f"ROOT={ROOTFS}") < index(lines, "mount --rbind $ROOT $ROOT")


def test_a_root_path_needing_quotes_is_quoted_everywhere() -> None:
    spec = hand_spec()
    spec["root"]["path"] = "/srv/my root"
    spec["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    lines = lines_of(spec, cgroups={}, overlay=None)
    assert "ROOT='/srv/my root'" in lines
    assert 'mount --rbind "$ROOT" "$ROOT"' in lines
    assert 'mount -t proc proc "$ROOT"/proc' in lines
    assert 'cd "$ROOT"' in lines


# --- 2. control groups, v1 -----------------------------------------------------------------


def test_v1_limits_go_to_their_controller_files(rootfs: str) -> None:
    lines = lines_of(limited(rootfs))
    mkdir = index(lines, f"mkdir -p {MEM_V1}")
    memory = index(lines, f"echo 536870912 > {MEM_V1}/memory.limit_in_bytes")
    assert (
        f"echo 1073741824 > {MEM_V1}/memory.memsw.limit_in_bytes  # memory+swap, if accounted"
        in lines
    )
    period = index(lines, f"echo 100000 > {CPU_V1}/cpu.cfs_period_us")
    quota = index(lines, f"echo 150000 > {CPU_V1}/cpu.cfs_quota_us")
    pids = index(lines, f"echo 100 > {V1['pids']}/pids.max")
    join = index(lines, f"echo $$ > {MEM_V1}/cgroup.procs")
    assert mkdir < memory < join and period < quota < join and pids < join
    assert join < index(lines, "# 3. namespaces")


def test_v1_every_folder_is_made_and_joined_once(rootfs: str) -> None:
    lines = lines_of(limited(rootfs))
    folders = list(dict.fromkeys(V1.values()))
    assert starting(lines, "mkdir -p /sys/fs/cgroup") == [f"mkdir -p {f}" for f in folders]
    assert starting(lines, "echo $$ >") == [f"echo $$ > {f}/cgroup.procs" for f in folders]


def test_v1_cpuset_is_filled_from_its_parents(rootfs: str) -> None:
    lines = lines_of(limited(rootfs))
    assert starting(lines, "cat ") == [
        "cat /sys/fs/cgroup/cpuset/cpuset.cpus > /sys/fs/cgroup/cpuset/cove/cpuset.cpus",
        "cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/cove/cpuset.mems",
        f"cat /sys/fs/cgroup/cpuset/cove/cpuset.cpus > {V1['cpuset']}/cpuset.cpus",
        f"cat /sys/fs/cgroup/cpuset/cove/cpuset.mems > {V1['cpuset']}/cpuset.mems",
    ]


def test_v1_device_rules_deny_all_then_allow_and_add_only_new_defaults(rootfs: str) -> None:
    lines = lines_of(limited(rootfs))
    path = V1["devices"]
    rules = [line for line in lines if line.startswith("echo") and "/devices." in line]
    assert rules[0] == f"echo a > {path}/devices.deny"
    assert rules[1] == f"echo 'c *:* m' > {path}/devices.allow"
    assert f"echo 'c 136:* rwm' > {path}/devices.allow" in rules
    # The runtime's defaults the spec already has are not repeated; /dev/net/tun is new.
    assert rules.count(f"echo 'c 1:3 rwm' > {path}/devices.allow") == 1
    assert rules[-1] == f"echo 'c 10:200 rwm' > {path}/devices.allow"


def test_v1_shares_reservation_blkio_and_hugepages(rootfs: str) -> None:
    spec = hand_spec(
        resources={
            "memory": {"reservation": 1 << 20, "swappiness": 10, "disableOOMKiller": True},
            "cpu": {"shares": 512, "cpus": "0-1", "mems": "0"},
            "blockIO": {
                "weight": 300,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 200}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 50}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        }
    )
    lines = lines_of(spec)
    assert f"echo 1048576 > {MEM_V1}/memory.soft_limit_in_bytes" in lines
    assert f"echo 10 > {MEM_V1}/memory.swappiness" in lines
    assert f"echo 1 > {MEM_V1}/memory.oom_control" in lines
    assert f"echo 512 > {CPU_V1}/cpu.shares" in lines
    assert f"echo 0-1 > {V1['cpuset']}/cpuset.cpus" in lines
    assert f"echo 0 > {V1['cpuset']}/cpuset.mems" in lines
    assert f"echo 300 > {V1['blkio']}/blkio.weight  # or blkio.bfq.weight" in lines
    assert f"echo '8:0 200' > {V1['blkio']}/blkio.weight_device" in lines
    assert f"echo '8:0 50' > {V1['blkio']}/blkio.throttle.write_iops_device" in lines
    assert f"echo 4194304 > {V1['hugetlb']}/hugetlb.2MB.limit_in_bytes" in lines


def test_v1_a_limit_without_its_controller_is_said_so() -> None:
    spec = hand_spec(resources={"pids": {"limit": 10}})
    lines = lines_of(spec, cgroups={"memory": MEM_V1})
    assert "# linux.resources.pids: no pids cgroup here: not applied" in lines
    assert not [line for line in lines if "pids.max" in line]


def test_no_cgroup_folders_no_cgroup_commands() -> None:
    lines = lines_of(hand_spec(), cgroups={}, overlay=None)
    assert "# no cgroup folders given: the container gets no cgroup of its own" in lines
    assert not [line for line in lines if "cgroup.procs" in line]


# --- 2. control groups, v2 -----------------------------------------------------------------


def test_v2_limits_go_to_the_unified_files(rootfs: str) -> None:
    lines = lines_of(limited(rootfs, cgroup_v2=True), cgroups=V2)
    path = V2[""]
    enable = "echo '+cpuset +cpu +memory +pids +io +hugetlb' > "
    assert starting(lines, enable) == [
        enable + "/sys/fs/cgroup/cgroup.subtree_control",
        enable + "/sys/fs/cgroup/cove/cgroup.subtree_control",
    ]
    swap = index(lines, f"echo 536870912 > {path}/memory.swap.max  # swap alone on v2")
    memory = index(lines, f"echo 536870912 > {path}/memory.max")
    assert swap < memory  # swap first, as the runtime writes them
    assert f"echo '150000 100000' > {path}/cpu.max" in lines
    assert f"echo 100 > {path}/pids.max" in lines
    v1_files = ("limit_in_bytes", "devices.allow", "cfs_quota_us")
    assert not [
        line for line in lines if line.startswith("echo") and any(f in line for f in v1_files)
    ]
    assert [line for line in lines if line.startswith("# devices: 12 rules")]
    assert starting(lines, "echo $$") == [f"echo $$ > {path}/cgroup.procs"]


def test_v2_converts_weights_and_throttles() -> None:
    spec = hand_spec(
        resources={
            "cpu": {"shares": 1024, "period": 50000},
            "memory": {"limit": -1},
            "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0,
                                                                  "rate": 1048576}]},
            "hugepageLimits": [{"pageSize": "1GB", "limit": 1 << 30}],
            "unified": {"memory.high": "1000000"},
        }
    )  # fmt: skip
    lines = lines_of(spec, cgroups=V2)
    path = V2[""]
    assert f"echo 39 > {path}/cpu.weight" in lines
    assert f"echo 'max 50000' > {path}/cpu.max" in lines
    assert f"echo max > {path}/memory.swap.max" in lines
    assert f"echo max > {path}/memory.max" in lines
    assert f"echo 500 > {path}/io.bfq.weight" in lines
    assert f"echo 'default 4950' > {path}/io.weight" in lines
    assert f"echo '8:0 rbps=1048576' > {path}/io.max" in lines
    assert f"echo 1073741824 > {path}/hugetlb.1GB.max" in lines
    assert f"echo 1000000 > {path}/memory.high" in lines


# --- 3. namespaces -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "v2", "expected"),
    [
        (CreateOptions(), False, "unshare --mount --net --uts --pid --ipc --fork"),
        (CreateOptions(), True, "unshare --mount --net --uts --pid --ipc --cgroup --fork"),
        (CreateOptions(network="host"), False, "unshare --mount --uts --pid --ipc --fork"),
    ],
)
def test_unshare_lists_exactly_the_specs_namespaces(
    rootfs: str, options: CreateOptions, v2: bool, expected: str
) -> None:
    lines = lines_of(gen(rootfs, options, cgroup_v2=v2), cgroups=V2 if v2 else V1)
    assert starting(lines, "unshare ") == [expected]
    assert not starting(lines, "nsenter")


def test_joined_namespaces_are_entered_user_first() -> None:
    spec = hand_spec()
    spec["linux"]["namespaces"] += [
        {"type": "network", "path": "/run/netns/blue"},
        {"type": "ipc", "path": "/proc/42/ns/ipc"},
    ]
    lines = lines_of(spec, cgroups={}, overlay=None)
    nsenter = index(lines, "nsenter --ipc=/proc/42/ns/ipc --net=/run/netns/blue")
    assert nsenter < index(lines, "unshare --mount --pid --fork")


def test_a_user_namespace_gets_its_id_maps_and_bound_devices() -> None:
    spec = default_spec(rootless=True)
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [
        {"containerID": 0, "hostID": 100000, "size": 1000},
        {"containerID": 1000, "hostID": 1000, "size": 1},
    ]
    lines = lines_of(spec, cgroups={}, overlay=None)
    unshare = index(lines, "unshare --pid --ipc --uts --mount --cgroup --user --fork")
    uid_map = index(lines, "echo '0 100000 65536' > /proc/PID/uid_map")
    gid_map = index(lines, "printf '%s\\n' '0 100000 1000' '1000 1000 1' > /proc/PID/gid_map")
    assert unshare < uid_map < gid_map
    assert "mount --bind /dev/null $ROOT/dev/null" in lines
    assert not starting(lines, "mknod")
    assert "mount --rbind -o nosuid,noexec,nodev,ro /sys $ROOT/sys" in lines


def test_the_container_gets_its_own_keyring(rootfs: str) -> None:
    lines = lines_of(limited(rootfs))
    assert index(lines, f"keyctl session _ses.{CID}") > index(lines, "# 3. namespaces")


# --- 4. mounts -----------------------------------------------------------------------------


def test_mounts_follow_the_spec_after_making_root_private(rootfs: str) -> None:
    lines = lines_of(limited(rootfs))
    private = index(lines, "mount --make-rprivate /")
    bind = index(lines, "mount --rbind $ROOT $ROOT")
    proc = index(lines, "mount -t proc -o nosuid,noexec,nodev proc $ROOT/proc")
    dev = index(lines, "mount -t tmpfs -o nosuid,strictatime,mode=755,size=65536k tmpfs $ROOT/dev")
    devpts = index(
        lines,
        "mount -t devpts -o nosuid,noexec,newinstance,ptmxmode=0666,mode=0620,gid=5 devpts "
        "$ROOT/dev/pts",
    )
    sysfs = index(lines, "mount -t sysfs -o nosuid,noexec,nodev,ro sysfs $ROOT/sys")
    mqueue = index(lines, "mount -t mqueue -o nosuid,noexec,nodev mqueue $ROOT/dev/mqueue")
    shm = index(
        lines, "mount -t tmpfs -o nosuid,noexec,nodev,mode=1777,size=67108864 shm $ROOT/dev/shm"
    )
    assert index(lines, "unshare --mount --net --uts --pid --ipc --fork") < private
    assert private < bind < proc < dev < devpts < sysfs < mqueue < shm


def test_binds_keep_their_options(rootfs: str, tmp_path: Path) -> None:
    source = tmp_path / "data dir"
    source.mkdir()
    spec = gen(rootfs, CreateOptions(volumes=[f"{source}:/data:ro"]))
    lines = lines_of(spec)
    assert f"mount --rbind -o ro,rprivate '{source}' $ROOT/data" in lines


def test_v1_cgroup_mount_shows_each_hierarchys_own_folder(rootfs: str) -> None:
    lines = lines_of(limited(rootfs))
    tmpfs = index(lines, "mount -t tmpfs -o nosuid,noexec,nodev,mode=755 tmpfs $ROOT/sys/fs/cgroup")
    cpu = index(
        lines, f"mount --rbind -o ro,nosuid,noexec,nodev {CPU_V1} $ROOT/sys/fs/cgroup/cpu,cpuacct"
    )
    remount = index(lines, "mount -o remount,ro $ROOT/sys/fs/cgroup")
    assert tmpfs < cpu < remount


def test_v2_with_a_cgroup_namespace_mounts_cgroup2(rootfs: str) -> None:
    lines = lines_of(limited(rootfs, cgroup_v2=True), cgroups=V2)
    assert "mount -t cgroup2 -o ro,nosuid,noexec,nodev cgroup2 $ROOT/sys/fs/cgroup" in lines
    assert "# and the cgroup namespace made next has this cgroup as its root" in lines


# --- 5 and 6. devices, pivot_root ----------------------------------------------------------


def test_devices_and_links_then_pivot_root_after_every_mount(rootfs: str) -> None:
    lines = lines_of(limited(rootfs))
    last_mount = max(
        i for i, line in enumerate(lines) if line.startswith("mount") and "$ROOT/" in line
    )
    null = index(lines, "mknod -m 666 $ROOT/dev/null c 1 3")
    tty = index(lines, "mknod -m 666 $ROOT/dev/tty c 5 0")
    ptmx = index(lines, "ln -s pts/ptmx $ROOT/dev/ptmx")
    pivot = index(lines, "pivot_root . .oldroot")
    assert last_mount < null < tty < ptmx < pivot
    assert lines[pivot - 2 : pivot + 3] == [
        "cd $ROOT", "mkdir .oldroot", "pivot_root . .oldroot", "umount -l /.oldroot",
        "rmdir /.oldroot",
    ]  # fmt: skip


def test_spec_devices_are_made_with_their_mode_and_owner() -> None:
    spec = hand_spec(
        devices=[{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229,
                  "fileMode": 0o660, "uid": 0, "gid": 6}]
    )  # fmt: skip
    lines = lines_of(spec, cgroups={}, overlay=None)
    assert "mknod -m 660 $ROOT/dev/fuse c 10 229" in lines
    assert "chown 0:6 $ROOT/dev/fuse" in lines
    assert "mknod -m 666 $ROOT/dev/null c 1 3" not in lines  # no /dev mount in this spec


# --- 7. after the switch -------------------------------------------------------------------


def test_sysctls_readonly_and_masked_paths_after_pivot_root(rootfs: str) -> None:
    lines = lines_of(limited(rootfs))
    pivot = index(lines, "pivot_root . .oldroot")
    sysctl = index(lines, "sysctl -w 'net.ipv4.ping_group_range=0 2147483647'")
    ro_line = "mount --rbind {0} {0} && mount -o remount,bind,ro {0}"
    masked_line = "mount -t tmpfs -o ro tmpfs {}  # or /dev/null for a file"
    readonly = [index(lines, ro_line.format(path)) for path in READONLY_PATHS]
    masked = [index(lines, masked_line.format(path)) for path in MASKED_PATHS]
    assert pivot < sysctl < min(readonly) and max(readonly) < min(masked)


def test_read_only_root_only_when_asked(rootfs: str) -> None:
    assert "mount -o remount,bind,ro /" not in lines_of(limited(rootfs))
    lines = lines_of(gen(rootfs, CreateOptions(read_only=True)))
    assert index(lines, "mount -o remount,bind,ro /") > index(
        lines, "mount -t tmpfs -o ro tmpfs /sys/firmware  # or /dev/null for a file"
    )


# --- 8. hostname and limits ----------------------------------------------------------------


def test_hostname_and_rlimits(rootfs: str) -> None:
    spec = gen(rootfs, CreateOptions(ulimits=["nproc=100:200"]))
    spec["process"]["rlimits"].append({"type": "RLIMIT_CORE", "soft": UNLIMITED, "hard": UNLIMITED})
    spec["process"]["oomScoreAdj"] = 500
    lines = lines_of(spec)
    hostname = index(lines, f"hostname {CID[:12]}")
    prlimit = index(
        lines, "prlimit --pid $$ --nofile=20000:20000 --nproc=100:200 --core=unlimited:unlimited"
    )
    assert hostname < prlimit < index(lines, "echo 500 > /proc/$$/oom_score_adj")


# --- 9 and 10. privileges and the program --------------------------------------------------


def test_default_capabilities_seccomp_and_user(rootfs: str) -> None:
    spec = limited(rootfs)
    lines = lines_of(spec)
    dropped = len(CAPABILITY_NAMES) - len(DEFAULT_CAPABILITIES)
    caps = ",".join(name.lower() for name in DEFAULT_CAPABILITIES)
    why = index(lines, f"# why: root here keeps 14 capabilities; {dropped} of 41 dropped")
    capsh = index(lines, f"capsh --caps={caps}=ep")
    seccomp = spec["linux"]["seccomp"]
    allowed = {
        n for r in seccomp["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]
    }
    summary = [line for line in lines if line.startswith("# seccomp: ")]
    assert summary[0].startswith(
        f"# seccomp: default SCMP_ACT_ERRNO, {len(allowed)} syscalls allowed, "
    )
    assert summary[0].endswith(f"{len(seccomp['syscalls'])} rules, arch x86_64 x86 x32")
    user = index(lines, "setpriv --reuid=0 --regid=0 --clear-groups")
    # Without no_new_privs the filter is loaded before the user switch (CAP_SYS_ADMIN).
    assert lines.index(summary[0]) < why < capsh < user
    assert "setpriv --no-new-privs" not in lines


def test_dropping_all_capabilities_and_no_new_privileges(rootfs: str) -> None:
    options = CreateOptions(
        cap_drop=["ALL"], cap_add=["NET_BIND_SERVICE"], security_opt=["no-new-privileges"]
    )
    lines = lines_of(gen(rootfs, options))
    assert "# why: root here keeps 1 capabilities; 40 of 41 dropped" in lines
    assert "capsh --caps=cap_net_bind_service=ep" in lines
    nnp = index(lines, "setpriv --no-new-privs")
    seccomp = [i for i, line in enumerate(lines) if line.startswith("# seccomp: ")]
    assert seccomp and seccomp[0] > nnp  # loaded last, after no_new_privs
    assert nnp < index(lines, "exec /bin/sh")


def test_unconfined_seccomp_and_no_capabilities_field() -> None:
    lines = lines_of(hand_spec(), cgroups={}, overlay=None)
    assert "# seccomp: none: every system call is allowed" in lines
    assert "# capabilities: none given: the process keeps all the runtime has" in lines


def test_the_program_user_umask_cwd_env_and_quoted_exec(rootfs: str) -> None:
    options = CreateOptions(
        cmd=["/bin/echo", "hello world", "it's"], user="0:0", workdir="/srv/app",
        env=["SECRET=hunter2"],
    )  # fmt: skip
    spec = gen(rootfs, options)
    spec["process"]["user"]["additionalGids"] = [10, 20]
    spec["process"]["user"]["umask"] = 0o027
    lines = lines_of(spec)
    assert "mkdir -p $ROOT/srv/app  # process.cwd, if missing" in lines
    setpriv = index(lines, "setpriv --reuid=0 --regid=0 --groups=10,20")
    umask = index(lines, "umask 0027")
    cwd = index(lines, "cd /srv/app")
    env = index(lines, "# environment: 4 variables: PATH, HOSTNAME, SECRET, HOME")
    exec_line = index(lines, "exec /bin/echo 'hello world' 'it'\"'\"'s'")
    assert setpriv < umask < cwd < env < exec_line == len(lines) - 1
    assert not [line for line in lines if "hunter2" in line]  # values stay out
