"""docker run's namespace, cgroup, process and bookkeeping flags on real containers: --pid,
--ipc, --uts, --cgroupns, --cgroup-parent, --oom-score-adj, --memory-swappiness,
--device-cgroup-rule, --blkio-weight-device, --cpu-rt-*, --annotation, --volumes-from,
--mac-address, --domainname, --group-add, --label-file, --cidfile, --pull."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.integration.engine.test_lifecycle import eng
from tests.integration.engine.test_run import cove, engine
from tests.integration.image.test_registry import Registry, registry

pytestmark = pytest.mark.root
__all__ = ["eng", "engine", "registry"]  # the fixtures

LOOP = "while true; do sleep 0.2; done"


def ok(root: Path, *args: str) -> str:
    res = cove(root, *args)
    assert res.returncode == 0, (args, res.stderr)
    return res.stdout


def out(root: Path, *args: str) -> str:
    """`cove run --rm --network none ARGS`'s output (it must succeed)."""
    return ok(root, "run", "--rm", "--network", "none", *args)


def fails(root: Path, *args: str) -> str:
    res = cove(root, *args)
    assert res.returncode != 0 and res.stdout == "", (args, res.stdout)
    return res.stderr


def spec_of(root: Path, container: str) -> dict[str, object]:
    bundle = json.loads(ok(root, "inspect", container))[0]["Id"]
    loaded: dict[str, object] = json.loads(
        (root / "containers" / bundle / "bundle" / "config.json").read_text()
    )
    return loaded


def test_pid_uts_and_ipc_of_the_host(eng: Path) -> None:
    host_init = Path("/proc/1/comm").read_text()
    assert out(eng, "--pid", "host", "bb:1", "cat", "/proc/1/comm") == host_init
    assert out(eng, "--uts", "host", "bb:1", "hostname") == os.uname().nodename + "\n"
    host_ipc = os.readlink("/proc/self/ns/ipc")
    assert out(eng, "--ipc", "host", "bb:1", "readlink", "/proc/self/ns/ipc").strip() == host_ipc
    assert out(eng, "bb:1", "readlink", "/proc/self/ns/ipc").strip() != host_ipc
    assert out(eng, "--ipc", "none", "bb:1", "sh", "-c", "grep -c ' /dev/shm ' /proc/mounts "
               "|| true").strip() == "0"  # fmt: skip
    assert "--hostname and --uts host" in fails(eng, "run", "--uts", "host", "--hostname", "x",
                                                "bb:1", "true")  # fmt: skip


def test_joining_the_pid_and_ipc_namespaces_of_a_container(eng: Path) -> None:
    ok(eng, "run", "-d", "--name", "donor", "--ipc", "shareable", "bb:1", "sh", "-c",
       f"echo shared > /dev/shm/note; {LOOP}")  # fmt: skip
    donor_ipc = ok(eng, "exec", "donor", "readlink", "/proc/self/ns/ipc")
    seen = out(eng, "--pid", "container:donor", "--ipc", "container:donor", "bb:1", "sh", "-c",
               "cat /proc/1/cmdline | tr '\\0' ' '; echo; readlink /proc/self/ns/ipc; "
               "cat /dev/shm/note")  # fmt: skip
    lines = seen.splitlines()
    assert lines[0].startswith("sh -c echo shared") and lines[1:] == [donor_ipc.strip(), "shared"]
    ok(eng, "run", "-d", "--name", "private", "bb:1", "sh", "-c", LOOP)
    assert "not shareable" in fails(eng, "create", "--ipc", "container:private", "bb:1", "true")
    ok(eng, "stop", "-t", "0", "donor")
    assert "not running" in fails(eng, "run", "--rm", "--pid", "container:donor", "bb:1", "true")
    shm = eng / "containers" / json.loads(ok(eng, "inspect", "donor"))[0]["Id"] / "shm"
    assert str(shm) not in Path("/proc/self/mountinfo").read_text()  # unmounted at its exit
    ok(eng, "start", "donor")
    assert str(shm) in Path("/proc/self/mountinfo").read_text()
    ok(eng, "rm", "-f", "donor")
    assert str(shm) not in Path("/proc/self/mountinfo").read_text()
    assert "invalid value 'sideways' for flag --ipc" in fails(eng, "create", "--ipc", "sideways",
                                                              "bb:1", "true")  # fmt: skip


