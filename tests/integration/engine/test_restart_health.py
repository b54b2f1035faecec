"""Restart policies and healthchecks on real containers: on-failure:N, always, stop and rm -f
during the back-off, the back-off growing, `system boot` after a simulated reboot (kill -9 of
every monitor and container of the root), healthchecks from flags and from the image (CMD
and CMD-SHELL, retries, timeout, --no-healthcheck), refused values, and cove-monitor's
health schedule (never two checks at once, the running one ended with the container)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import re
import signal
import tarfile
import time
from pathlib import Path

import pytest

from tests.integration.engine.monitor_support import monitor
from tests.integration.engine.monitor_support import monitor_bin as monitor_bin
from tests.integration.engine.test_lifecycle import (
    eng as eng,  # a fixture, used by name
)
from tests.integration.engine.test_lifecycle import (
    engine as engine,  # a fixture, used by name
)
from tests.integration.engine.test_lifecycle import (
    fmt,
    gate,
    monitors_of,
    ok,
    poll,
    run_d,
    status,
)
from tests.integration.image.test_import import cove

pytestmark = pytest.mark.root

LOOP = "while true; do sleep 0.05; done"


def waiters_of(root: Path) -> list[int]:
    """Pids of restart waiters (`cove container cleanup --restart-at`) of engine `root`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--restart-at" in argv and str(root).encode() in argv:
            found.append(int(proc.name))
    return found


def state(root: Path, container: str) -> tuple[str, int]:
    text = fmt(root, "{{.State.Status}} {{.RestartCount}}", container).split()
    return text[0], int(text[1])


def log_times(root: Path, container: str) -> list[float]:
    """When each line of the container's output was logged (seconds, from its json-file log)."""
    from cove.engine.container_logs import parse_timestamp

    path = Path(fmt(root, "{{.LogPath}}", container))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [(parse_timestamp(entry["time"]) or 0) / 1e9 for entry in lines]


# --- restart policies ---------------------------------------------------------------------------


def test_on_failure_restarts_exactly_its_count_then_stays_exited(eng: Path) -> None:
    cid = run_d(eng, "--restart", "on-failure:2", "bb:1", "sh", "-c", "echo run; exit 3")
    poll(lambda: state(eng, cid) == ("exited", 2), "two restarts, then exited")
    time.sleep(1.5)  # longer than the next back-off (400 ms) would have been
    assert state(eng, cid) == ("exited", 2)
    assert fmt(eng, "{{.State.ExitCode}} {{json .HostConfig.RestartPolicy}}", cid) == (
        '3 {"Name": "on-failure", "MaximumRetryCount": 2}')  # fmt: skip
    assert ok(eng, "logs", cid).split() == ["run"] * 3
    assert waiters_of(eng) == []


def test_on_failure_does_not_restart_after_success(eng: Path) -> None:
    cid = run_d(eng, "--restart", "on-failure", "bb:1", "true")
    poll(lambda: status(eng, cid) == "exited", "the exit")
    time.sleep(0.5)
    assert state(eng, cid) == ("exited", 0)


def test_always_restarts_after_exit_0_and_stop_ends_it(eng: Path) -> None:
    cid = run_d(eng, "--restart", "always", "bb:1", "sh", "-c", "echo run")
    poll(lambda: state(eng, cid)[1] >= 2, "two restarts")
    assert fmt(eng, "{{.State.ExitCode}}", cid) == "0"
    ok(eng, "stop", cid)
    assert status(eng, cid) == "exited"
    count = state(eng, cid)[1]
    time.sleep(2)  # longer than any back-off reached so far
    assert state(eng, cid) == ("exited", count)
    assert waiters_of(eng) == []


@pytest.mark.parametrize("policy", ["always", "unless-stopped", "on-failure"])
@pytest.mark.parametrize("verb", [["stop", "-t", "1"], ["kill"]])
def test_a_stop_by_hand_is_not_restarted(eng: Path, policy: str, verb: list[str]) -> None:
    cid = run_d(eng, "--restart", policy, "bb:1", "sh", "-c", LOOP)
    ok(eng, *verb, cid)
    poll(lambda: status(eng, cid) == "exited", "the stop")
    time.sleep(1)
    assert state(eng, cid) == ("exited", 0)
    assert waiters_of(eng) == []


