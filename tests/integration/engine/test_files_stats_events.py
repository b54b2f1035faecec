"""Files in and out, stats, events on real containers: `cove events`, `stats`, `top`, `cp`
(never through a link to the host's files), `diff`, `commit`, `export`, `system df/prune`.
Helpers and the `eng` fixture (an engine root with image bb:1, emptied and checked for
leftovers afterwards) are test_lifecycle's."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.integration.engine.test_lifecycle import eng as eng  # a fixture, used by name
from tests.integration.engine.test_lifecycle import engine as engine  # a fixture, used by name
from tests.integration.engine.test_lifecycle import ok, pid_of, poll, run_d
from tests.integration.image.test_import import cove, cove_cli

pytestmark = pytest.mark.root

HOST_SHADOW = Path("/etc/shadow")
BURN = "while :; do :; done"


def cove_bytes(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    res = subprocess.run([cove_cli(), "--root", str(root), *args], input=stdin,
                         capture_output=True, timeout=60)  # fmt: skip
    assert res.returncode == 0, f"cove {' '.join(args)}: {res.stderr.decode()}"
    return res.stdout


def events(root: Path, *args: str) -> list[str]:
    """The recorded events so far, "Action exitCode" per line."""
    out = ok(root, "events", "--since", "1h", "--until", "0s", *args, "--format",
             "{{.Action}} {{.Actor.Attributes.exitCode}}")  # fmt: skip
    return [line.strip() for line in out.splitlines()]


# --- events -----------------------------------------------------------------------------------


def test_events_arrive_in_order_with_the_exit_code(eng: Path) -> None:
    res = cove(eng, "run", "--name", "ev", "bb:1", "sh", "-c", "exit 3")
    assert res.returncode == 3, res.stderr
    ok(eng, "rm", "ev")
    assert events(eng, "--filter", "container=ev") == ["create", "start", "die 3", "destroy"]
    assert events(eng, "--filter", "event=die") == ["die 3"]
    line = ok(eng, "events", "--since", "1h", "--until", "0s", "--filter", "event=die",
              "--format", "json")  # fmt: skip
    event = json.loads(line)
    assert event["Type"] == "container" and event["Actor"]["Attributes"]["name"] == "ev"
    assert event["Actor"]["Attributes"]["image"] == "bb:1" and event["timeNano"] > 0


def test_events_follow_new_ones_until_the_bound(eng: Path) -> None:
    until = time.time() + 6
    follower = subprocess.Popen(
        [cove_cli(), "--root", str(eng), "events", "--until", f"{until:.3f}", "--since", "0s",
         "--filter", "type=container", "--format", "{{.Action}}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1)
        cid = run_d(
            eng, "--name", "lived", "bb:1", "sh", "-c", "trap 'exit 0' TERM; sleep 60 & wait"
        )
        ok(eng, "pause", cid)
        ok(eng, "unpause", cid)
        ok(eng, "rename", "lived", "renamed")
        ok(eng, "stop", "-t", "1", "renamed")
        ok(eng, "rm", "renamed")
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert out.split() == ["create", "start", "pause", "unpause", "rename", "kill", "die",
                           "stop", "destroy"]  # fmt: skip


def test_oom_event(eng: Path) -> None:
    hog = "x=a; while :; do x=$x$x$x$x; done"
    res = cove(eng, "run", "--name", "hog", "--memory", "16m", "--memory-swap", "16m", "bb:1",
               "sh", "-c", hog)  # fmt: skip
    assert res.returncode == 137, res.stderr
    assert events(eng, "--filter", "container=hog")[-2:] == ["oom", "die 137"]


# --- stats and top ----------------------------------------------------------------------------


def test_stats_show_cpu_and_the_memory_limit(eng: Path) -> None:
    cid = run_d(eng, "--name", "burn", "--memory", "64m", "--network", "none", "bb:1", "sh", "-c",
                BURN)  # fmt: skip
    out = ok(eng, "stats", "--no-stream", "--format", "{{json .}}", "burn")
    row = json.loads(out)
    assert row["ID"] == cid[:12] and row["Name"] == "burn"
    assert float(row["CPUPerc"].rstrip("%")) > 20, row
    assert row["MemUsage"].endswith(" / 64MiB") and row["NetIO"] == "0B / 0B"
    assert row["PIDs"] == "1"
    table = ok(eng, "stats", "--no-stream").splitlines()
    assert table[0].split("   ")[:3] == ["CONTAINER ID", "NAME", "CPU %"]
    assert "MEM USAGE / LIMIT" in table[0] and "BLOCK I/O" in table[0]
    assert len(table) == 2 and table[1].startswith(cid[:12])
    ok(eng, "run", "-d", "--name", "idle", "bb:1", "sleep", "60")
    ok(eng, "stop", "-t", "0", "idle")
    assert "idle" not in ok(eng, "stats", "--no-stream")
    assert "--" in ok(eng, "stats", "--no-stream", "-a", "--format", "{{.Name}} {{.CPUPerc}}")


def test_live_stats_redraw_every_second(eng: Path) -> None:
    run_d(eng, "--name", "burn", "bb:1", "sh", "-c", BURN)
    live = subprocess.Popen([cove_cli(), "--root", str(eng), "stats", "burn"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    time.sleep(3.5)
    live.send_signal(signal.SIGINT)
    out, _ = live.communicate(timeout=20)
    assert out.count("CONTAINER ID") >= 2  # not a terminal: plain tables, one per refresh
    assert "\033[2J" not in out


def test_top_lists_the_containers_processes(eng: Path) -> None:
    run_d(eng, "--name", "burn", "bb:1", "sh", "-c", f"sleep 100 & {BURN}")
    pid = pid_of(eng, "burn")
    lines = ok(eng, "top", "burn").splitlines()
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    rows = [line.split() for line in lines[1:]]
    assert str(pid) in [row[1] for row in rows]
    assert any("sleep" in line for line in lines[1:]) and len(rows) == 2
    custom = ok(eng, "top", "burn", "-o", "pid,comm").splitlines()
    assert custom[0].split() == ["PID", "COMMAND"]
    assert sorted(line.split()[1] for line in custom[1:]) == ["sh", "sleep"]
    ok(eng, "stop", "-t", "0", "burn")
    assert cove(eng, "top", "burn").returncode == 1


# --- cp ---------------------------------------------------------------------------------------

SETUP = ("echo container-shadow > /etc/shadow; ln -s /etc/shadow /tmp/abs; "
         "ln -s ../../../../etc/shadow /tmp/rel; ln -s / /tmp/root; mkdir -p /tmp/d/sub; "
         "echo f > /tmp/d/sub/f; ln -s {hostdir} /tmp/hostdir; touch /tmp/ready")  # fmt: skip


def check_cp_never_escapes(root: Path, name: str, out: Path, hostdir: Path) -> None:
    out.mkdir()
    host = HOST_SHADOW.read_bytes()
    ok(root, "cp", f"{name}:/tmp/abs", str(out / "abs"))
    assert (out / "abs").is_symlink()  # without -L: the link itself
    for index, source in enumerate(["/tmp/abs", "/tmp/rel"]):
        ok(root, "cp", "-L", f"{name}:{source}", str(out / f"followed{index}"))
        assert (out / f"followed{index}").read_bytes() == b"container-shadow\n" != host
    ok(root, "cp", f"{name}:/tmp/root/etc/shadow", str(out / "through_root"))
    assert (out / "through_root").read_bytes() == b"container-shadow\n"
    stream = cove_bytes(root, "cp", f"{name}:/tmp", "-")
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["tmp/abs"].issym() and members["tmp/rel"].issym()
        assert all(host not in (tar.extractfile(m) or io.BytesIO()).read()
                   for m in members.values() if m.isreg())  # fmt: skip
    ok(root, "cp", f"{name}:/tmp/d", str(out))
    assert (out / "d" / "sub" / "f").read_text() == "f\n"
    ok(root, "cp", f"{name}:/tmp/d/.", str(out / "contents"))
    assert (out / "contents" / "sub" / "f").exists()
    (out / "planted").write_text("planted")
    for destination in ("/tmp/hostdir/", "/tmp/hostdir/planted", "/tmp/root/../../tmp/hostdir/x"):
        cove(root, "cp", str(out / "planted"), f"{name}:{destination}")
    assert list(hostdir.iterdir()) == []  # nothing reached the host's folder
    ok(root, "cp", str(out / "planted"), f"{name}:/tmp/root/../../tmp/")
    missing = cove(root, "cp", f"{name}:/no/such", str(out))
    assert missing.returncode == 1 and "Could not find the file /no/such" in missing.stderr


def test_cp_of_links_never_reads_the_host(eng: Path, tmp_path: Path) -> None:
    assert HOST_SHADOW.exists()
    hostdir = tmp_path / "hostdir"
    hostdir.mkdir()
    run_d(eng, "--name", "cc", "bb:1", "sh", "-c",
          SETUP.format(hostdir=hostdir) + "; sleep 1000")  # fmt: skip
    poll(lambda: cove(eng, "exec", "cc", "test", "-e", "/tmp/ready").returncode == 0, "setup")
    check_cp_never_escapes(eng, "cc", tmp_path / "running", hostdir)
    assert ok(eng, "exec", "cc", "cat", "/tmp/planted") == "planted"
    ok(eng, "stop", "-t", "0", "cc")
    check_cp_never_escapes(eng, "cc", tmp_path / "stopped", hostdir)
    ok(eng, "start", "cc")
    assert ok(eng, "exec", "cc", "cat", "/tmp/planted") == "planted"


def test_cp_in_and_out_of_running_and_stopped_containers(eng: Path, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "in-volume").write_text("v")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "file").write_text("data")
    (src / "sub" / "file").chmod(0o640)
    import os

    os.chown(src / "sub" / "file", 1234, 5678)
    run_d(eng, "--name", "cc", "-v", f"{volume}:/vol", "bb:1", "sleep", "1000")
    ok(eng, "cp", str(src), "cc:/srv")
    assert ok(eng, "exec", "cc", "cat", "/srv/src/sub/file") == "data"
    owner = ok(eng, "exec", "cc", "stat", "-c", "%u:%g %a", "/srv/src/sub/file").strip()
    assert owner == "0:0 640"  # without -a: the container's root
    ok(eng, "cp", "-a", str(src / "sub" / "file"), "cc:/srv/kept")
    assert ok(eng, "exec", "cc", "stat", "-c", "%u:%g", "/srv/kept").strip() == "1234:5678"
    ok(eng, "cp", "cc:/vol/in-volume", str(tmp_path / "from-volume"))  # a bind mount
    assert (tmp_path / "from-volume").read_text() == "v"
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        archive.add(src / "sub" / "file", arcname="streamed")
    ok_bytes = cove_bytes(eng, "cp", "-", "cc:/srv", stdin=tar.getvalue())
    assert ok_bytes == b"" and ok(eng, "exec", "cc", "cat", "/srv/streamed") == "data"
    ok(eng, "stop", "-t", "0", "cc")
    ok(eng, "cp", str(src / "sub" / "file"), "cc:/srv/while-stopped")
    ok(eng, "cp", "cc:/srv/src", str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "file").read_text() == "data"
    assert str(eng) not in Path("/proc/self/mountinfo").read_text()  # unmounted again
    ok(eng, "start", "cc")
    assert ok(eng, "exec", "cc", "cat", "/srv/while-stopped") == "data"


# --- diff, commit, export ---------------------------------------------------------------------

CHANGES = "echo x > /new; echo y >> /etc/passwd; rm /etc/group; mkdir -p /srv/made"


def test_diff_commit_export(eng: Path, tmp_path: Path) -> None:
    ok(eng, "run", "--name", "dd", "bb:1", "sh", "-c", CHANGES)
    changes = ok(eng, "diff", "dd").splitlines()
    assert changes == ["C /etc", "D /etc/group", "C /etc/passwd", "A /new", "C /srv",
                       "A /srv/made"]  # fmt: skip
    image_id = ok(eng, "commit", "-c", "ENV FOO=bar", "-c", 'CMD ["cat", "/new"]', "-m", "mine",
                  "-a", "me", "dd", "bb:committed").strip()  # fmt: skip
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert ok(eng, "run", "--rm", "bb:committed") == "x\n"  # the CMD from --change
    seen = ok(eng, "run", "--rm", "bb:committed", "sh", "-c",
              "test -e /etc/group || echo nogroup; tail -1 /etc/passwd; echo $FOO")  # fmt: skip
    assert seen == "nogroup\ny\nbar\n"
    history = ok(eng, "image", "history", "--format", "{{.Comment}}", "bb:committed")
    assert history.splitlines()[0] == "mine"
    export = tmp_path / "d.tar"
    ok(eng, "export", "-o", str(export), "dd")
    with tarfile.open(export) as tar:
        names = set(tar.getnames())
        assert {"new", "bin/busybox", "etc/passwd", "srv/made"} <= names
        assert "etc/group" not in names
        assert (tar.extractfile("new") or io.BytesIO()).read() == b"x\n"
    ok(eng, "rm", "dd")
    ok(eng, "rmi", "bb:committed")


def test_commit_and_export_a_running_container(eng: Path) -> None:
    cid = run_d(eng, "--name", "live", "bb:1", "sh", "-c", "echo live > /marker; sleep 1000")
    poll(lambda: cove(eng, "exec", "live", "test", "-e", "/marker").returncode == 0, "marker")
    ok(eng, "commit", "live", "bb:live")
    assert ok(eng, "inspect", "-f", "{{.State.Status}}", "live").strip() == "running"
    assert events(eng, "--filter", f"container={cid}")[-3:] == ["pause", "unpause", "commit"]
    assert ok(eng, "run", "--rm", "bb:live", "cat", "/marker") == "live\n"
    tar = cove_bytes(eng, "export", "live")
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        assert "marker" in archive.getnames()
        assert not [n for n in archive.getnames() if n.startswith("proc/")]
    ok(eng, "rm", "-f", "live")
    ok(eng, "rmi", "bb:live")


# --- system df / prune ------------------------------------------------------------------------


def test_system_df_and_prune(eng: Path) -> None:
    ok(eng, "run", "--name", "stopped", "bb:1", "sh", "-c", "head -c 5000 /dev/zero > /blob")
    run_d(eng, "--name", "up", "bb:1", "sleep", "1000")
    lines = ok(eng, "system", "df").splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    by_type = {line[:15].strip(): line[15:].split() for line in lines[1:]}
    assert by_type["Images"][:2] == ["1", "1"]
    assert by_type["Containers"][:2] == ["2", "1"]
    assert by_type["Containers"][3] == "5kB" and by_type["Build Cache"] == ["0", "0", "0B", "0B"]
    verbose = ok(eng, "system", "df", "-v")
    assert "Images space usage:" in verbose and "Containers space usage:" in verbose
    pruned = ok(eng, "system", "prune", "-f")
    assert pruned.startswith("Deleted Containers:\n")
    assert pruned.rstrip().endswith("Total reclaimed space: 5kB")
    assert ok(eng, "ps", "-a", "--format", "{{.Names}}").split() == ["up"]