def test_cgroup_namespace_and_parent(eng: Path) -> None:
    own = out(eng, "--cgroupns", "private", "bb:1", "cat", "/proc/self/cgroup")
    assert all(line.endswith(":/") for line in own.splitlines()), own
    cid = ok(eng, "run", "-d", "--cgroupns", "host", "--cgroup-parent", "/covetest-parent",
             "bb:1", "sh", "-c", LOOP).strip()  # fmt: skip
    try:
        seen = ok(eng, "exec", cid, "cat", "/proc/self/cgroup")
        assert f"/covetest-parent/{cid}" in seen, seen
        assert json.loads(ok(eng, "inspect", cid))[0]["HostConfig"]["CgroupParent"] == (
            "/covetest-parent"
        )
        ok(eng, "rm", "-f", cid)
        assert not list(Path("/sys/fs/cgroup").glob(f"*/covetest-parent/{cid}"))
    finally:
        for parent in Path("/sys/fs/cgroup").glob("*/covetest-parent"):
            parent.rmdir()
    assert "cgroup-parent" in fails(eng, "create", "--cgroup-parent", "../up", "bb:1", "true")


def test_process_and_resource_flags(eng: Path) -> None:
    assert out(eng, "--oom-score-adj", "500", "bb:1", "cat", "/proc/self/oom_score_adj") == "500\n"
    assert "-1000 to 1000" in fails(eng, "create", "--oom-score-adj", "1001", "bb:1", "true")
    assert out(eng, "--domainname", "example.org", "bb:1", "cat",
               "/proc/sys/kernel/domainname") == "example.org\n"  # fmt: skip
    assert "1234" in out(eng, "--group-add", "1234", "bb:1", "id", "-G").split()
    disk = next(f"/dev/{p.name}" for p in sorted(Path("/sys/block").iterdir())
                if Path("/dev", p.name).exists())  # fmt: skip
    cid = ok(eng, "create", "--device-cgroup-rule", "c 1:11 r", "--annotation", "team=blue",
             "--blkio-weight-device", f"{disk}:300", "bb:1", "true").strip()  # fmt: skip
    spec = spec_of(eng, cid)
    linux = spec["linux"]
    assert isinstance(linux, dict)
    assert {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"} in (
        linux["resources"]["devices"]
    )
    assert spec["annotations"]["team"] == "blue"  # type: ignore[index]
    weights = linux["resources"]["blockIO"]["weightDevice"]
    assert len(weights) == 1 and weights[0]["weight"] == 300
    assert "not a block device" in fails(eng, "create", "--blkio-weight-device", "/dev/null:300",
                                         "bb:1", "true")  # fmt: skip
    host = json.loads(ok(eng, "inspect", cid))[0]["HostConfig"]
    assert host["Annotations"] == {"team": "blue"} and host["DeviceCgroupRules"] == ["c 1:11 r"]
    assert "expected TYPE MAJOR:MINOR ACCESS" in fails(eng, "create", "--device-cgroup-rule",
                                                       "c 1:x rw", "bb:1", "true")  # fmt: skip
    if not Path("/sys/fs/cgroup/memory").is_dir():
        print("cgroup v1 memory hierarchy not mounted: --memory-swappiness not run")
        return
    running = ok(eng, "run", "-d", "--memory-swappiness", "10", "--device-cgroup-rule",
                 "c 1:11 r", "bb:1", "sh", "-c", LOOP).strip()  # fmt: skip
    group = Path("/sys/fs/cgroup/memory/cove") / running
    assert (group / "memory.swappiness").read_text().strip() == "10"
    devices = Path("/sys/fs/cgroup/devices/cove") / running / "devices.list"
    if devices.exists():
        assert "c 1:11 r" in devices.read_text().splitlines()
    assert "the range is 0 to 100" in fails(eng, "create", "--memory-swappiness", "101",
                                            "bb:1", "true")  # fmt: skip