def test_kill_with_another_signal_is_an_exit_of_its_own(eng: Path) -> None:
    cid = run_d(eng, "--restart", "on-failure:1", "bb:1", "sh", "-c", f"trap 'exit 9' USR1; {LOOP}")
    ok(eng, "kill", "-s", "USR1", cid)
    poll(lambda: state(eng, cid) == ("running", 1), "a restart after exit 9")


def test_a_stop_during_the_backoff_cancels_the_restart(eng: Path) -> None:
    cid = run_d(eng, "--name", "flaky", "--restart", "always", "bb:1", "sh", "-c", "exit 1")
    # after 4 restarts the back-off is 1.6 s: the container is "restarting" most of the time
    poll(lambda: state(eng, cid)[1] >= 4 and status(eng, cid) == "restarting", "a long back-off")
    assert waiters_of(eng) != []
    listed = ok(eng, "ps", "--format", "{{.Names}} {{.Status}} {{.State}}")  # no -a: listed
    assert listed.startswith("flaky Restarting (1) ") and listed.endswith(" ago restarting\n")
    assert fmt(eng, "{{.State.Running}} {{.State.Restarting}} {{.State.Pid}}", cid) == "true true 0"
    count = state(eng, cid)[1]
    started = time.monotonic()
    ok(eng, "stop", cid)
    assert time.monotonic() - started < 5
    assert state(eng, cid) == ("exited", count)
    assert waiters_of(eng) == []
    time.sleep(3.5)  # the cancelled restart would have come by now
    assert state(eng, cid) == ("exited", count)
    assert "Exited (1)" in ok(eng, "ps", "-a")


def test_rm_force_during_the_backoff(eng: Path) -> None:
    cid = run_d(eng, "--restart", "always", "bb:1", "sh", "-c", "exit 2")
    poll(lambda: state(eng, cid)[1] >= 4 and status(eng, cid) == "restarting", "a long back-off")
    refused = cove(eng, "rm", cid)
    assert refused.returncode == 1 and "restarting" in refused.stderr
    ok(eng, "rm", "-f", cid)
    assert ok(eng, "ps", "-a", "-q") == "" and waiters_of(eng) == []
    time.sleep(2)
    assert ok(eng, "ps", "-a", "-q") == ""
    assert not (eng / "containers" / cid).exists()


def test_start_during_the_backoff_starts_at_once(eng: Path) -> None:
    flags, go = gate(eng)  # once the gate is open the container stays up
    script = "[ -e /gate/go ] && exec sleep 600; exit 4"
    cid = run_d(eng, *flags, "--restart", "always", "bb:1", "sh", "-c", script)
    poll(lambda: state(eng, cid)[1] >= 4 and status(eng, cid) == "restarting", "a long back-off")
    go.touch()
    count = state(eng, cid)[1]
    ok(eng, "start", cid)
    assert state(eng, cid) == ("running", count)  # a start by hand is no restart
    assert waiters_of(eng) == []


def test_wait_returns_at_each_exit(eng: Path) -> None:
    cid = run_d(eng, "--restart", "always", "bb:1", "sh", "-c", "sleep 0.3; exit 5")
    started = time.monotonic()
    assert ok(eng, "wait", cid).strip() == "5"
    assert time.monotonic() - started < 10


def test_the_backoff_doubles(eng: Path) -> None:
    cid = run_d(eng, "--restart", "always", "bb:1", "sh", "-c", "echo up; exit 1")
    poll(lambda: len(log_times(eng, cid)) >= 6, "six runs", timeout=30)
    ok(eng, "stop", cid)
    times = log_times(eng, cid)[:6]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    for n, gap in enumerate(gaps):  # 100, 200, 400, 800, 1600 ms, plus a start each
        assert gap >= 0.1 * 2**n - 0.01, gaps
    assert gaps[4] > gaps[0] + 1.0, gaps
    assert gaps[3] > gaps[1], gaps


def test_foreground_run_with_always_returns_and_the_container_restarts(eng: Path) -> None:
    res = cove(eng, "run", "--name", "fg", "--restart", "always", "bb:1", "sh", "-c", "exit 6")
    assert res.returncode == 6, res.stderr
    poll(lambda: state(eng, "fg")[1] >= 1, "a restart in the background")


