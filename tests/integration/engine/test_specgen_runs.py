"""Specs from `cove.engine.specgen` run for real, with cove-runtime and with runc.

Each test generates a spec for the session busybox rootfs copy (with /bin/coveprobe),
writes it into a bundle and runs it in the foreground, then checks from inside the
container what Docker's defaults promise: the 14 capabilities, masked and read-only
paths, /dev/shm of 64m, a memory limit in the container's cgroup, the default seccomp
profile, the image's own users, rlimits clamped to the host.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cove.engine.create_options import CreateOptions
from cove.engine.specgen import GeneratedSpec, generate_spec
from cove.image.image_config import ExecutionConfig
from tests.lib.bundle import Bundle
from tests.lib.runtimes import Result, Runtime

pytestmark = pytest.mark.root

RUNTIMES = ("cove", "runc")
DOCKER_DEFAULT_CAPS = 0xA80425FB  # the 14 default capabilities as a /proc/self/status mask
MiB = 1 << 20
IMAGE = ExecutionConfig(cmd=("/bin/coveprobe", "pid"))

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
alice:x:1234:1234:alice:/home/alice:/bin/sh
"""
GROUP = """\
root:x:0:
alice:x:1234:
staff:x:50:alice
audio:x:29:bob,alice
"""


class Runner:
    def __init__(self, rt: Runtime, b: Bundle) -> None:
        self.rt = rt
        self.bundle = b
        self.generated: GeneratedSpec | None = None

    @property
    def rootfs(self) -> Path:
        return self.bundle.path / "rootfs"

    def run(
        self,
        options: CreateOptions,
        image: ExecutionConfig = IMAGE,
        **kw: Any,
    ) -> Result:
        self.generated = generate_spec(
            image, options, str(self.rootfs), container_id=self.bundle.id, **kw
        )
        self.bundle.config = self.generated.spec
        return self.rt.run(self.bundle, self.bundle.id)

    def sh(self, script: str, options: CreateOptions | None = None, **kw: Any) -> str:
        options = options or CreateOptions()
        options.cmd = ["/bin/sh", "-c", script]
        return self.run(options, **kw).check().stdout


@pytest.fixture(params=RUNTIMES)
def runner(
    request: pytest.FixtureRequest,
    make_runtime: Callable[[str], Runtime],
    bundle: Callable[..., Bundle],
) -> Runner:
    name = str(request.param)
    if name == "runc" and shutil.which("runc") is None:
        pytest.skip("runc not installed")
    return Runner(make_runtime(name), bundle())


