"""`cove volume` and volumes in containers, on real containers: named volumes outlive their
containers and start with the image's files; anonymous volumes from `-v /path` and from the
image's VOLUME go with `rm -v`; a volume in use cannot be removed; tmpfs and bind volumes
(the local driver's -o) are mounted while containers use them; read-only volumes; prune;
bad names create nothing."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.integration.engine.test_lifecycle import CHECK_ENV, LOOP, ok, poll, run_d
from tests.integration.engine.test_lifecycle import eng as eng  # a fixture, used by name
from tests.integration.engine.test_lifecycle import engine as engine  # a fixture, used by name
from tests.integration.image.test_import import cove, cove_cli

pytestmark = pytest.mark.root

FULL_ID = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def data_image(eng: Path, busybox_rootfs: Path, tmp_path: Path) -> Path:
    """`eng` with two more images over the busybox rootfs with /data: bb:data (/data/hello
    owned by 1000:1000 mode 0640, /data/sub 0750, /data/link -> hello) and bb:vol (the same
    with VOLUME /data)."""
    path = tmp_path / "data.tar"
    mtime = int(time.time()) - 3600
    with tarfile.open(path, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
        folder = tarfile.TarInfo("./data")
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, mtime
        tar.addfile(folder)
        sub = tarfile.TarInfo("./data/sub")
        sub.type, sub.mode, sub.uid, sub.gid = tarfile.DIRTYPE, 0o750, 1000, 1000
        tar.addfile(sub)
        body = b"hello from the image\n"
        hello = tarfile.TarInfo("./data/hello")
        hello.size, hello.mode, hello.uid, hello.gid = len(body), 0o640, 1000, 1000
        hello.mtime = mtime
        tar.addfile(hello, io.BytesIO(body))
        link = tarfile.TarInfo("./data/link")
        link.type, link.linkname = tarfile.SYMTYPE, "hello"
        tar.addfile(link)
    ok(eng, "import", str(path), "bb:data")
    ok(eng, "import", "--change", "VOLUME /data", str(path), "bb:vol")
    return eng


def volumes(root: Path) -> list[str]:
    return ok(root, "volume", "ls", "-q").split()


def anonymous(root: Path) -> list[str]:
    return [name for name in volumes(root) if FULL_ID.fullmatch(name)]


def sh(root: Path, *args: str) -> str:
    """`cove run --rm ARGS...`: its output (it must succeed)."""
    return ok(root, "run", "--rm", *args)


def test_named_volume_outlives_its_container_and_starts_with_the_image_files(
    data_image: Path,
) -> None:
    eng = data_image
    listing = "stat -c '%n %u:%g %a' /data/hello /data/sub; readlink /data/link; cat /data/hello"
    out = sh(eng, "-v", "notes:/data", "bb:data", "sh", "-c", f"{listing}; echo kept > /data/mine")
    assert out.splitlines() == ["/data/hello 1000:1000 640", "/data/sub 1000:1000 750", "hello",
                                "hello from the image"]  # fmt: skip
    assert volumes(eng) == ["notes"]
    # a new container (of another image, without /data) sees what the first one wrote
    assert sh(eng, "-v", "notes:/data", "bb:1", "cat", "/data/mine") == "kept\n"
    info = json.loads(ok(eng, "volume", "inspect", "notes"))[0]
    assert info["Name"] == "notes" and info["Driver"] == "local" and info["Scope"] == "local"
    assert info["Mountpoint"] == str(eng / "volumes" / "notes" / "_data")
    assert (Path(info["Mountpoint"]) / "mine").read_text() == "kept\n"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["CreatedAt"])
    # --mount type=volume does the same; volume-nocopy and :nocopy leave the volume empty
    mount = "type=volume,source=other,target=/data"
    assert sh(eng, "--mount", mount, "bb:data", "cat", "/data/hello") == "hello from the image\n"
    assert sh(eng, "--mount", "type=volume,src=empty1,dst=/data,volume-nocopy", "bb:data",
              "ls", "-A", "/data") == ""  # fmt: skip
    assert (
        sh(eng, "-v", "empty2:/data:nocopy", "bb:data", "sh", "-c", "ls -A /data; echo 1 > /data/f")
        == ""
    )
    # the copy is for an empty volume (as Docker: at any use); one with files is left alone
    assert sh(eng, "-v", "empty1:/data", "bb:data", "ls", "/data") == "hello\nlink\nsub\n"
    assert sh(eng, "-v", "empty2:/data", "bb:data", "ls", "/data") == "f\n"
    ok(eng, "volume", "rm", "notes", "other", "empty1", "empty2")
    assert volumes(eng) == []


def test_anonymous_volumes_go_with_rm_v_and_stay_without(data_image: Path) -> None:
    eng = data_image
    # -v /path: an anonymous volume, with the image's files
    first = run_d(eng, "-v", "/data", "bb:data", "sh", "-c", LOOP)
    [from_flag] = anonymous(eng)
    assert ok(eng, "exec", first, "cat", "/data/hello") == "hello from the image\n"
    mounts = json.loads(ok(eng, "inspect", "-f", "{{json .Mounts}}", first))
    assert mounts == [{
        "Type": "volume", "Name": from_flag,
        "Source": str(eng / "volumes" / from_flag / "_data"), "Destination": "/data",
        "Driver": "local", "Mode": "", "RW": True, "Propagation": "",
    }]  # fmt: skip
    ok(eng, "rm", "-f", first)
    assert anonymous(eng) == [from_flag]  # kept without -v
    # the image's VOLUME: an anonymous volume too; rm -v removes it
    second = run_d(eng, "bb:vol", "sh", "-c", LOOP)
    from_image = [name for name in anonymous(eng) if name != from_flag]
    assert len(from_image) == 1
    assert ok(eng, "exec", second, "cat", "/data/hello") == "hello from the image\n"
    assert ok(eng, "rm", "-f", "-v", second).strip() == second
    assert anonymous(eng) == [from_flag]
    # a VOLUME covered by a named volume makes no anonymous one; --rm removes anonymous ones
    sh(eng, "-v", "named:/data", "bb:vol", "true")
    sh(eng, "-v", "/scratch", "bb:vol", "true")
    assert sorted(volumes(eng)) == sorted([from_flag, "named"])
    ok(eng, "volume", "rm", from_flag, "named")


def test_a_volume_in_use_cannot_be_removed(eng: Path) -> None:
    user = run_d(eng, "--name", "holder", "-v", "shared:/s", "bb:1", "sh", "-c", LOOP)
    for flags in ([], ["-f"]):
        res = cove(eng, "volume", "rm", *flags, "shared")
        assert res.returncode == 1
        assert res.stderr.count("\n") == 1 and "volume is in use" in res.stderr
        assert "holder" in res.stderr and user in res.stderr
    ok(eng, "stop", "-t", "0", "holder")
    res = cove(eng, "volume", "rm", "shared")  # stopped, it still uses it (as Docker)
    assert res.returncode == 1 and "holder" in res.stderr
    assert "shared" in ok(eng, "volume", "ls", "--filter", "dangling=false", "-q").split()
    ok(eng, "rm", "holder")
    assert ok(eng, "volume", "ls", "--filter", "dangling=true", "-q").split() == ["shared"]
    assert ok(eng, "volume", "rm", "shared") == "shared\n"
    res = cove(eng, "volume", "rm", "shared")
    assert res.returncode == 1 and "no such volume: shared" in res.stderr
    assert cove(eng, "volume", "rm", "-f", "shared").returncode == 0


def test_tmpfs_volume_is_a_tmpfs_while_containers_use_it(eng: Path) -> None:
    ok(eng, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m",
       "scratch")  # fmt: skip
    mountpoint = str(eng / "volumes" / "scratch" / "_data")
    table = "grep ' /t ' /proc/mounts"
    first = run_d(eng, "-v", "scratch:/t", "bb:1", "sh", "-c", f"echo one > /t/f; {LOOP}")
    second = run_d(eng, "-v", "scratch:/t", "bb:1", "sh", "-c", LOOP)
    line = ok(eng, "exec", second, "sh", "-c", table).split()
    assert line[2] == "tmpfs" and "size=1024k" in line[3]
    assert ok(eng, "exec", second, "cat", "/t/f") == "one\n"  # one tmpfs, shared
    assert mountpoint in Path("/proc/self/mountinfo").read_text()
    ok(eng, "rm", "-f", first)  # the other still runs: it stays mounted
    assert mountpoint in Path("/proc/self/mountinfo").read_text()
    assert ok(eng, "exec", second, "cat", "/t/f") == "one\n"
    ok(eng, "stop", "-t", "0", second)  # the last user stopped: unmounted, its files gone
    assert mountpoint not in Path("/proc/self/mountinfo").read_text()
    assert sh(eng, "-v", "scratch:/t", "bb:1", "sh", "-c", f"{table} >/dev/null && ls -A /t") == ""
    ok(eng, "rm", second)
    # mounted for no running container (a crash between a mount and a start): system check
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mountpoint], check=True)
    try:
        res = subprocess.run([cove_cli(), "--root", str(eng), "system", "check", "--repair"],
                             capture_output=True, text=True, timeout=60, env=CHECK_ENV)  # fmt: skip
        assert f"{mountpoint} of volume scratch" in res.stdout, res
    finally:
        subprocess.run(["umount", mountpoint], capture_output=True)
    assert mountpoint not in Path("/proc/self/mountinfo").read_text()
    ok(eng, "volume", "rm", "scratch")


def test_containers_at_once_share_volumes(data_image: Path) -> None:
    eng = data_image
    ok(eng, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "fast")
    argv = [cove_cli(), "--root", str(eng), "run", "-d", "-v", "fast:/t", "-v", "new:/data",
            "bb:data", "sh", "-c", f"cat /data/hello > /t/$(hostname); {LOOP}"]  # fmt: skip
    starts = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(6)]
    ids = [proc.communicate(timeout=60)[0].strip() for proc in starts]
    assert all(proc.returncode == 0 for proc in starts) and len(set(ids)) == 6
    poll(lambda: len(ok(eng, "exec", ids[0], "ls", "/t").split()) == 6, "every one wrote")
    files = ok(eng, "exec", ids[0], "sh", "-c", "cat /t/*")
    assert files == "hello from the image\n" * 6  # one tmpfs; the image's files copied once
    assert sorted(volumes(eng)) == ["fast", "new"]
    assert ok(eng, "run", "--rm", "-v", "new:/data", "bb:1", "ls", "/data").split() == [
        "hello", "link", "sub"]  # fmt: skip
    ok(eng, "rm", "-f", *ids)  # stopped at once: the last one to stop unmounts
    assert str(eng / "volumes") not in Path("/proc/self/mountinfo").read_text()
    ok(eng, "volume", "rm", "fast", "new")


def test_bind_volume_shows_a_host_folder(eng: Path, tmp_path: Path) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "from-host").write_text("h\n")
    ok(eng, "volume", "create", "--name", "hostdir", "-o", "type=none", "-o", "o=bind",
       "-o", f"device={host}")  # fmt: skip
    out = sh(eng, "-v", "hostdir:/h", "bb:1", "sh", "-c", "cat /h/from-host; echo c > /h/made")
    assert out == "h\n" and (host / "made").read_text() == "c\n"
    assert str(eng / "volumes") not in Path("/proc/self/mountinfo").read_text()
    ok(eng, "volume", "rm", "hostdir")
    assert (host / "made").exists()  # removing the volume leaves the host's folder alone


def test_read_only_volumes(eng: Path) -> None:
    sh(eng, "-v", "ro-data:/data", "bb:1", "sh", "-c", "echo x > /data/x")
    for flags in (["-v", "ro-data:/data:ro"], ["--mount", "source=ro-data,target=/data,readonly"]):
        res = cove(eng, "run", "--rm", *flags, "bb:1", "sh", "-c", "cat /data/x; echo y > /data/y")
        assert res.returncode != 0 and res.stdout == "x\n"
        assert "Read-only file system" in res.stderr
    cid = ok(eng, "create", "-v", "ro-data:/data:ro", "bb:1", "true").strip()
    mounts = json.loads(ok(eng, "inspect", "-f", "{{json .Mounts}}", cid))
    assert [(m["Name"], m["Mode"], m["RW"]) for m in mounts] == [("ro-data", "ro", False)]
    ok(eng, "rm", cid)
    ok(eng, "volume", "rm", "ro-data")


def test_prune_takes_unused_anonymous_volumes_unless_all(eng: Path) -> None:
    sh(eng, "-v", "keepme:/k", "bb:1", "true")
    ok(eng, "volume", "create", "--label", "team=a", "made")
    kept = ok(eng, "create", "-v", "/inuse", "bb:1", "true").strip()
    [in_use] = anonymous(eng)
    gone = ok(eng, "create", "-v", "/unused", "bb:1", "true").strip()
    ok(eng, "rm", gone)
    [unused] = [name for name in anonymous(eng) if name != in_use]
    out = ok(eng, "volume", "prune", "-f")
    assert out == f"Deleted Volumes:\n{unused}\n\nTotal reclaimed space: 0B\n"
    assert sorted(volumes(eng)) == sorted(["keepme", "made", in_use])
    listed = ok(
        eng, "volume", "ls", "--filter", "label=team=a", "--format", "{{.Name}} {{.Labels}}"
    )
    assert listed == "made team=a\n"
    ok(eng, "volume", "prune", "-f", "-a", "--filter", "label=team=b")
    assert "made" in volumes(eng)
    out = ok(eng, "volume", "prune", "-f", "--all")
    assert "keepme" in out and "made" in out
    assert volumes(eng) == [in_use]
    ok(eng, "rm", "-v", kept)
    assert volumes(eng) == []


def test_bad_names_and_options_create_nothing(eng: Path) -> None:
    for args in (["volume", "create", "bad/name"], ["volume", "create", "--name", "x"],
                 ["volume", "create", "-o", "size=1m", "sized"],
                 ["volume", "create", "-o", "type=tmpfs", "nodevice"],
                 ["volume", "create", "-d", "nfs", "drv"]):  # fmt: skip
        res = cove(eng, *args)
        assert res.returncode == 1, args
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("Error: "), res.stderr
    for flags in (["-v", "b$d:/data"], ["-v", "x:/data"], ["--mount", "source=a/b,target=/x"],
                  ["--mount", "source=okname,target=/x,bind-propagation=rshared"],
                  ["-v", "okname:/x", "--memory", "5x"]):  # fmt: skip
        res = cove(eng, "run", "--rm", *flags, "bb:1", "true")
        assert res.returncode == 125, flags
        assert res.stderr.count("\n") == 1, res.stderr
    assert "invalid volume name" in cove(eng, "run", "-v", "b$d:/x", "bb:1", "true").stderr
    assert volumes(eng) == []
    assert ok(eng, "ps", "-a", "-q") == ""
    assert [p.name for p in (eng / "volumes").iterdir() if p.name != ".lock"] == []
    res = cove(eng, "volume", "inspect", "nothing")
    assert res.returncode == 1 and "no such volume: nothing" in res.stderr