def test_volumes_from_another_container(eng: Path, tmp_path: Path) -> None:
    bind = tmp_path / "bind"
    bind.mkdir()
    (bind / "f").write_text("from the host\n")
    ok(eng, "create", "--name", "data", "-v", "named:/named", "-v", "/anon",
       "-v", f"{bind}:/bind:ro", "bb:1", "true")  # fmt: skip
    ok(eng, "run", "--rm", "--volumes-from", "data", "bb:1", "sh", "-c",
       "echo n > /named/x; echo a > /anon/x")  # fmt: skip
    seen = out(eng, "--volumes-from", "data", "bb:1", "cat", "/named/x", "/anon/x", "/bind/f")
    assert seen == "n\na\nfrom the host\n"
    read_only = cove(eng, "run", "--rm", "--volumes-from", "data:ro", "bb:1", "sh", "-c",
                     "echo y > /named/x")  # fmt: skip
    assert read_only.returncode != 0 and "Read-only file system" in read_only.stderr
    cid = ok(eng, "create", "--volumes-from", "data", "-v", "other:/named", "bb:1", "true")
    mounts = {m["Destination"]: m.get("Name", m["Source"])
              for m in json.loads(ok(eng, "inspect", cid.strip()))[0]["Mounts"]}  # fmt: skip
    assert mounts["/named"] == "other"  # its own mount wins
    assert json.loads(ok(eng, "inspect", cid.strip()))[0]["HostConfig"]["VolumesFrom"] == ["data"]
    ok(eng, "rm", "-v", "data")  # the new container still uses the anonymous volume
    assert out(eng, "--volumes-from", cid.strip(), "bb:1", "cat", "/anon/x") == "a\n"
    refused = fails(eng, "create", "--volumes-from", "nope", "bb:1", "true")
    assert "container 'nope' does not exist" in refused


def test_mac_address(eng: Path) -> None:
    mac = "02:42:ac:11:00:99"
    seen = ok(
        eng, "run", "--rm", "--mac-address", mac, "bb:1", "cat", "/sys/class/net/eth0/address"
    )
    assert seen == mac + "\n"
    assert "invalid MAC address" in fails(eng, "create", "--mac-address", "01:00:5e:00:00:01",
                                          "bb:1", "true")  # fmt: skip
    refused = fails(eng, "create", "--network", "none", "--mac-address", mac, "bb:1", "true")
    assert "mac-address and the network mode" in refused


