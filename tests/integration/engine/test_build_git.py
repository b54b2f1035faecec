"""`cove build` from a git repository (served by `git daemon` on 127.0.0.1) and from an
http URL (a tar or a Dockerfile), as the docker CLI takes them (cove.engine.build_git)."""

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
    nothing_left,
    run_in,
    text,
)
from tests.lib.git_server import free_port, served_repo
from tests.lib.http_server import serve_folder

pytestmark = pytest.mark.root
__all__ = ["engine"]  # the fixture


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    with served_repo(tmp_path / "served") as served:
        yield served


def test_build_from_git_refs_and_folders(engine: Path, repo: tuple[str, dict[str, str]]) -> None:
    url, commits = repo
    for fragment, command, expected in (
        ("", "/version", "two\n"),  # the remote's HEAD: main
        ("#v1", "/version", "one\n"),  # a tag
        ("#next", "/version", "next\n"),  # a branch
        (f"#{commits['one']}", "/version", "one\n"),  # a commit: fetched in full
        ("#main:sub", "/here", "from sub\n"),  # a folder of a ref
    ):
        image, _ = built(engine, url + fragment)
        assert run_in(engine, image, "cat", command) == expected, fragment
    leftovers = [p.name for p in (engine / "build").iterdir() if p.name.startswith("context-")]
    assert leftovers == []
    nothing_left(engine)


def test_bad_git_contexts(engine: Path, repo: tuple[str, dict[str, str]]) -> None:
    url, _ = repo
    closed = f"git://127.0.0.1:{free_port()}/app"
    for context, message in (
        (url + "#main:../..", "outside the repository"),
        (url + "#main:nope", "has no folder 'nope'"),
        (url + "#no-such-ref", "no ref no-such-ref"),
        (url.replace("/app", "/missing"), "cannot fetch the git context"),
        (closed, "cannot fetch the git context"),
    ):
        res = build(engine, context)
        out, err = text(res)
        assert (res.returncode, out) == (1, ""), (context, err)
        assert message in err, (context, err)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[str]:
    """http://127.0.0.1:PORT/ serving ctx.tar.gz (a context) and Dockerfile (alone)."""
    site = tmp_path / "site"
    site.mkdir()
    with tarfile.open(site / "ctx.tar.gz", "w:gz") as tar:
        for name, data in (("Dockerfile", b"FROM bb:1\nCOPY f /f\n"), ("f", b"from the tar\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (site / "Dockerfile").write_text("FROM bb:1\nRUN echo alone > /alone\n")

    with serve_folder(site) as url:
        yield url


def test_build_from_an_http_tar_or_dockerfile(engine: Path, web: str) -> None:
    image, _ = built(engine, f"{web}/ctx.tar.gz")
    assert run_in(engine, image, "cat", "/f") == "from the tar\n"
    image, _ = built(engine, f"{web}/Dockerfile")
    assert run_in(engine, image, "cat", "/alone") == "alone\n"
    res = build(engine, f"{web}/missing")
    assert res.returncode == 1 and "cannot fetch the build context" in text(res)[1]
    assert os.listdir(engine / "build") == [] or all(
        not p.startswith("context-") for p in os.listdir(engine / "build")
    )
    nothing_left(engine)