# --- system boot ---------------------------------------------------------------------------------


def test_system_boot_after_a_reboot(eng: Path) -> None:
    names = {"al": "always", "us": "unless-stopped", "al-stopped": "always",
             "us-stopped": "unless-stopped", "of": "on-failure", "plain": "no"}  # fmt: skip
    for name, policy in names.items():
        run_d(eng, "--name", name, "--restart", policy, "bb:1", "sh", "-c", LOOP)
    ok(eng, "stop", "-t", "1", "al-stopped", "us-stopped")
    ok(eng, "create", "--name", "never-ran", "--restart", "always", "bb:1", "true")
    running = ["al", "us", "of", "plain"]
    pids = {name: int(fmt(eng, "{{.State.Pid}}", name)) for name in running}
    # the "reboot": every monitor and container of the root dies at once; no cove command
    # runs until the boot (it would clean up, and restart by policy, on its own)
    for pid in monitors_of(eng):
        os.kill(pid, signal.SIGKILL)
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    poll(lambda: not monitors_of(eng) and not any(Path(f"/proc/{p}").exists() for p in
                                                  pids.values()), "the kills")  # fmt: skip
    res = cove(eng, "system", "boot")
    assert res.returncode == 0, res.stderr
    for name in running:
        assert f"({name}): it was running but its monitor is gone" in res.stdout
    for name in ("al", "us", "of", "al-stopped"):
        assert re.search(rf"^started container \w+ \({name}\): ", res.stdout, re.M), res.stdout
        assert status(eng, name) == "running", name
    for name, pid in pids.items():
        if name != "plain":
            assert int(fmt(eng, "{{.State.Pid}}", name)) != pid
    assert status(eng, "us-stopped") == "exited"
    assert status(eng, "never-ran") == "created"
    assert fmt(eng, "{{.State.Status}} {{.State.ExitCode}}", "plain") == "exited 255"
    assert "monitor" in fmt(eng, "{{.State.Error}}", "plain")
    plain_id = fmt(eng, "{{.Id}}", "plain")
    assert not Path(f"/run/cove/attach/{plain_id[:32]}.sock").exists()  # the dead monitor's
    assert fmt(eng, "{{.State.Error}}", "al") == ""  # a new run
    assert len(monitors_of(eng)) == 4
    again = cove(eng, "system", "boot")  # nothing stale, nothing to start twice
    assert again.returncode == 0 and "nothing to repair or start" in again.stdout
    # after the boot the containers are ordinary ones: their policy works as before
    ok(eng, "stop", "-t", "1", "us")
    time.sleep(0.5)
    assert status(eng, "us") == "exited"


def test_system_boot_restarts_a_container_whose_waiter_died(eng: Path) -> None:
    cid = run_d(eng, "--restart", "always", "bb:1", "sh", "-c", "exit 1")
    poll(lambda: state(eng, cid)[1] >= 4 and status(eng, cid) == "restarting", "a long back-off")
    for pid in waiters_of(eng):
        os.kill(pid, signal.SIGKILL)
    res = cove(eng, "system", "boot")
    assert res.returncode == 0, res.stderr
    assert "it was restarting but its monitor is gone" in res.stdout
    assert "started container" in res.stdout
    assert status(eng, cid) in ("running", "restarting", "exited")  # it runs `exit 1` again
    ok(eng, "stop", cid)


# --- healthchecks --------------------------------------------------------------------------------


def health(root: Path, container: str) -> dict[str, object]:
    found: dict[str, object] = json.loads(fmt(root, "{{json .State.Health}}", container))
    return found


def ps_status(root: Path, name: str) -> str:
    for line in ok(root, "ps", "--format", "{{.Names}}|{{.Status}}").splitlines():
        if line.split("|")[0] == name:
            return line.split("|")[1]
    return ""


