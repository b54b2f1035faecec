"""docker cp through the real clients: the docker CLI both ways (files, directories, new
names, stopped containers, links never followed to the host's files) and docker-py's
put_archive / get_archive / the HEAD stat; uploads that try to leave the destination are
refused with 400 and change nothing."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from cove.api.archive import go_file_mode
from tests.compat.conftest import DockerCli
from tests.compat.test_streams import ok

SETUP = ("mkdir -p /data/sub /data/empty && echo hello > /data/f.txt && echo deep > /data/sub/g"
         " && echo container-shadow > /etc/shadow && ln -s /etc/shadow /data/shadowlink"
         " && mkdir /links && ln -s ../../../../../../etc/passwd /links/uplink"
         " && chmod 640 /data/f.txt && sleep 1000")  # fmt: skip


@pytest.fixture
def box(docker: DockerCli, client: Any) -> Any:
    ok(docker("run", "-d", "--name", "box", "bb:1", "sh", "-c", SETUP))
    container = client.containers.get("box")
    for _ in range(100):
        if container.exec_run(["test", "-L", "/links/uplink"]).exit_code == 0:
            break
    return container


def tar_of(*members: tuple[str, bytes | None, dict[str, Any]]) -> bytes:
    """A tar of (name, data or None for a directory, TarInfo attributes) members."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data, extra in members:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if data is None and "type" not in extra:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
            for key, value in extra.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def untar(chunks: Any) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    tar = tarfile.open(fileobj=io.BytesIO(b"".join(chunks)))
    return {m.name: (m, tar.extractfile(m).read() if m.isreg() else None)  # type: ignore[union-attr]
            for m in tar.getmembers()}  # fmt: skip


# --- pure ------------------------------------------------------------------------------------


def test_go_file_modes() -> None:
    assert go_file_mode(stat.S_IFREG | 0o644) == 0o644
    assert go_file_mode(stat.S_IFDIR | 0o755) == (1 << 31) | 0o755
    assert go_file_mode(stat.S_IFLNK | 0o777) == (1 << 27) | 0o777
    assert go_file_mode(stat.S_IFCHR | 0o666) == (1 << 26) | (1 << 21) | 0o666
    assert go_file_mode(stat.S_IFDIR | stat.S_ISVTX | 0o777) == (1 << 31) | (1 << 20) | 0o777
    assert go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755


# --- the docker CLI --------------------------------------------------------------------------


def test_cli_cp_file_and_directory_out(docker: DockerCli, box: Any, tmp_path: Path) -> None:
    ok(docker("cp", "box:/data/f.txt", str(tmp_path)))
    assert (tmp_path / "f.txt").read_text() == "hello\n"
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o640
    ok(docker("cp", "box:/data", str(tmp_path / "copy")))  # a new name
    assert (tmp_path / "copy" / "sub" / "g").read_text() == "deep\n"
    assert (tmp_path / "copy" / "empty").is_dir()
    ok(docker("cp", "box:/data/sub/.", str(tmp_path / "copy" / "empty")))  # the contents
    assert (tmp_path / "copy" / "empty" / "g").read_text() == "deep\n"


def test_cli_cp_links_are_never_the_hosts(docker: DockerCli, box: Any, tmp_path: Path) -> None:
    ok(docker("cp", "box:/data/shadowlink", str(tmp_path / "link")))
    assert os.readlink(tmp_path / "link") == "/etc/shadow"  # the link itself, not followed
    ok(docker("cp", "-L", "box:/data/shadowlink", str(tmp_path / "followed")))
    assert (tmp_path / "followed").read_text() == "container-shadow\n"  # the container's
    ok(docker("cp", "-L", "box:/links/uplink", str(tmp_path / "passwd")))  # ../../.. stops at /
    copied = (tmp_path / "passwd").read_text()
    assert copied == box.exec_run(["cat", "/etc/passwd"]).output.decode()
    assert copied != Path("/etc/passwd").read_text()
    ok(docker("cp", "box:/data", str(tmp_path / "tree")))
    assert os.readlink(tmp_path / "tree" / "shadowlink") == "/etc/shadow"


