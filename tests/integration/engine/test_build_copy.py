"""`cove build`: COPY and ADD (Docker's rules for sources and destinations, owners and
modes, archives, URLs, heredocs, --from), .dockerignore, and a hostile context."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.engine.build_support import (
    build,
    built,
    engine,
    layer_names,
    nothing_left,
    run_in,
    stored_config,
    text,
    write_context,
)
from tests.lib.http_server import serve_folder

pytestmark = pytest.mark.root
__all__ = ["engine"]  # the fixture

FILES: dict[str, str | bytes] = {
    "dir/a.txt": "a\n",
    "dir/sub/b.txt": "b\n",
    "x.md": "x\n",
    "y.md": "y\n",
}


def test_copy_sources_and_destinations(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
FROM bb:1
COPY dir /d1
COPY dir/ /d2/
COPY x.md /single
COPY x.md /tmp
COPY *.md /mds/
COPY x.md y.md /two/
WORKDIR /work
COPY x.md .
COPY y.md rel/
COPY --chown=nobody:wheel --chmod=750 dir /owned
COPY --chown=1234 x.md /numeric
COPY <<EOF <<"RAW" /etc/docs/
expanded $GREETING
EOF
kept $GREETING
RAW
"""
    context = write_context(tmp_path / "ctx", {**FILES, "Dockerfile": dockerfile})
    (context / "dir" / "exec.sh").write_text("#!/bin/sh\n")
    (context / "dir" / "exec.sh").chmod(0o755)
    image, _ = built(engine, context, "-t", "copies")
    listing = run_in(engine, image, "sh", "-c",
                     "cd / && find d1 d2 single tmp/x.md mds two work owned numeric etc/docs "
                     "| sort")  # fmt: skip
    assert listing.split() == [
        "d1", "d1/a.txt", "d1/exec.sh", "d1/sub", "d1/sub/b.txt",
        "d2", "d2/a.txt", "d2/exec.sh", "d2/sub", "d2/sub/b.txt",
        "etc/docs", "etc/docs/EOF", "etc/docs/RAW",
        "mds", "mds/x.md", "mds/y.md",
        "numeric", "owned", "owned/a.txt", "owned/exec.sh", "owned/sub", "owned/sub/b.txt",
        "single", "tmp/x.md", "two", "two/x.md", "two/y.md",
        "work", "work/rel", "work/rel/y.md", "work/x.md",
    ]  # fmt: skip
    modes = run_in(engine, image, "stat", "-c", "%n %a %u:%g", "/d1/a.txt", "/d1/exec.sh",
                   "/tmp", "/owned", "/owned/a.txt", "/numeric")  # fmt: skip
    assert modes.splitlines() == [
        "/d1/a.txt 644 0:0", "/d1/exec.sh 755 0:0",
        "/tmp 1777 0:0",  # an existing directory keeps its mode and owner
        "/owned 750 1000:10", "/owned/a.txt 750 1000:10", "/numeric 644 1234:1234",
    ]  # fmt: skip
    assert run_in(engine, image, "cat", "/etc/docs/EOF", "/etc/docs/RAW") == (
        "expanded \nkept $GREETING\n"
    )
    history = [e["created_by"] for e in stored_config(engine, image)["history"]]
    assert any(h.startswith("/bin/sh -c #(nop) COPY dir:") and h.endswith(" in /d1 ")
               for h in history)  # fmt: skip
    assert any(h.startswith("/bin/sh -c #(nop) COPY file:") and h.endswith(" in /single ")
               for h in history)  # fmt: skip


def test_copy_layer_is_only_the_copied_files(engine: Path, tmp_path: Path) -> None:
    context = write_context(
        tmp_path / "ctx", {**FILES, "Dockerfile": "FROM bb:1\nCOPY dir /etc/dir\n"}
    )
    image, _ = built(engine, context)
    assert layer_names(engine, image, 1) == [
        "etc",
        "etc/dir",
        "etc/dir/a.txt",
        "etc/dir/sub",
        "etc/dir/sub/b.txt",
    ]
    assert run_in(engine, image, "cat", "/etc/passwd").startswith("root:")  # /etc merged


