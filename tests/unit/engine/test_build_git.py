"""cove.engine.build_git: which contexts are git repositories, and their ref and folder."""

from __future__ import annotations

import pytest

from cove.engine.build_git import GitSource, parse_git_url
from cove.errors import BuildError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://host/x/repo.git", GitSource("https://host/x/repo.git", "", "")),
        ("http://host/repo.git#v1", GitSource("http://host/repo.git", "v1", "")),
        ("git://h:9418/repo#main:sub/dir/", GitSource("git://h:9418/repo", "main", "sub/dir")),
        ("git@host:team/repo.git#:docker", GitSource("git@host:team/repo.git", "", "docker")),
        ("github.com/team/repo#abc123", GitSource("https://github.com/team/repo", "abc123", "")),
    ],
)
def test_git_urls(text: str, expected: GitSource) -> None:
    assert parse_git_url(text) == expected


@pytest.mark.parametrize(
    "text", ["https://host/archive.tar.gz", "http://host/Dockerfile", ".", "-", "dir/repo.git"]
)
def test_not_git_urls(text: str) -> None:
    assert parse_git_url(text) is None


def test_hosts_and_option_like_refs() -> None:
    assert parse_git_url("git@127.0.0.1:repo.git").host == "127.0.0.1"  # type: ignore[union-attr]
    assert parse_git_url("git://[::1]:9418/r").host == "::1"  # type: ignore[union-attr]
    with pytest.raises(BuildError, match="cannot start with '-'"):
        parse_git_url("git://host/repo#--upload-pack=touch /tmp/x")