def test_labels_from_a_file_cidfile_and_refused_flags(eng: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.write_text("# a comment\nteam=red\n\ntier=web\n")
    cidfile = tmp_path / "cid"
    cid = ok(eng, "create", "--label-file", str(labels), "--label", "tier=db", "--cidfile",
             str(cidfile), "bb:1", "true").strip()  # fmt: skip
    assert cidfile.read_text() == cid
    assert json.loads(ok(eng, "inspect", cid))[0]["Config"]["Labels"] == {"team": "red",
                                                                         "tier": "db"}  # fmt: skip
    before = ok(eng, "ps", "-aq")
    refused = fails(eng, "create", "--cidfile", str(cidfile), "bb:1", "true")
    assert "container ID file found" in refused
    assert ok(eng, "ps", "-aq") == before  # nothing made
    for args, message in ((["--userns", "private"], "--userns"),
                          (["--storage-opt", "size=1g"], "--storage-opt"),
                          (["--pull", "sometimes"], "--pull"),
                          (["--isolation", "hyperv"], "--isolation")):  # fmt: skip
        assert message in fails(eng, "create", *args, "bb:1", "true")
    warned = cove(eng, "create", "--kernel-memory", "10m", "bb:1", "true")
    assert warned.returncode == 0 and "--kernel-memory is deprecated" in warned.stderr


def test_run_pulls_a_missing_image(eng: Path, registry: Registry) -> None:
    name = f"{registry.address}/pulled:1"
    ok(eng, "tag", "bb:1", name)
    ok(eng, "push", name)
    ok(eng, "rmi", name)
    ran = cove(eng, "run", "--rm", "--network", "none", name, "echo", "ran")
    assert (ran.returncode, ran.stdout) == (0, "ran\n"), ran.stderr
    assert f"Unable to find image '{name}' locally" in ran.stderr
    assert ok(eng, "image", "inspect", "-f", "{{.Id}}", name)
    quiet = cove(eng, "run", "--rm", "--pull", "always", "-q", "--network", "none", name, "true")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    ok(eng, "rmi", name)
    never = cove(eng, "run", "--rm", "--pull", "never", name, "true")
    assert never.returncode == 125 and "no such image" in never.stderr
    missing = cove(eng, "run", "--rm", f"{registry.address}/absent:1", "true")
    assert missing.returncode == 125 and "Unable to find image" in missing.stderr


def test_pid_is_not_read_as_pids_limit(eng: Path) -> None:
    assert "--pid" in fails(eng, "create", "--pid", "sideways", "bb:1", "true")


# --- the attached terminal ------------------------------------------------------------------


def test_detach_keys_leave_the_container_running(eng: Path) -> None:
    import pty
    import select
    import subprocess

    from tests.integration.image.test_import import cove_cli

    for flags, keys in (([], b"\x10\x11"), (["--detach-keys", "ctrl-a,x"], b"\x01x")):
        name = f"dk{len(flags)}"
        master, slave = pty.openpty()
        process = subprocess.Popen(
            [cove_cli(), "--root", str(eng), "run", "-it", "--name", name, *flags, "bb:1", "sh"],
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        try:
            seen = b""
            deadline = time.monotonic() + 30
            sent = False
            while b"ready-42" not in seen and time.monotonic() < deadline:
                if select.select([master], [], [], 0.5)[0]:
                    seen += os.read(master, 4096)
                if not sent and b"# " in seen:  # the shell's prompt: it reads now
                    os.write(master, b"echo ready-$((6*7))\r")
                    sent = True
            assert b"ready-42" in seen, seen
            os.write(master, keys)
            assert process.wait(timeout=20) == 0
        finally:
            process.kill()
            process.wait()
            os.close(master)
        status = ok(eng, "inspect", "-f", "{{.State.Status}}", name).strip()
        assert status == "running", name  # detached, not stopped
    assert "Invalid escape keys" in fails(eng, "run", "--rm", "-it", "--detach-keys", "ctrl-1",
                                          "bb:1", "true")  # fmt: skip


def test_attach_only_some_streams_and_the_signal_proxy(eng: Path) -> None:
    import signal
    import subprocess

    from tests.integration.image.test_import import cove_cli

    res = cove(eng, "run", "--rm", "-a", "stdout", "--network", "none", "bb:1", "sh", "-c",
               "echo to-out; echo to-err >&2")  # fmt: skip
    assert (res.returncode, res.stdout, res.stderr) == (0, "to-out\n", "")
    res = cove(eng, "run", "--rm", "-a", "STDERR", "--network", "none", "bb:1", "sh", "-c",
               "echo to-out; echo to-err >&2")  # fmt: skip
    assert (res.stdout, res.stderr) == ("", "to-err\n")
    assert "-a and -d" in fails(eng, "run", "-d", "-a", "stdout", "bb:1", "true")
    assert "--attach" in fails(eng, "run", "-a", "stdsomething", "bb:1", "true")
    script = "trap 'echo got-term; exit 3' TERM; echo up; while true; do sleep 0.1; done"
    for proxy, name in (("true", "proxied"), ("false", "unproxied")):
        process = subprocess.Popen(
            [cove_cli(), "--root", str(eng), "run", "--name", name, f"--sig-proxy={proxy}",
             "--network", "none", "bb:1", "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == b"up\n"
            time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=20)
        finally:
            process.kill()
            process.wait()
        status = ok(eng, "inspect", "-f", "{{.State.Status}}", name).strip()
        if proxy == "true":
            assert (code, status) == (3, "exited")  # the container got it and ended
        else:
            assert code != 0 and status == "running"  # cove ended; the container runs on


# --- other commands' flags ------------------------------------------------------------------


def test_env_files_stop_signal_and_update_restart(eng: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# settings\nA=1\n  B=two words\nFROM_HOST\nUNSET_HERE\n\n")
    os.environ["FROM_HOST"] = "passed"
    try:
        seen = out(eng, "--env-file", str(env_file), "-e", "A=override", "bb:1", "sh", "-c",
                   'echo "[$A][$B][$FROM_HOST][${UNSET_HERE-unset}]"')  # fmt: skip
        assert seen == "[override][two words][passed][unset]\n"
        cid = ok(eng, "run", "-d", "bb:1", "sh", "-c",
                 "trap 'echo got-usr1; exit 7' USR1; trap '' TERM; " + LOOP).strip()  # fmt: skip
        execd = ok(eng, "exec", "--env-file", str(env_file), cid, "sh", "-c", 'echo "$B"')
        assert execd == "two words\n"
        ok(eng, "stop", "-s", "USR1", cid)
        assert ok(eng, "inspect", "-f", "{{.State.ExitCode}}", cid).strip() == "7"
        assert "--signal" in fails(eng, "stop", "--signal", "NOPE", cid)
    finally:
        del os.environ["FROM_HOST"]
    bad = tmp_path / "bad"
    bad.write_text("MY VAR=1\n")
    assert "contains whitespaces" in fails(eng, "create", "--env-file", str(bad), "bb:1", "true")
    ok(eng, "update", "--restart", "on-failure:2", cid)
    policy = json.loads(ok(eng, "inspect", cid))[0]["HostConfig"]["RestartPolicy"]
    assert policy == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert "restart" in fails(eng, "update", "--restart", "sometimes", cid).lower()


def test_prune_filters_and_system_prune_takes_networks(eng: Path) -> None:
    ok(eng, "network", "create", "--label", "keep=yes", "kept")
    ok(eng, "network", "create", "spare")
    pruned = ok(eng, "network", "prune", "-f", "--filter", "label!=keep")
    assert pruned == "Deleted Networks:\nspare\n"
    assert ok(eng, "network", "prune", "-f", "--filter", "until=1h") == ""  # all too young
    ok(eng, "network", "create", "other")
    report = ok(eng, "system", "prune", "-f", "--filter", "label=keep")
    assert "Deleted Networks:\nkept\n" in report and "other" not in report
    report = ok(eng, "system", "prune", "-f")
    assert "Deleted Networks:\nother\n" in report
    names = ok(eng, "network", "ls", "--format", "{{.Name}}").split()
    assert sorted(names) == ["bridge", "host", "none"]
    ok(eng, "tag", "bb:1", "tagged:1")
    assert "untagged" not in ok(eng, "image", "prune", "-a", "-f", "--filter", "until=1h")
    assert "untagged: tagged:1" in ok(eng, "image", "prune", "-a", "-f", "--filter",
                                      "label!=nothing")  # fmt: skip


def test_sizes_and_refused_or_accepted_flags(eng: Path) -> None:
    cid = ok(eng, "run", "-d", "bb:1", "sh", "-c", f"head -c 5000 /dev/zero > /written; {LOOP}")
    cid = cid.strip()
    poll_until = time.monotonic() + 20
    while "5kB" not in ok(eng, "ps", "-s", "--format", "{{.Size}}"):
        assert time.monotonic() < poll_until, ok(eng, "ps", "-s")
        time.sleep(0.2)
    table = ok(eng, "ps", "-s")
    assert table.splitlines()[0].rstrip().endswith("SIZE") and "(virtual " in table
    sized = json.loads(ok(eng, "inspect", "-s", cid))[0]
    assert sized["SizeRw"] >= 5000 and sized["SizeRootFs"] > sized["SizeRw"]
    assert "SizeRw" not in json.loads(ok(eng, "inspect", cid))[0]
    assert "IPv4 only" in fails(eng, "network", "create", "--ipv6", "v6")
    assert "--aux-address" in fails(eng, "network", "create", "--aux-address", "a=1.2.3.4", "n")
    assert "not supported" in fails(eng, "network", "create", "--ipam-driver", "other", "n")
    ok(eng, "network", "create", "--attachable", "attach-ok")
    ok(eng, "network", "rm", "attach-ok")
    assert "legacy links" in fails(eng, "rm", "-l", cid)
    ok(eng, "tag", "bb:1", "spare:1")
    assert ok(eng, "rmi", "--no-prune", "spare:1") == "Untagged: spare:1\n"
