"""Config fields and flags beyond the basics, checked against cove, runc and crun alike."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conformance.test_console import create_with_console, read_until_closed
from tests.lib.bundle import Bundle
from tests.lib.probe import xfail_on
from tests.lib.runtimes import Runtime, wait_for

pytestmark = pytest.mark.root

BundleFactory = Callable[..., Bundle]


def run_ok(runtime: Runtime, b: Bundle) -> str:
    res = runtime.run(b, b.id)
    res.check()
    return res.stdout


def test_sysctl_applied(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"}
    b.shell("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    assert run_ok(runtime, b).split() == ["1", "12345"]
    # the host's values are untouched (new network and ipc namespaces)
    assert Path("/proc/sys/kernel/msgmax").read_text().strip() != "12345"


def test_oom_score_adj(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.process["oomScoreAdj"] = 345
    b.shell("cat /proc/self/oom_score_adj")
    assert run_ok(runtime, b).strip() == "345"


def test_config_devices_created(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.linux["devices"] = [
        {"type": "c", "path": "/dev/kmsg-alias", "major": 1, "minor": 11, "fileMode": 0o640,
         "uid": 0, "gid": 0},
        {"type": "p", "path": "/dev/myfifo", "fileMode": 0o600},
    ]  # fmt: skip
    b.linux.setdefault("resources", {})["devices"] = [{"allow": True, "access": "rwm"}]
    b.shell("stat -c '%F %t:%T %a' /dev/kmsg-alias; stat -c '%F %a' /dev/myfifo")
    lines = run_ok(runtime, b).splitlines()
    assert lines[0] == "character special file 1:b 640"
    assert lines[1] == "fifo 600"


def test_domainname(
    runtime: Runtime, bundle: BundleFactory, request: pytest.FixtureRequest
) -> None:
    xfail_on(request, runtime, ["runc"], "runc 1.1 (Debian 12) does not set the domainname")
    b = bundle()
    b.config["domainname"] = "cove.example"
    b.shell("cat /proc/sys/kernel/domainname")
    assert run_ok(runtime, b).strip() == "cove.example"


def test_console_size(runtime: Runtime, bundle: BundleFactory, short_tmp: Path) -> None:
    b = bundle()
    b.process["terminal"] = True
    b.process["consoleSize"] = {"height": 40, "width": 123}
    b.shell("stty size; echo size-done")
    res, master = create_with_console(runtime, b, short_tmp / "console.sock")
    res.check()
    try:
        runtime.start(b.id).check()
        output = read_until_closed(master, stop=b"size-done").decode(errors="replace")
    finally:
        os.close(master)
    assert "40 123" in output


def test_rootfs_propagation_shared(
    runtime: Runtime, bundle: BundleFactory, request: pytest.FixtureRequest
) -> None:
    xfail_on(request, runtime, ["runc"], "runc 1.1 leaves the new root private")
    b = bundle()
    # The host's / is private here, so a slave would have no master to show: use shared.
    b.linux["rootfsPropagation"] = "rshared"
    b.shell("awk '$5 == \"/\"' /proc/self/mountinfo")
    fields = run_ok(runtime, b).split(" - ")[0].split()
    assert any(f.startswith("shared:") for f in fields[6:]), fields


def test_join_network_namespace_by_path(runtime: Runtime, bundle: BundleFactory) -> None:
    first = bundle("first")
    first.probe("sleep", "60")
    runtime.run(first, first.id, "--detach").check()
    pid = runtime.state_json(first.id)["pid"]
    netns = f"/proc/{pid}/ns/net"
    second = bundle("second")
    second.add_namespace("network", netns)
    second.shell("readlink /proc/self/ns/net")
    assert run_ok(runtime, second).strip() == os.readlink(netns)


def test_run_keep_leaves_a_stopped_container(
    runtime: Runtime, bundle: BundleFactory, request: pytest.FixtureRequest
) -> None:
    xfail_on(request, runtime, ["crun"], "crun has no run --keep")
    b = bundle()
    b.probe("exit", "3")
    res = runtime.run(b, b.id, "--keep")
    assert res.returncode == 3, res.describe()
    assert runtime.wait_status(b.id, "stopped") == "stopped"
    runtime.delete(b.id).check()
    assert runtime.status(b.id) is None


def test_kill_all_reaches_every_process(runtime: Runtime, bundle: BundleFactory) -> None:
    b = bundle()
    b.add_namespace("pid")
    b.shell("trap '' TERM; sleep 60 & echo started > /tmp/ready; wait")
    runtime.run(b, b.id, "--detach").check()
    assert wait_for(b.host_path("/tmp/ready").exists, timeout=10)
    pids = runtime.ps(b.id, "--format", "json").json()
    assert len(pids) == 2
    runtime.kill(b.id, "KILL", "--all").check()
    assert runtime.wait_status(b.id, "stopped") == "stopped"
    assert wait_for(lambda: all(_gone(p) for p in pids), timeout=10)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_json_log_records_the_error(
    runtime: Runtime, bundle: BundleFactory, tmp_path: Path
) -> None:
    log = tmp_path / "runtime.log"
    res = runtime.call("--log", str(log), "--log-format", "json", "state", "no-such-container")
    assert res.returncode != 0
    deadline = time.monotonic() + 5
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    errors = [r for r in records if r.get("level") == "error"]
    assert errors, records
    message = errors[-1]["msg"]
    assert "not exist" in message or "no-such-container" in message, message


def test_ptmx_in_config_devices_stays_the_devpts_link(
    runtime: Runtime, bundle: BundleFactory
) -> None:
    """Privileged specs list the host's /dev/ptmx; the container keeps /dev/ptmx as the link
    to its own devpts instance, so its ptys are its own."""
    b = bundle()
    b.linux["devices"] = [{"type": "c", "path": "/dev/ptmx", "major": 5, "minor": 2,
                           "fileMode": 0o666}]  # fmt: skip
    b.linux.setdefault("resources", {})["devices"] = [{"allow": True, "access": "rwm"}]
    b.shell("readlink /dev/ptmx")
    assert run_ok(runtime, b).strip() == "pts/ptmx"