def test_cli_cp_in_file_dir_and_new_name(docker: DockerCli, box: Any, tmp_path: Path) -> None:
    (tmp_path / "up.txt").write_text("from the host\n")
    (tmp_path / "updir" / "x").mkdir(parents=True)
    (tmp_path / "updir" / "x" / "y").write_text("why\n")
    ok(docker("cp", str(tmp_path / "up.txt"), "box:/tmp/"))
    ok(docker("cp", str(tmp_path / "up.txt"), "box:/tmp/renamed.txt"))
    ok(docker("cp", str(tmp_path / "updir"), "box:/tmp/"))
    ok(docker("cp", str(tmp_path / "updir"), "box:/tmp/newdir"))
    check = (
        "cat /tmp/up.txt /tmp/renamed.txt /tmp/updir/x/y /tmp/newdir/x/y; stat -c %u /tmp/up.txt"
    )
    assert ok(docker("exec", "box", "sh", "-c", check)) == (
        "from the host\nfrom the host\nwhy\nwhy\n0\n")  # fmt: skip


def test_cli_cp_errors(docker: DockerCli, box: Any, tmp_path: Path) -> None:
    res = docker("cp", "box:/no/such/file", str(tmp_path))
    assert res.returncode != 0 and "Could not find the file /no/such/file" in res.stderr
    (tmp_path / "d").mkdir()
    res = docker("cp", str(tmp_path / "d"), "box:/data/f.txt")  # a directory over a file
    assert res.returncode != 0
    assert ok(docker("exec", "box", "cat", "/data/f.txt")) == "hello\n"


def test_cli_cp_with_a_stopped_container(docker: DockerCli, tmp_path: Path) -> None:
    ok(docker("run", "--name", "done", "bb:1", "sh", "-c", "echo kept > /srv/k"))
    ok(docker("cp", "done:/srv/k", str(tmp_path / "k")))
    assert (tmp_path / "k").read_text() == "kept\n"
    (tmp_path / "in").write_text("in while stopped\n")
    ok(docker("cp", str(tmp_path / "in"), "done:/srv/in"))
    ok(docker("start", "-a", "done"))  # (runs its command again)
    ok(docker("cp", "done:/srv/in", str(tmp_path / "back")))
    assert (tmp_path / "back").read_text() == "in while stopped\n"


# --- docker-py -------------------------------------------------------------------------------


def test_sdk_get_archive_with_the_stat(client: Any, box: Any) -> None:
    bits, info = box.get_archive("/data")
    members = untar(bits)
    assert members["data/f.txt"][1] == b"hello\n"
    assert members["data/shadowlink"][0].issym()
    assert members["data/shadowlink"][0].linkname == "/etc/shadow"
    assert info["name"] == "data" and info["mode"] & (1 << 31)  # a directory (Go's bit)
    assert info["mtime"].endswith("Z")
    _, info = box.get_archive("/data/f.txt")
    assert info["size"] == 6 and info["mode"] == 0o640 and info["linkTarget"] == ""
    _, info = box.get_archive("/data/shadowlink")
    assert info["mode"] & (1 << 27) and info["linkTarget"] == "/etc/shadow"
    _, info = box.get_archive("/links/uplink")
    assert info["linkTarget"] == "/etc/passwd"  # resolved inside the container's root
    members = untar(box.get_archive("/data/sub/.")[0])
    assert set(members) == {".", "./g"}


def test_head_stat_and_404(client: Any, box: Any) -> None:
    url = client.api._url("/containers/{0}/archive", box.id)
    res = client.api.head(url, params={"path": "/data/sub"})
    assert res.status_code == 200
    info = json.loads(base64.b64decode(res.headers["X-Docker-Container-Path-Stat"]))
    assert info["name"] == "sub" and info["mode"] & (1 << 31)
    assert client.api.head(url, params={"path": "/nope"}).status_code == 404
    assert client.api.head(url, params={"path": ""}).status_code == 400
    missing = client.api._url("/containers/{0}/archive", "no-such-container")
    assert client.api.head(missing, params={"path": "/"}).status_code == 404


