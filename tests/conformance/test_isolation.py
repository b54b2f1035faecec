"""What the container process sees: namespaces, mounts, masking, rlimits, user, env.

Every test runs against cove, runc and crun through the `runtime` fixture.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.lib.bundle import Bundle
from tests.lib.probe import host_namespaces, key_values, last_json, probe_json
from tests.lib.runtimes import Runtime

pytestmark = pytest.mark.root

BundleFactory = Callable[..., Bundle]

# capability bits of the reference default set: CAP_KILL, CAP_NET_BIND_SERVICE, CAP_AUDIT_WRITE
DEFAULT_CAPS = (1 << 5) | (1 << 10) | (1 << 29)


def run_ok(runtime: Runtime, b: Bundle) -> str:
    res = runtime.run(b, b.id)
    res.check()
    return res.stdout


# -- namespaces ---------------------------------------------------------------
def test_pid_one(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("pid")
    assert probe_json(runtime.run(b, b.id)) == {"pid": 1, "ppid": 0}


def test_hostname_from_config(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.config["hostname"] = "cove-box"
    b.shell("hostname; cat /proc/sys/kernel/hostname")
    assert run_ok(runtime, b).split() == ["cove-box", "cove-box"]


def test_network_namespace_has_only_loopback(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.set_args("/bin/cat", "/proc/net/dev")
    lines = run_ok(runtime, b).splitlines()[2:]  # two header lines
    interfaces = {line.split(":", 1)[0].strip() for line in lines if ":" in line}
    assert interfaces == {"lo"}


def test_namespaces_differ_from_host(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.add_namespace("cgroup")
    names = ("cgroup", "ipc", "mnt", "net", "pid", "uts", "user")
    b.shell("; ".join(f"echo {ns}=$(readlink /proc/self/ns/{ns})" for ns in names))
    inside = key_values(run_ok(runtime, b))
    host = host_namespaces(names)
    for ns in ("cgroup", "ipc", "mnt", "net", "pid", "uts"):
        assert inside[ns].startswith(f"{ns}:["), inside
        assert inside[ns] != host[ns], f"{ns} namespace is the host's"
    # no user namespace was asked for
    assert inside["user"] == host["user"]


def test_host_mounts_invisible(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.add_mount("/tmp", "tmpfs", "tmpfs", ["nosuid", "nodev", "mode=1777"])
    b.set_args("/bin/cat", "/proc/self/mounts")
    text = run_ok(runtime, b)
    mountpoints = [line.split()[1] for line in text.splitlines()]
    assert mountpoints[0] == "/"
    allowed = ["/proc", "/dev", "/sys", "/tmp"]
    for mp in mountpoints[1:]:
        assert any(mp == a or mp.startswith(a + "/") for a in allowed), (mp, text)
    assert str(b.path) not in text
    assert "/work" not in mountpoints
    assert "/tmp" in mountpoints


def test_host_root_not_reachable(runtime: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    marker = tmp_path / f"host-marker-{uuid.uuid4().hex}"
    marker.write_text("host\n")
    b = bundle()
    b.shell(f"test -e {marker} && echo visible || echo invisible; ls /")
    out = run_ok(runtime, b).split()
    assert out[0] == "invisible"
    assert "coveprobe" not in out  # ls / lists the rootfs top level
    assert {"bin", "etc", "proc", "tmp"} <= set(out[1:])


def test_chroot_escape_contained(runtime: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    """The classic chroot("subdir") + chdir("..")* breakout must end in the container root."""
    marker = tmp_path / f"escape-marker-{uuid.uuid4().hex}"
    marker.write_text("outside\n")
    b = bundle()
    b.add_capability("CAP_SYS_CHROOT")
    b.probe("chroot-escape", str(marker))
    assert run_ok(runtime, b).strip() == "contained"


# -- mounts and path protection ------------------------------------------------
def test_masked_paths(runtime: Runtime, bundle: BundleFactory) -> None:
    """Masked files read as empty (/dev/null), masked dirs are empty and read-only."""
    b = bundle()
    (b.rootfs / "etc" / "secret").write_text("do not read\n")
    private = b.rootfs / "srv" / "private"
    private.mkdir(parents=True)
    (private / "file").write_text("hidden\n")
    masked = b.linux.setdefault("maskedPaths", [])
    masked += ["/etc/secret", "/srv/private"]
    # host files of the reference list that exist here, the proof that masking matters
    files = [f for f in ("/proc/timer_list", "/proc/keys", "/proc/kcore") if Path(f).exists()]
    dirs = [d for d in ("/proc/acpi", "/sys/firmware") if Path(d).is_dir()]
    assert set(files + dirs) <= set(masked)
    b.shell(
        f"for f in {' '.join([*files, '/etc/secret'])}; do"
        ' echo "$f=$(coveprobe read $f)"; done;'
        f" for d in {' '.join([*dirs, '/srv/private'])}; do"
        ' echo "$d=$(ls -A $d | wc -l)"; done;'
        ' echo "write=$(coveprobe write /srv/private/new)"'
    )
    got = key_values(run_ok(runtime, b))
    for f in [*files, "/etc/secret"]:
        assert got[f] == "ok 0", (f, got)
    for d in [*dirs, "/srv/private"]:
        assert got[d] == "0", (d, got)
    assert got["write"] == "EROFS"
    # the rootfs itself is untouched
    assert (b.rootfs / "etc" / "secret").read_text() == "do not read\n"


def test_readonly_paths(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    (b.rootfs / "srv" / "ro").mkdir(parents=True)
    (b.rootfs / "srv" / "ro" / "file").write_text("keep\n")
    b.linux.setdefault("readonlyPaths", []).append("/srv/ro")
    # ip_forward only takes numbers: if /proc/sys were writable the write would fail
    # with EINVAL, never change anything
    b.shell(
        'echo "procsys=$(coveprobe write /proc/sys/net/ipv4/ip_forward)";'
        ' echo "procsys-read=$(coveprobe read /proc/sys/net/ipv4/ip_forward)";'
        ' echo "srv=$(coveprobe write /srv/ro/file)";'
        ' echo "srv-new=$(coveprobe write /srv/ro/new)";'
        ' echo "srv-read=$(coveprobe read /srv/ro/file)"'
    )
    got = key_values(run_ok(runtime, b))
    assert got["procsys"] == "EROFS"
    assert got["procsys-read"] == "ok 2"
    assert got["srv"] == "EROFS"
    assert got["srv-new"] == "EROFS"
    assert got["srv-read"] == "ok 5"


def test_readonly_root_with_writable_tmpfs(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.config["root"]["readonly"] = True
    b.add_mount("/tmp", "tmpfs", "tmpfs", ["nosuid", "nodev", "mode=1777", "size=1m"])
    b.shell(
        'echo "root=$(coveprobe write /newfile)";'
        ' echo "etc=$(coveprobe write /etc/passwd)";'
        ' echo "tmp=$(coveprobe write /tmp/newfile)"'
    )
    got = key_values(run_ok(runtime, b))
    assert got == {"root": "EROFS", "etc": "EROFS", "tmp": "ok"}
    assert not (b.rootfs / "newfile").exists()
    assert not (b.rootfs / "tmp" / "newfile").exists()  # went to the tmpfs


def test_writable_root_by_default(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("write", "/created-inside")
    assert run_ok(runtime, b).strip() == "ok"
    assert (b.rootfs / "created-inside").read_text() == "coveprobe\n"


def test_bind_mount_from_host(runtime: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from host\n")
    b = bundle()
    (b.rootfs / "mnt").mkdir()
    b.add_mount("/mnt", "bind", str(shared), ["rbind", "rw"])
    b.shell("cat /mnt/in; echo from container > /mnt/out")
    assert run_ok(runtime, b) == "from host\n"
    assert (shared / "out").read_text() == "from container\n"


def test_readonly_bind_mount(runtime: Runtime, bundle: BundleFactory, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    b = bundle()
    (b.rootfs / "mnt").mkdir()
    b.add_mount("/mnt", "bind", str(shared), ["rbind", "ro"])
    b.probe("write", "/mnt/out")
    assert run_ok(runtime, b).strip() == "EROFS"
    assert not (shared / "out").exists()


# -- process attributes --------------------------------------------------------
def test_rlimits(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.set_rlimit("RLIMIT_NOFILE", 1024, 1024)
    b.set_rlimit("RLIMIT_CORE", 4096, 8192)
    b.set_rlimit("RLIMIT_NPROC", 3000, 4000)
    b.shell("for r in NOFILE CORE NPROC; do coveprobe rlimit $r; done")
    got = {d["name"]: (d["soft"], d["hard"]) for d in map(json.loads, run_ok(runtime, b).split())}
    assert got == {"NOFILE": (1024, 1024), "CORE": (4096, 8192), "NPROC": (3000, 4000)}


def test_user_and_additional_gids(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [10, 100]}
    b.probe("ids")
    ids = probe_json(runtime.run(b, b.id))
    assert (ids["uid"], ids["euid"], ids["gid"], ids["egid"]) == (1000, 1000, 1000, 1000)
    assert sorted(ids["groups"]) == [10, 100]


def test_user_cannot_write_root_owned(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.shell(
        'echo "etc=$(coveprobe write /etc/passwd)";'
        ' echo "rootdir=$(coveprobe read /root/x)";'
        ' echo "tmp=$(coveprobe write /tmp/mine)"'
    )
    got = key_values(run_ok(runtime, b))
    assert got == {"etc": "EACCES", "rootdir": "EACCES", "tmp": "ok"}
    assert (b.rootfs / "tmp" / "mine").stat().st_uid == 1000


def test_cwd(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    (b.rootfs / "srv" / "work").mkdir(parents=True)
    b.process["cwd"] = "/srv/work"
    b.probe("cwd")
    assert probe_json(runtime.run(b, b.id)) == {"cwd": "/srv/work"}


def test_cwd_created_when_missing(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["cwd"] = "/does/not/exist"
    b.probe("cwd")
    assert probe_json(runtime.run(b, b.id)) == {"cwd": "/does/not/exist"}


def test_no_supplementary_groups_by_default(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.probe("ids")
    assert probe_json(runtime.run(b, b.id))["groups"] == []


def test_env(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["env"] = ["PATH=/bin", "GREETING=hello world", "EMPTY="]
    b.set_args("/bin/env")
    env = run_ok(runtime, b).splitlines()
    assert "GREETING=hello world" in env
    assert "EMPTY=" in env
    assert "PATH=/bin" in env


def test_args_resolved_through_path(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["env"] = ["PATH=/bin"]
    b.set_args("coveprobe", "exit", "5")
    assert runtime.run(b, b.id).returncode == 5


@pytest.mark.parametrize("nnp", [True, False])
def test_no_new_privileges(runtime: Runtime, bundle: BundleFactory, nnp: bool) -> None:
    b = bundle()
    b.process["noNewPrivileges"] = nnp
    b.probe("nnp")
    assert probe_json(runtime.run(b, b.id)) == {"no_new_privs": int(nnp)}


def test_default_umask(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("umask")
    assert probe_json(runtime.run(b, b.id)) == {"umask": "0022"}


def test_umask_from_config(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["user"] = {"uid": 0, "gid": 0, "umask": 0o077}
    b.shell("coveprobe umask; coveprobe write /tmp/f >/dev/null; stat -c %a /tmp/f")
    lines = run_ok(runtime, b).split()
    assert json.loads(lines[0]) == {"umask": "0077"}
    assert lines[1] == "600"


def test_default_capabilities(runtime: Runtime, bundle: BundleFactory) -> None:
    """The reference default capability set: KILL, NET_BIND_SERVICE, AUDIT_WRITE."""
    b = bundle()
    b.probe("caps")
    caps = {k: int(v, 16) for k, v in probe_json(runtime.run(b, b.id)).items()}
    assert caps["CapBnd"] == DEFAULT_CAPS
    assert caps["CapPrm"] == DEFAULT_CAPS
    assert caps["CapEff"] == DEFAULT_CAPS


def test_default_capabilities_full_sets(runtime: Runtime, bundle: BundleFactory) -> None:
    """Ambient needs inheritable: the reference default yields empty CapInh and CapAmb."""
    b = bundle()
    b.probe("caps")
    caps = {k: int(v, 16) for k, v in probe_json(runtime.run(b, b.id)).items()}
    assert (caps["CapInh"], caps["CapAmb"]) == (0, 0)


def test_capabilities_dropped_for_non_root(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["user"] = {"uid": 1000, "gid": 1000}
    b.probe("caps")
    caps = {k: int(v, 16) for k, v in probe_json(runtime.run(b, b.id)).items()}
    assert caps == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": DEFAULT_CAPS, "CapAmb": 0}


def test_ambient_capability_for_non_root(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["user"] = {"uid": 1000, "gid": 1000}
    caps_cfg = b.process["capabilities"]
    caps_cfg["inheritable"] = ["CAP_NET_BIND_SERVICE"]
    caps_cfg["ambient"] = ["CAP_NET_BIND_SERVICE"]
    b.probe("caps")
    caps = {k: int(v, 16) for k, v in probe_json(runtime.run(b, b.id)).items()}
    bit = 1 << 10
    assert caps == {
        "CapInh": bit,
        "CapPrm": bit,
        "CapEff": bit,
        "CapBnd": DEFAULT_CAPS,
        "CapAmb": bit,
    }


def test_capability_added(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.add_capability("CAP_SYS_CHROOT")
    b.probe("caps")
    caps = {k: int(v, 16) for k, v in probe_json(runtime.run(b, b.id)).items()}
    want = DEFAULT_CAPS | (1 << 18)
    assert (caps["CapBnd"], caps["CapPrm"], caps["CapEff"]) == (want, want, want)


def test_stdio_is_not_a_tty(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.probe("tty")
    got = last_json(run_ok(runtime, b))
    assert got == {"stdin": False, "stdout": False, "stderr": False, "ttyname": None}