def test_a_failing_healthcheck_turns_unhealthy_after_retries(eng: Path) -> None:
    run_d(eng, "--name", "sick", "--health-cmd", "echo checked; exit 1", "--health-interval",
          "200ms", "--health-retries", "3", "bb:1", "sh", "-c", LOOP)  # fmt: skip
    assert ps_status(eng, "sick").endswith("(health: starting)")
    poll(lambda: health(eng, "sick")["FailingStreak"] == 1, "the first failure")
    assert health(eng, "sick")["Status"] == "starting"
    poll(lambda: health(eng, "sick")["Status"] == "unhealthy", "unhealthy")
    found = health(eng, "sick")
    assert int(str(found["FailingStreak"])) >= 3
    log = found["Log"]
    assert isinstance(log, list) and 3 <= len(log) <= 5
    assert all(e["ExitCode"] == 1 and e["Output"] == "checked\n" for e in log)
    assert fmt(eng, "{{.State.Health.Status}}", "sick") == "unhealthy"
    assert ps_status(eng, "sick").endswith("(unhealthy)")
    assert json.loads(fmt(eng, "{{json .Config.Healthcheck}}", "sick")) == {
        "Test": ["CMD-SHELL", "echo checked; exit 1"], "Interval": 200_000_000, "Retries": 3,
    }  # fmt: skip
    journal = [json.loads(line) for line in (eng / "events.jsonl").read_text().splitlines()]
    health_events = [e["Action"] for e in journal if e["Action"].startswith("health_status")]
    assert health_events == ["health_status: unhealthy"]  # one event per change of status


def test_a_passing_healthcheck_is_healthy_and_recovers(eng: Path) -> None:
    run_d(eng, "--name", "fine", "--health-cmd", "test -e /tmp/ok", "--health-interval", "200ms",
          "--health-retries", "1", "bb:1", "sh", "-c", LOOP)  # fmt: skip
    poll(lambda: health(eng, "fine")["Status"] == "unhealthy", "unhealthy")
    ok(eng, "exec", "fine", "touch", "/tmp/ok")
    poll(lambda: health(eng, "fine")["Status"] == "healthy", "healthy")
    assert health(eng, "fine")["FailingStreak"] == 0
    assert ps_status(eng, "fine").endswith("(healthy)")
    assert ps_status(eng, "fine").startswith("Up ")


def test_healthcheck_by_hand_and_the_start_period(eng: Path) -> None:
    run_d(eng, "--name", "slow", "--health-cmd", "false", "--health-interval", "1h",
          "--health-retries", "1", "--health-start-period", "1h", "bb:1", "sh", "-c",
          LOOP)  # fmt: skip
    res = cove(eng, "container", "healthcheck", "slow")
    assert res.returncode == 1
    assert json.loads(res.stdout)["Status"] == "starting"  # failures in the start period
    assert health(eng, "slow")["FailingStreak"] == 0
    assert len(health(eng, "slow")["Log"]) == 1  # type: ignore[arg-type]
    stopped = run_d(eng, "--health-cmd", "true", "bb:1", "true")
    poll(lambda: status(eng, stopped) == "exited", "the exit")
    res = cove(eng, "container", "healthcheck", stopped)
    assert res.returncode == 1 and "is not running" in res.stderr


def test_healthcheck_timeout(eng: Path) -> None:
    run_d(eng, "--name", "stuck", "--health-cmd", "sleep 5", "--health-timeout", "300ms",
          "--health-interval", "500ms", "--health-retries", "1", "bb:1", "sh", "-c",
          LOOP)  # fmt: skip
    poll(lambda: health(eng, "stuck")["Status"] == "unhealthy", "unhealthy")
    entry = health(eng, "stuck")["Log"][0]  # type: ignore[index]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms)"


def test_health_resets_to_starting_on_restart(eng: Path) -> None:
    cid = run_d(eng, "--health-cmd", "true", "--health-interval", "200ms", "bb:1", "sh", "-c",
                LOOP)  # fmt: skip
    poll(lambda: health(eng, cid)["Status"] == "healthy", "healthy")
    ok(eng, "stop", "-t", "0", cid)
    ok(eng, "start", cid)
    assert health(eng, cid)["Status"] in ("starting", "healthy")
    poll(lambda: health(eng, cid)["Status"] == "healthy", "healthy again")