def test_copy_from_stage_and_image(engine: Path, tmp_path: Path) -> None:
    dockerfile = """\
FROM bb:1 AS builder
RUN mkdir -p /out && echo artifact > /out/app && ln -s app /out/link
FROM scratch
COPY --from=builder /out/ /
COPY --from=0 /out/app /again
COPY --from=bb:1 /bin/busybox /bin/busybox
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    image, _ = built(engine, context)
    out = run_in(engine, image, "/bin/busybox", "sh", "-c",
                 "/bin/busybox cat /app /again; /bin/busybox readlink /link")  # fmt: skip
    assert out == "artifact\nartifact\napp\n"


def test_multiple_sources_need_a_directory(engine: Path, tmp_path: Path) -> None:
    context = write_context(
        tmp_path / "ctx", {**FILES, "Dockerfile": "FROM bb:1\nCOPY *.md /one\n"}
    )
    res = build(engine, context)
    assert res.returncode == 1
    assert "Dockerfile:2: COPY: with more than one source the destination must be a directory" \
        in text(res)[1]  # fmt: skip


def _archive(kind: str) -> bytes:
    raw = io.BytesIO()
    mode = {"plain": "w", "gzip": "w:gz", "bzip2": "w:bz2", "xz": "w:xz"}[kind]
    with tarfile.open(fileobj=raw, mode=mode) as tar:  # type: ignore[call-overload]
        for name, data in (("top.txt", b"top\n"), ("inner/deep.txt", b"deep\n")):
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.gid, info.mtime = len(data), 33, 44, 1_000_000
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def test_add_unpacks_local_archives(engine: Path, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {f"a.{kind}": _archive(kind)
                                     for kind in ("plain", "gzip", "bzip2", "xz")}  # fmt: skip
    files["not-a-tar.gz"] = b"\x1f\x8b but not gzip at all"
    files["Dockerfile"] = """\
FROM bb:1
ADD a.plain /plain
ADD a.gzip /gzip/
ADD a.bzip2 /bzip2
ADD a.xz /xz
ADD --chown=7:8 a.gzip /owned
ADD not-a-tar.gz /copied/
COPY a.gzip /not-unpacked.tgz
"""
    context = write_context(tmp_path / "ctx", files)
    image, _ = built(engine, context)
    out = run_in(engine, image, "sh", "-c",
                 "for d in plain gzip bzip2 xz; do cat /$d/top.txt /$d/inner/deep.txt; done; "
                 "stat -c '%u:%g' /plain/top.txt /owned/inner/deep.txt; "
                 "ls /copied; test -f /not-unpacked.tgz && echo file")  # fmt: skip
    assert out.split() == ["top", "deep"] * 4 + ["33:44", "7:8", "not-a-tar.gz", "file"]


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    """A file server on 127.0.0.1 (only): the URL of its folder."""
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / "remote.txt").write_text("from the server\n")

    with serve_folder(folder) as url:
        yield url


def test_add_downloads_urls(engine: Path, tmp_path: Path, http_server: str) -> None:
    import hashlib

    good = hashlib.sha256(b"from the server\n").hexdigest()
    dockerfile = f"""\