def _status(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def test_default_capabilities_are_dockers_14(runner: Runner) -> None:
    out = runner.sh("grep ^Cap /proc/self/status")
    status = _status(out)
    for key in ("CapBnd", "CapEff", "CapPrm"):
        assert int(status[key], 16) == DOCKER_DEFAULT_CAPS, (key, out)
    assert int(status["CapInh"], 16) == 0
    assert int(status["CapAmb"], 16) == 0


def test_cap_drop_all_and_add_one(runner: Runner) -> None:
    out = runner.sh(
        "grep ^CapBnd /proc/self/status", CreateOptions(cap_drop=["ALL"], cap_add=["chown"])
    )
    assert int(_status(out)["CapBnd"], 16) == 1  # CAP_CHOWN is bit 0


def test_masked_and_readonly_paths(runner: Runner) -> None:
    out = runner.sh(
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l;"
        " echo x > /proc/sys/kernel/domainname 2>/dev/null && echo sys-writable || echo sys-ro;"
        " touch /sys/coveprobe 2>/dev/null && echo sysfs-rw || echo sysfs-ro"
    )
    timer_list, firmware, proc_sys, sysfs = out.split()
    assert timer_list == "0"  # /dev/null bound over it
    assert firmware == "0"  # an empty read-only tmpfs over it
    assert proc_sys == "sys-ro"
    assert sysfs == "sysfs-ro"


def test_dev_shm_is_64m_tmpfs_and_hostname_is_short_id(runner: Runner) -> None:
    out = runner.sh("df -k /dev/shm | tail -1; hostname; echo $HOSTNAME; echo $HOME; echo $PATH")
    df, hostname, env_hostname, home, path = out.splitlines()
    assert df.split()[1] == str(64 * 1024)
    assert hostname == runner.bundle.id[:12] == env_hostname
    assert home == "/root" or home == "/"
    assert path == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_shm_size_option(runner: Runner) -> None:
    out = runner.sh("df -k /dev/shm | tail -1", CreateOptions(shm_size="16m"))
    assert out.split()[1] == str(16 * 1024)


def _cgroup_file(container_id: str, controller: str, v1_name: str, v2_name: str) -> Path:
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        return Path(f"/sys/fs/cgroup/cove/{container_id}/{v2_name}")
    return Path(f"/sys/fs/cgroup/{controller}/cove/{container_id}/{v1_name}")


def test_limits_in_the_containers_cgroup(runner: Runner) -> None:
    """Memory, pids and CPU limits land in the cgroup the spec names (read from the host
    while the container is created, before it starts)."""
    options = CreateOptions(cmd=["/bin/coveprobe", "pid"], memory="96m", pids_limit=42,
                            cpus="0.5")  # fmt: skip
    runner.generated = generate_spec(
        IMAGE, options, str(runner.rootfs), container_id=runner.bundle.id
    )
    runner.bundle.config = runner.generated.spec
    assert runner.bundle.config["linux"]["cgroupsPath"] == f"/cove/{runner.bundle.id}"
    runner.rt.create(runner.bundle, runner.bundle.id).check()
    try:
        cid = runner.bundle.id
        memory = _cgroup_file(cid, "memory", "memory.limit_in_bytes", "memory.max")
        assert int(memory.read_text()) == 96 * MiB
        assert _cgroup_file(cid, "pids", "pids.max", "pids.max").read_text().strip() == "42"
        if Path("/sys/fs/cgroup/cgroup.controllers").exists():
            cpu = _cgroup_file(cid, "cpu", "", "cpu.max").read_text().split()
            assert cpu == ["50000", "100000"]
        else:
            assert _cgroup_file(cid, "cpu", "cpu.cfs_quota_us", "").read_text().strip() == "50000"
            period = _cgroup_file(cid, "cpu", "cpu.cfs_period_us", "").read_text().strip()
            assert period == "100000"
    finally:
        runner.rt.delete(runner.bundle.id, force=True)


@pytest.mark.parametrize("call", ["unshare", "keyctl", "mount", "setns"])
def test_default_seccomp_profile_blocks(runner: Runner, call: str) -> None:
    pytest.importorskip("pyseccomp", reason="cove-runtime needs pyseccomp for seccomp")
    res = runner.run(CreateOptions(cmd=["/bin/coveprobe", "syscall", call])).check()
    assert res.stdout.strip() == "EPERM"
    assert runner.bundle.config["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"


@pytest.mark.parametrize("call", ["personality", "getcwd", "ptrace"])
def test_default_seccomp_profile_allows(runner: Runner, call: str) -> None:
    pytest.importorskip("pyseccomp", reason="cove-runtime needs pyseccomp for seccomp")
    res = runner.run(CreateOptions(cmd=["/bin/coveprobe", "syscall", call])).check()
    assert res.stdout.strip() == "ok"


def test_seccomp_unconfined_lets_keyctl_through(runner: Runner) -> None:
    res = runner.run(
        CreateOptions(
            cmd=["/bin/coveprobe", "syscall", "keyctl"], security_opt=["seccomp=unconfined"]
        )
    ).check()
    assert res.stdout.strip() != "EPERM"
    assert "seccomp" not in runner.bundle.config["linux"]


def test_cap_sys_admin_opens_the_namespace_calls(runner: Runner) -> None:
    pytest.importorskip("pyseccomp", reason="cove-runtime needs pyseccomp for seccomp")
    res = runner.run(
        CreateOptions(cmd=["/bin/coveprobe", "syscall", "setns"], cap_add=["SYS_ADMIN"])
    ).check()
    assert res.stdout.strip() == "EBADF"  # reached the kernel: fd -1


def test_user_resolved_through_the_images_passwd(runner: Runner) -> None:
    (runner.rootfs / "etc" / "passwd").write_text(PASSWD)
    (runner.rootfs / "etc" / "group").write_text(GROUP)
    res = runner.run(CreateOptions(user="alice", cmd=["/bin/coveprobe", "ids"])).check()
    ids = json.loads(res.stdout)
    assert (ids["uid"], ids["gid"], ids["euid"]) == (1234, 1234, 1234)
    assert sorted(ids["groups"]) == [29, 50]
    assert "HOME=/home/alice" in runner.bundle.config["process"]["env"]


def test_user_with_group_name(runner: Runner) -> None:
    (runner.rootfs / "etc" / "passwd").write_text(PASSWD)
    (runner.rootfs / "etc" / "group").write_text(GROUP)
    res = runner.run(CreateOptions(user="alice:staff", cmd=["/bin/coveprobe", "ids"])).check()
    ids = json.loads(res.stdout)
    assert (ids["uid"], ids["gid"]) == (1234, 50)
    assert ids["groups"] in ([], [50])


def test_rlimit_nofile_clamped_to_the_host(runner: Runner) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    res = runner.run(CreateOptions(cmd=["/bin/coveprobe", "rlimit", "NOFILE"])).check()
    limit = json.loads(res.stdout)
    expected = min(hard, 1048576) if hard != resource.RLIM_INFINITY else 1048576
    assert limit["hard"] == expected
    assert limit["soft"] == expected
    assert runner.generated is not None
    # the default is clamped silently: only an explicit --ulimit warns
    assert not any("nofile" in w for w in runner.generated.warnings)


def test_read_only_root_with_tmpfs_and_bind(runner: Runner, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello").write_text("from host\n")
    out = runner.sh(
        "touch /x 2>/dev/null && echo root-rw || echo root-ro;"
        " touch /scratch/x && echo tmpfs-rw;"
        " cat /data/hello; touch /data/y 2>/dev/null && echo bind-rw || echo bind-ro",
        CreateOptions(read_only=True, tmpfs=["/scratch:size=1m"], volumes=[f"{shared}:/data:ro"]),
    )
    assert out.splitlines() == ["root-ro", "tmpfs-rw", "from host", "bind-ro"]


def test_env_workdir_entrypoint(runner: Runner) -> None:
    image = ExecutionConfig(
        entrypoint=("/bin/sh", "-c"),
        cmd=("exit 3",),
        env=("FOO=image", "BAR=keep"),
        working_dir="/tmp",
    )
    res = runner.run(
        CreateOptions(cmd=['echo "$FOO $BAR $(pwd)"'], env=["FOO=option"]), image=image
    ).check()
    assert res.stdout.strip() == "option keep /tmp"


def test_privileged_has_every_capability_and_no_masks(runner: Runner) -> None:
    out = runner.sh(
        "grep ^CapEff /proc/self/status; wc -c < /proc/timer_list",
        CreateOptions(privileged=True),
    )
    cap_line, timer_list = out.splitlines()
    own = _status(Path("/proc/self/status").read_text())["CapBnd"]
    assert int(cap_line.split()[1], 16) == int(own, 16)
    assert int(timer_list) > 0


def test_network_none_has_only_lo(runner: Runner) -> None:
    out = runner.sh("ls /sys/class/net; cat /proc/sys/net/ipv4/ip_unprivileged_port_start")
    assert out.split() == ["lo", "0"]


def test_devices_default_and_added(runner: Runner) -> None:
    out = runner.sh(
        "head -c 4 /dev/zero | wc -c; head -c 1 /dev/full | wc -c; ls /dev/coveprobe-null",
        CreateOptions(devices=["/dev/null:/dev/coveprobe-null:rw"]),
    )
    assert out.split() == ["4", "1", "/dev/coveprobe-null"]