def docker_archive(path: Path, rootfs_tar: bytes, image_config: dict[str, object]) -> None:
    """A docker-archive (what `docker save` writes) of one layer with `image_config`."""
    diff_id = "sha256:" + hashlib.sha256(rootfs_tar).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "config": image_config,
              "rootfs": {"type": "layers", "diff_ids": [diff_id]}}  # fmt: skip
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": ["hc:1"], "Layers": ["layer.tar"]}]
    with tarfile.open(path, "w") as tar:
        for name, data in (("layer.tar", rootfs_tar), (config_name, config_bytes),
                           ("manifest.json", json.dumps(manifest).encode())):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_image_healthcheck_and_flags_over_it(
    eng: Path, busybox_rootfs: Path, tmp_path: Path
) -> None:
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    check = {"Test": ["CMD", "test", "-e", "/tmp/ok"], "Interval": 200_000_000, "Retries": 1}
    archive = tmp_path / "hc.tar"
    docker_archive(archive, layer.getvalue(), {"Cmd": ["sh", "-c", LOOP], "Healthcheck": check})
    ok(eng, "load", "-i", str(archive))
    run_d(eng, "--name", "from-image", "hc:1")
    poll(lambda: health(eng, "from-image")["Status"] == "unhealthy", "the image's check")
    assert json.loads(fmt(eng, "{{json .Config.Healthcheck}}", "from-image")) == check
    run_d(eng, "--name", "flag-over", "--health-cmd", "true", "hc:1")  # the image's interval
    poll(lambda: health(eng, "flag-over")["Status"] == "healthy", "the flag's check")
    run_d(eng, "--name", "disabled", "--no-healthcheck", "hc:1")
    assert fmt(eng, "{{json .State.Health}}", "disabled") == '""'
    assert fmt(eng, "{{json .Config.Healthcheck}}", "disabled") == '""'
    assert ps_status(eng, "disabled").startswith("Up ") and "(" not in ps_status(eng, "disabled")
    monitor_argv = [Path(f"/proc/{p}/cmdline").read_bytes() for p in monitors_of(eng)]
    assert sum(b"--health-interval-ms" in argv for argv in monitor_argv) == 2


# --- refused values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--restart", "sometimes"], "invalid value 'sometimes' for flag --restart"),
        (["--restart", "always:2"], "--restart"),
        (["--rm", "--restart", "always"], "Conflicting options: --restart and --rm"),
        (["--health-interval", "5x"], "invalid value '5x' for flag --health-interval"),
        (["--health-timeout", "-1s"], "--health-timeout"),
        (["--health-retries", "-2"], "--health-retries"),
        (["--no-healthcheck", "--health-cmd", "true"], "--no-healthcheck conflicts"),
    ],
)
def test_bad_values_are_refused(eng: Path, flags: list[str], words: str) -> None:
    for verb in (["run", "-d"], ["create"]):
        res = cove(eng, *verb, *flags, "bb:1", "true")
        assert res.returncode == 125, (verb, res.stderr)
        assert res.stderr.count("\n") == 1 and words in res.stderr, res.stderr
    assert ok(eng, "ps", "-a", "-q") == ""


# --- cove-monitor's health schedule ------------------------------------------------------------


def test_monitor_runs_one_check_at_a_time_and_ends_it_at_exit(
    monitor_bin: Path, tmp_path: Path
) -> None:
    record = tmp_path / "checks"
    check = f"echo start >> {record}; sleep 0.5; echo end >> {record}"
    args = ["--health-interval-ms", "100", "--health-command", "/bin/sh",
            "--health-command", "-c", "--health-command", check]  # fmt: skip
    with monitor(monitor_bin, tmp_path, "sleep 1.4", args=args) as mon:
        assert mon.wait() == 0
        lines = record.read_text().split()
    assert lines.count("start") >= 2
    for first, second in itertools.pairwise(lines):
        assert (first, second) != ("start", "start"), lines  # never two at once
    time.sleep(0.8)  # a check still running at the exit was ended: it writes nothing more
    assert record.read_text().split() == lines


def test_monitor_health_options_go_together(monitor_bin: Path, tmp_path: Path) -> None:
    import subprocess

    res = subprocess.run([str(monitor_bin), "--pid", "1", "--exit-file", "x", "--attach-socket",
                          "y", "--log-path", "z", "--sync-fd", "0", "--health-interval-ms", "5"],
                         capture_output=True, text=True, timeout=10)  # fmt: skip
    assert res.returncode == 2 and "go together" in res.stderr
