"""cove cp's file handling without containers: paths resolved inside a root full of hostile
links (with openat2 and with the component walk), tree reading and writing, Docker's copy
rules over a fake container root."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.engine import container_cp
from cove.engine.container_cp import Location, _Side, copy, parse_location
from cove.engine.file_tree import CopyError, TreeReader, TreeWriter, relative_name, tar_entries
from cove.engine.rootfs_path import lstat_in_root, open_in_root, real_path
from cove.sys import openat2

MODES = [False] + ([True] if openat2.available() else [])
SECRET = "HOST SECRET\n"
INNER = "inner shadow\n"


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """(rootfs, a host folder with a secret outside it); the rootfs links every way out."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text(SECRET)
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "shadow").write_text(INNER)
    (root / "deep" / "a").mkdir(parents=True)
    os.symlink("/etc/shadow", root / "abs")
    os.symlink("../../../../etc/shadow", root / "rel")
    os.symlink("../../../../../../etc", root / "deep" / "a" / "b")
    os.symlink(str(outside / "secret"), root / "host_secret")  # absolute host path
    os.symlink("../" * 20 + str(outside).lstrip("/"), root / "climb_to_host")
    os.symlink("/", root / "slash")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    return root, outside


@contextlib.contextmanager
def root_fd(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_PATH | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def read(fd_root: int, path: str, kernel: bool) -> str:
    fd = open_in_root(fd_root, path, os.O_RDONLY, kernel=kernel)
    with os.fdopen(fd) as f:
        return f.read()


@pytest.mark.parametrize("kernel", MODES)
def test_links_never_leave_the_root(world: tuple[Path, Path], kernel: bool) -> None:
    root, outside = world
    with root_fd(root) as fd:
        assert read(fd, "/abs", kernel) == INNER
        assert read(fd, "rel", kernel) == INNER
        assert read(fd, "/deep/a/b/shadow", kernel) == INNER
        assert read(fd, "/slash/slash/etc/shadow", kernel) == INNER
        assert read(fd, "../../../../etc/shadow", kernel) == INNER
        assert read(fd, "/deep/../../etc/./shadow", kernel) == INNER
        for path in ("host_secret", "climb_to_host/secret", str(outside / "secret")):
            with pytest.raises(FileNotFoundError):
                read(fd, path, kernel)
        with pytest.raises(OSError) as loop:
            read(fd, "loop1", kernel)
        assert loop.value.errno == errno.ELOOP
        with pytest.raises(NotADirectoryError):
            read(fd, "etc/shadow/x", kernel)
        link = open_in_root(fd, "abs", os.O_PATH, follow=False, kernel=kernel)
        assert stat.S_ISLNK(os.fstat(link).st_mode)
        os.close(link)
        top = open_in_root(fd, "/", os.O_PATH | os.O_DIRECTORY, kernel=kernel)
        assert os.path.samestat(os.fstat(top), os.stat(root))
        os.close(top)


@pytest.mark.parametrize("kernel", MODES)
def test_creating_through_a_link_stays_inside(world: tuple[Path, Path], kernel: bool) -> None:
    root, outside = world
    os.symlink(str(outside / "planted"), root / "dangling")
    with root_fd(root) as fd:
        os.makedirs(root / outside.relative_to("/"))
        new = open_in_root(fd, "dangling", os.O_WRONLY | os.O_CREAT, kernel=kernel)
        os.write(new, b"x")
        os.close(new)
    assert not (outside / "planted").exists()
    assert (root / outside.relative_to("/") / "planted").read_text() == "x"


def test_real_path_and_lstat(world: tuple[Path, Path]) -> None:
    root, outside = world
    with root_fd(root) as fd:
        assert real_path(fd, "rel") == "/etc/shadow"
        assert real_path(fd, "/deep/a/b/new/file") == "/etc/new/file"
        assert real_path(fd, "abs", follow=False) == "/abs"
        assert real_path(fd, "climb_to_host/secret") == str(outside / "secret")  # in root
        assert lstat_in_root(fd, "host_secret", follow=True) is None
        info = lstat_in_root(fd, "abs")
        assert info is not None and stat.S_ISLNK(info.st_mode)


def test_tree_reader_copies_links_as_links(tmp_path: Path) -> None:
    top = tmp_path / "top"
    (top / "sub").mkdir(parents=True)
    (top / "sub" / "f").write_text("data")
    os.link(top / "sub" / "f", top / "hard")
    os.symlink("/etc/passwd", top / "sub" / "link")
    os.mkfifo(top / "fifo")
    with root_fd(top) as fd:
        entries = [(e.info.name, e.info.type, e.info.linkname, e.data.read() if e.data else None)
                   for e in TreeReader().entries(fd)]  # fmt: skip
    assert entries == [
        ("", tarfile.DIRTYPE, "", None),
        ("fifo", tarfile.FIFOTYPE, "", None),
        ("hard", tarfile.REGTYPE, "", b"data"),
        ("sub", tarfile.DIRTYPE, "", None),
        ("sub/f", tarfile.LNKTYPE, "hard", None),
        ("sub/link", tarfile.SYMTYPE, "/etc/passwd", None),
    ]


def me(_info: tarfile.TarInfo) -> tuple[int, int]:
    return os.geteuid(), os.getegid()


def tar_of(*members: tuple[str, bytes | str | None]) -> io.BytesIO:
    """A tar: (name, bytes) files, (name, None) dirs, (name, "->target") symlinks."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.uid, info.gid = os.geteuid(), os.getegid()
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content[2:]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    buffer.seek(0)
    return buffer


def test_extraction_through_links_stays_in_the_root(world: tuple[Path, Path]) -> None:
    root, outside = world
    stream = tar_of(("evil", f"->{outside}"), ("evil/planted", b"x"), ("etclink", "->/etc"),
                    ("etclink/new", b"inside"), ("a/b/c", b"deep"))  # fmt: skip
    with root_fd(root) as fd:
        writer = TreeWriter(fd, "/", "", me)
        with pytest.raises((CopyError, OSError)):
            for entry in tar_entries(stream):
                writer.add(entry)
        writer.close()
    assert not (outside / "planted").exists()
    stream = tar_of(("etclink", "->/etc"), ("etclink/new", b"inside"), ("a/b/c", b"deep"))
    with root_fd(root) as fd:
        writer = TreeWriter(fd, "/", "", me)
        for entry in tar_entries(stream):
            writer.add(entry)
        writer.close()
    assert (root / "etc" / "new").read_text() == "inside"
    assert (root / "a" / "b" / "c").read_text() == "deep"  # parents a tar left out are made


def test_tar_names_that_climb_out_are_refused() -> None:
    assert relative_name("./a/b") == "a/b" and relative_name("/abs/x") == "abs/x"
    assert relative_name("a/../b") == "b" and relative_name("./") == ""
    for bad in ("../x", "a/../../x"):
        with pytest.raises(CopyError, match="outside"):
            relative_name(bad)


def test_locations() -> None:
    assert parse_location("web:/etc") == Location("web", "/etc")
    assert parse_location("/abs:olute") == Location("", "/abs:olute")
    assert parse_location("./x:y") == Location("", "./x:y")
    assert parse_location("-").is_stream
    assert parse_location("plain") == Location("", "plain")


@pytest.fixture
def fake_container(world: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """`cp` with container "c" being the hostile rootfs of `world`."""
    root, _ = world
    real = container_cp._open_side

    @contextlib.contextmanager
    def open_side(engine_root: str, location: Location) -> Iterator[_Side]:
        if not location.container:
            with real(engine_root, location) as side:
                yield side
            return
        with root_fd(root) as fd:
            path = location.path if location.path.startswith("/") else "/" + location.path
            yield _Side(fd, path, "c", None)

    monkeypatch.setattr(container_cp, "_open_side", open_side)
    return root


def cp(src: str, dst: str, **kwargs: object) -> container_cp.Copied:
    return copy("/nonexistent-engine", parse_location(src), parse_location(dst), **kwargs)  # type: ignore[arg-type]


def test_copy_out_never_reads_the_hosts_file(fake_container: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cp("c:/abs", str(out / "abs"))
    assert os.readlink(out / "abs") == "/etc/shadow"  # the link itself
    cp("c:/abs", str(out / "abs_followed"), follow_link=True)
    assert (out / "abs_followed").read_text() == INNER
    cp("c:/rel", str(out / "rel_followed"), follow_link=True)
    assert (out / "rel_followed").read_text() == INNER
    cp("c:/slash/etc/shadow", str(out / "via_slash"))
    assert (out / "via_slash").read_text() == INNER
    with pytest.raises(CopyError, match="Could not find"):
        cp("c:/host_secret", str(out / "s"), follow_link=True)
    with pytest.raises(CopyError, match="Could not find"):
        cp("c:/climb_to_host/secret", str(out / "s"))


def test_docker_copy_rules(fake_container: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (fake_container / "dir" / "sub").mkdir(parents=True)
    (fake_container / "dir" / "sub" / "f").write_text("f")
    cp("c:/dir", str(out))  # into an existing directory
    assert (out / "dir" / "sub" / "f").read_text() == "f"
    cp("c:/dir", str(out / "renamed"))  # a new name
    assert (out / "renamed" / "sub" / "f").exists()
    cp("c:/dir/.", str(out / "renamed"))  # the contents only
    cp("c:/dir/.", str(out))
    assert (out / "sub" / "f").exists()
    cp("c:/etc/shadow", str(out / "sub" / "f"))  # overwrite a file
    assert (out / "sub" / "f").read_text() == INNER
    with pytest.raises(CopyError, match="directory to a file"):
        cp("c:/dir", str(out / "sub" / "f"))
    with pytest.raises(CopyError, match="must exist"):
        cp("c:/etc/shadow", str(out / "newdir") + "/")
    with pytest.raises(CopyError, match="no such"):
        cp("c:/etc/shadow", str(out / "no" / "parent"))
    with pytest.raises(CopyError, match="not a directory"):
        cp("c:/etc/shadow/", str(out / "x"))
    with pytest.raises(CopyError, match="Could not find"):
        cp("c:/nothing", str(out))


def test_copy_in_and_streams(fake_container: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "file").write_text("hello")
    # (archive: keep our uid, as a test without root cannot give files to root)
    copied = cp(str(source / "file"), "c:/slash/etc/", archive=True)  # / links in the root
    assert (fake_container / "etc" / "file").read_text() == "hello" and copied.bytes == 5
    cp(str(source), "c:/deep/a/b", archive=True)  # a dir link to /etc: into the root's /etc
    assert (fake_container / "etc" / "src" / "file").read_text() == "hello"
    with pytest.raises(CopyError, match="Could not find"):
        cp(str(source / "file"), "c:/no/such/dir", archive=True)
    out = io.BytesIO()
    cp("c:/etc", "-", stdout=out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        names = tar.getnames()
    assert "etc" in names and "etc/shadow" in names and "etc/src/file" in names
    cp("-", "c:/deep", stdin=tar_of(("from_tar", b"t")), archive=True)
    assert (fake_container / "deep" / "from_tar").read_text() == "t"
    with pytest.raises(CopyError, match="not a directory"):
        cp("-", "c:/etc/shadow", stdin=tar_of(("x", b"t")), archive=True)


def test_one_side_must_be_a_container() -> None:
    from cove.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="at least one container"):
        cp("/a", "/b")
    with pytest.raises(InvalidArgument, match="between containers"):
        cp("a:/x", "b:/y")
