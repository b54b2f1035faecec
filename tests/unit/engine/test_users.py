"""users: --user resolved through the image's own /etc/passwd and /etc/group."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cove.engine.users import ExecUser, parse_group, parse_passwd, read_image_file, resolve_user
from cove.errors import InvalidArgument


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "# comment\nroot:x:0:0:root:/root:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n"
        "broken line\nodd:x:notanumber:1::/:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nweb:x:33:\nadm:x:4:web,other\nlog:x:9:web\n")
    return root


def test_parse_files() -> None:
    assert [e.name for e in parse_passwd("a:x:1:2::/h:/s\nbad\nb:x:3:4\n")] == ["a", "b"]
    groups = parse_group("g:x:5:a,b\nh:x:6\n")
    assert [(g.name, g.gid, g.members) for g in groups] == [("g", 5, ("a", "b")), ("h", 6, ())]


def test_resolve(rootfs: Path) -> None:
    root = str(rootfs)
    assert resolve_user(root, "") == ExecUser(0, 0, (), "/root", "root")
    assert resolve_user(root, "web") == ExecUser(33, 33, (4, 9), "/var/www", "web")
    assert resolve_user(root, "33").additional_gids == (4, 9)
    assert resolve_user(root, "web:adm") == ExecUser(33, 4, (), "/var/www", "web")
    assert resolve_user(root, "500") == ExecUser(500, 0, (), "/", "")
    assert resolve_user(root, "500:log").gid == 9
    assert resolve_user(root, ":7") == ExecUser(0, 7, (), "/root", "root")


def test_errors(rootfs: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"'nobody'.*img:1"):
        resolve_user(str(rootfs), "nobody", "img:1")
    with pytest.raises(InvalidArgument, match="'wheel'"):
        resolve_user(str(rootfs), "web:wheel", "img:1")
    with pytest.raises(InvalidArgument, match="out of range"):
        resolve_user(str(rootfs), str(2**31))


def test_no_passwd_file(tmp_path: Path) -> None:
    assert resolve_user(str(tmp_path), "1000:1000") == ExecUser(1000, 1000)
    with pytest.raises(InvalidArgument, match="no /etc/passwd"):
        resolve_user(str(tmp_path), "web")


def test_never_reads_outside_the_rootfs(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    secret = tmp_path / "secret"
    secret.write_text("evil:x:0:0::/:/bin/sh\n")
    (root / "etc" / "passwd").symlink_to(os.path.relpath(secret, root / "etc"))
    assert read_image_file(str(root), "/etc/passwd") is None
    (root / "etc" / "passwd").unlink()
    (root / "etc" / "passwd").symlink_to(str(secret))  # absolute: the image's own /tmp/...
    assert read_image_file(str(root), "/etc/passwd") is None
    os.mkfifo(root / "etc" / "group")
    assert read_image_file(str(root), "/etc/group") is None  # not a regular file: no hang