FROM bb:1
ADD {http_server}/remote.txt /downloads/
ADD --checksum=sha256:{good} {http_server}/remote.txt /named.txt
"""
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    image, _ = built(engine, context)
    out = run_in(engine, image, "sh", "-c", "cat /downloads/remote.txt; stat -c %a /named.txt")
    assert out == "from the server\n600\n"
    bad = write_context(
        tmp_path / "bad",
        {
            "Dockerfile": (
                f"FROM bb:1\nADD --checksum=sha256:{'0' * 64} {http_server}/remote.txt /x\n"
            )
        },
    )
    res = build(engine, bad)
    assert res.returncode == 1 and "Dockerfile:2: ADD" in text(res)[1]
    assert "checksum mismatch" in text(res)[1]
    missing = write_context(
        tmp_path / "missing", {"Dockerfile": (f"FROM bb:1\nADD {http_server}/absent.txt /x\n")}
    )
    res = build(engine, missing)
    assert res.returncode == 1 and "Dockerfile:2: ADD" in text(res)[1]


def test_dockerignore_with_exceptions(engine: Path, tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {
        "Dockerfile": "FROM bb:1\nCOPY . /ctx/\n",
        ".dockerignore": "logs\n!logs/keep.log\n*.tmp\n**/secret*\nDockerfile\n",
        "logs/drop.log": "d", "logs/keep.log": "k", "junk.tmp": "t",
        "deep/er/secret.key": "s", "deep/er/fine.txt": "f", "app.py": "p",
    }  # fmt: skip
    context = write_context(tmp_path / "ctx", files)
    image, _ = built(engine, context)
    listing = run_in(engine, image, "sh", "-c", "cd /ctx && find . -type f | sort")
    assert listing.split() == ["./.dockerignore", "./app.py", "./deep/er/fine.txt",
                               "./logs/keep.log"]  # fmt: skip
    for excluded in ("junk.tmp", "logs/drop.log"):
        bad = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM bb:1\nCOPY {excluded} /\n"})
        res = build(engine, bad)
        assert res.returncode == 1
        assert f"Dockerfile:2: COPY {excluded}: no such file" in text(res)[1]


def test_hostile_context_never_copies_host_files(engine: Path, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"dir/ok.txt": "ok\n"})
    os.symlink("/etc/shadow", context / "shadowlink")
    os.symlink("/etc", context / "etclink")
    os.symlink("/etc/shadow", context / "dir" / "inner-link")
    os.symlink("../../../../../../etc/shadow", context / "climb")
    host_shadow = Path("/etc/shadow").read_bytes()
    for source in ("shadowlink", "etclink/", "etclink/shadow", "climb", "etclink/sha*"):
        (context / "Dockerfile").write_text(f"FROM bb:1\nCOPY {source} /x\n")
        res = build(engine, context)
        assert res.returncode == 1, source
        assert f"Dockerfile:2: COPY {source}: " in text(res)[1]
    # a link inside a copied folder is copied as a link, pointing in the image
    (context / "Dockerfile").write_text("FROM bb:1\nCOPY dir /dir\nCOPY . /all/\n")
    image, _ = built(engine, context)
    out = run_in(engine, image, "sh", "-c", "readlink /dir/inner-link; readlink /all/shadowlink; "
                 "cat /dir/inner-link /all/climb /all/etclink/shadow 2>&1 || true")  # fmt: skip
    assert out.startswith("/etc/shadow\n/etc/shadow\n")
    assert out.count("No such file or directory") == 3  # busybox has no /etc/shadow
    host_lines = [line for line in host_shadow.decode("latin-1").splitlines() if line]
    assert host_lines and not any(line in out for line in host_lines)
    # the context's own etc/shadow is what a link to /etc/shadow names
    write_context(context, {"etc/shadow": "the context's own\n"})
    (context / "Dockerfile").write_text("FROM bb:1\nCOPY shadowlink /x\n")
    image, _ = built(engine, context)
    assert run_in(engine, image, "cat", "/x") == "the context's own\n"
    nothing_left(engine)


def test_copy_errors_name_the_line(engine: Path, tmp_path: Path) -> None:
    cases = {
        "COPY ../outside /x": "COPY ../outside: forbidden path outside the build context",
        "COPY absent.txt /x": "COPY absent.txt: no such file or directory in the build context",
        "COPY *.none /x/": "COPY *.none: no file in the build context matches",
        "COPY --chown=nosuchuser x.md /x": "COPY --chown=nosuchuser: unable to find user",
        "COPY --chmod=9z x.md /x": "COPY --chmod=9z: expected an octal mode",
        "COPY --from=bb:1 /no/such /x": "COPY /no/such: no such file or directory in the image",
    }
    for line, message in cases.items():
        context = write_context(tmp_path / "ctx", {**FILES, "Dockerfile": f"FROM bb:1\n{line}\n"})
        res = build(engine, context)
        assert res.returncode == 1, line
        assert f"Dockerfile:2: {message}" in text(res)[1], text(res)[1]
    nothing_left(engine)