def test_sdk_put_archive_round_trip(client: Any, box: Any) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    link = {"type": tarfile.SYMTYPE, "linkname": "/bin/sh"}
    upload = tar_of(("dir", None, {}), ("dir/big.bin", data, {"mode": 0o600}),
                    ("dir/owned", b"x", {"uid": 1234, "gid": 4321}),
                    ("dir/abs-link", None, link))  # fmt: skip
    assert box.put_archive("/tmp", upload) is True
    members = untar(box.get_archive("/tmp/dir")[0])
    assert (
        hashlib.sha256(members["dir/big.bin"][1] or b"").digest() == hashlib.sha256(data).digest()
    )
    assert members["dir/big.bin"][0].mode == 0o600
    assert members["dir/big.bin"][0].mtime == 1_600_000_000
    assert members["dir/owned"][0].uid == 0  # without copyUIDGID: the container's root
    assert members["dir/abs-link"][0].linkname == "/bin/sh"
    url = client.api._url("/containers/{0}/archive", box.id)
    res = client.api.put(url, params={"path": "/tmp", "copyUIDGID": "1"},
                         data=tar_of(("kept", b"k", {"uid": 1234, "gid": 4321})))  # fmt: skip
    assert res.status_code == 200
    assert box.exec_run(["stat", "-c", "%u:%g", "/tmp/kept"]).output == b"1234:4321\n"


def test_put_archive_errors(client: Any, box: Any) -> None:
    docker_sdk = pytest.importorskip("docker")
    with pytest.raises(docker_sdk.errors.NotFound):
        box.put_archive("/no/such/dir", tar_of(("a", b"a", {})))
    with pytest.raises(docker_sdk.errors.APIError) as error:
        box.put_archive("/data/f.txt", tar_of(("a", b"a", {})))
    assert error.value.status_code == 400
    url = client.api._url("/containers/{0}/archive", box.id)
    res = client.api.put(url, params={"path": "/data", "noOverwriteDirNonDir": "1"},
                         data=tar_of(("sub", b"a file over a directory", {})))  # fmt: skip
    assert res.status_code == 400 and "cannot overwrite directory" in res.json()["message"]
    assert box.exec_run(["test", "-d", "/data/sub"]).exit_code == 0
    res = client.api.put(url, params={"path": "/data"},
                         data=tar_of(("sub", b"now a file", {})))  # fmt: skip
    assert res.status_code == 200  # without the flag Docker replaces it
    assert box.exec_run(["cat", "/data/sub"]).output == b"now a file"
    res = client.api.put(url, params={"path": "/data"}, data=b"this is not a tar" * 100)
    assert res.status_code == 400


SYMLINK, HARDLINK, CHARDEV = tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE
HOSTILE = {
    "dot-dot name": tar_of(("../../../../../../tmp/escaped", b"x", {})),
    "relative link out": tar_of(("up", None, {"type": SYMLINK, "linkname": "../../../.."})),
    "write through a planted link": tar_of(
        ("door", None, {"type": SYMLINK, "linkname": "/"}), ("door/etc/planted", b"x", {})
    ),
    "hard link out": tar_of(("hl", None, {"type": HARDLINK, "linkname": "../../etc/passwd"})),
    "device node": tar_of(("dev", None, {"type": CHARDEV, "devmajor": 1, "devminor": 3})),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_tars_are_refused(client: Any, box: Any, kind: str) -> None:
    url = client.api._url("/containers/{0}/archive", box.id)
    res = client.api.put(url, params={"path": "/data/empty"}, data=HOSTILE[kind])
    assert res.status_code == 400, res.text
    assert "refusing" in res.json()["message"]
    listing = box.exec_run(["sh", "-c", "ls -A /data/empty; ls /etc/planted /tmp/escaped "
                                        "2>/dev/null; true"]).output  # fmt: skip
    assert listing == b""  # nothing was written, inside the destination or out of it
    assert not Path("/tmp/escaped").exists() and not Path("/etc/planted").exists()
