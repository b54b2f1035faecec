"""The builder's pure parts, without root: Go globs, destinations, modes, archive
detection, the context as a source root (ignore rules, links kept inside), content hashes,
cache keys and the cache file, placeholder pruning, history texts."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from cove.engine.build_cache import BuildCache, intermediate_ids, step_key
from cove.engine.build_copy import destination, parse_chmod
from cove.engine.build_layers import (
    WorkingImage,
    created_text,
    default_path,
    image_id_of,
    prune_placeholders,
)
from cove.engine.build_sources import (
    SourceRoot,
    _component_regex,
    archive_compression,
    content_hash,
    has_wildcards,
    url_file_name,
)
from cove.engine.build_stage import _go_duration, _go_list, describe
from cove.errors import DockerfileError
from cove.image.build import IgnoreRules, parse_dockerfile


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("*.md", "x.md", True),
        ("*.md", "x.txt", False),
        ("?.md", "ab.md", False),
        ("[a-c]*", "b1", True),
        ("[^a-c]*", "b1", False),
        ("\\*", "*", True),
        ("\\*", "x", False),
        ("a[", "a[", True),  # no closing bracket: taken literally
    ],
)
def test_go_glob_component(pattern: str, name: str, matches: bool) -> None:
    assert bool(_component_regex(pattern).match(name)) is matches


def test_wildcards_and_url_names() -> None:
    assert has_wildcards("src/*.c") and has_wildcards("a?") and has_wildcards("[ab]")
    assert not has_wildcards("plain/path") and not has_wildcards("escaped\\*")
    assert url_file_name("https://example.com/dl/file%20one.tgz?x=1") == "file one.tgz"
    assert url_file_name("https://example.com/") == ""


@pytest.mark.parametrize(
    ("dest", "workdir", "expected"),
    [
        ("/abs", "/w", "/abs"),
        ("/abs/", "/w", "/abs/"),
        ("rel", "/w", "/w/rel"),
        ("rel/", "/w", "/w/rel/"),
        (".", "/w", "/w/"),
        ("./", "", "/"),
        ("../up", "/w/x", "/w/up"),
    ],
)
def test_destination(dest: str, workdir: str, expected: str) -> None:
    assert destination(dest, workdir) == expected


def test_chmod_values() -> None:
    assert parse_chmod(None, "COPY", "Dockerfile", 1) is None
    assert parse_chmod("0755", "COPY", "Dockerfile", 1) == 0o755
    with pytest.raises(DockerfileError, match="Dockerfile:3: COPY --chmod=u\\+x"):
        parse_chmod("u+x", "COPY", "Dockerfile", 3)


def _tar(mode: str) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode=mode) as tar:  # type: ignore[call-overload]
        info = tarfile.TarInfo("f")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return raw.getvalue()


def test_archive_detection(tmp_path: Path) -> None:
    for mode, kind in (("w", "none"), ("w:gz", "gzip"), ("w:bz2", "bzip2"), ("w:xz", "xz")):
        path = tmp_path / f"a.{kind}"
        path.write_bytes(_tar(mode))
        assert archive_compression(str(path)) == kind
    (tmp_path / "text").write_text("just text\n" * 100)
    (tmp_path / "fake.gz").write_bytes(b"\x1f\x8b" + b"\0" * 600)
    assert archive_compression(str(tmp_path / "text")) is None
    assert archive_compression(str(tmp_path / "fake.gz")) is None


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    for name, text in {"a.txt": "a", "dir/b.txt": "b", "dir/c.log": "c", "logs/x": "x"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    os.symlink("/etc/passwd", root / "passwd-link")
    os.symlink("a.txt", root / "rel-link")
    return root


def test_sources_resolve_inside_the_context(context: Path) -> None:
    rules = IgnoreRules.parse("logs\n*.log\n**/*.log\n")
    with SourceRoot(str(context), rules=rules) as root:
        (found,) = root.resolve("rel-link", keyword="COPY", file="Dockerfile", line=2)
        assert (found.rel, found.name, found.is_dir) == ("a.txt", "rel-link", False)
        globbed = root.resolve("*/*", keyword="COPY", file="Dockerfile", line=2)
        assert [s.rel for s in globbed] == ["dir/b.txt"]  # dir/c.log and logs/x excluded
        for bad, why in (("passwd-link", "no such file"), ("../x", "outside the build context"),
                         ("logs/x", "excluded by .dockerignore")):  # fmt: skip
            with pytest.raises(DockerfileError, match=f"Dockerfile:4: COPY {bad}: .*{why}"):
                root.resolve(bad, keyword="COPY", file="Dockerfile", line=4)
        (whole,) = root.resolve(".", keyword="COPY", file="Dockerfile", line=2)
        names = [entry.info.name for entry in root.entries(whole)]
        assert "dir/c.log" not in names and "logs" not in names
        assert "passwd-link" in names  # a link inside a copied tree is listed, as a link


def test_content_hash_ignores_times_not_modes(context: Path) -> None:
    with SourceRoot(str(context)) as root:
        sources = root.resolve("dir", keyword="COPY", file="Dockerfile", line=2)
        first = content_hash(root, sources)
        os.utime(context / "dir" / "b.txt", (1, 1))
        assert content_hash(root, sources) == first
        (context / "dir" / "b.txt").chmod(0o600)
        assert content_hash(root, sources) != first


def test_cache_keys_and_file(tmp_path: Path) -> None:
    key = step_key("sha256:aa", {"instruction": {"keyword": "RUN"}})
    assert key == step_key("sha256:aa", {"instruction": {"keyword": "RUN"}})
    assert key != step_key("sha256:bb", {"instruction": {"keyword": "RUN"}})
    assert intermediate_ids(str(tmp_path)) == set()
    with BuildCache(str(tmp_path)) as cache:
        cache.put(key, "sha256:aa", "sha256:cc")
        assert cache.get(key) == "sha256:cc"
        assert intermediate_ids(str(tmp_path)) == {"sha256:aa"}
        cache.forget(key)
        assert cache.get(key) is None


def test_describe_leaves_line_numbers_out() -> None:
    one = parse_dockerfile("FROM a\nRUN make\n").stages[0].instructions[0]
    two = parse_dockerfile("FROM a\n\n\n# comment\nRUN make\n").stages[0].instructions[0]
    assert describe(one) == describe(two) and describe(one)["keyword"] == "RUN"


def test_history_texts() -> None:
    assert _go_list(["/bin/sh", "-c", 'echo "x"']) == '["/bin/sh" "-c" "echo \\"x\\""]'
    assert _go_duration(0) == "0s" and _go_duration(30_000_000_000) == "30s"
    assert _go_duration(90_000_000_000) == "1m30s"
    assert created_text(0) == "1970-01-01T00:00:00Z"
    assert created_text(None).endswith("Z") and len(created_text(None)) == 30


def test_default_path_and_ids() -> None:
    image = WorkingImage({"config": {"Env": ["A=1"]}})
    default_path(image)
    assert image.execution["Env"][0] == "A=1" and image.execution["Env"][1].startswith("PATH=")
    default_path(image)
    assert len(image.execution["Env"]) == 2
    assert image_id_of(image) == image_id_of(WorkingImage(dict(image.config)))
    assert image.parent_key == "scratch"


def test_placeholders_are_pruned(tmp_path: Path) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    (lower / "etc").mkdir(parents=True)
    (lower / "etc" / "passwd").write_text("root")
    (upper / "etc").mkdir(parents=True)
    (upper / "etc").chmod((lower / "etc").stat().st_mode & 0o7777)
    (upper / "etc" / "hosts").write_text("")  # a mount point the runtime made
    (upper / "mnt" / "src").mkdir(parents=True)  # a RUN --mount target and its parent
    (upper / "tmp").mkdir()
    (upper / "tmp" / "x").write_text("real change")
    (upper / "etc2").mkdir()
    (upper / "etc2" / "hosts").write_text("not a mount point")
    points = {"/etc/hosts", "/mnt/src", "/proc", "/etc/passwd"}
    prune_placeholders(str(upper), [str(lower)], points)
    left = sorted(str(p.relative_to(upper)) for p in upper.rglob("*"))
    assert left == ["etc2", "etc2/hosts", "tmp", "tmp/x"]


def test_placeholders_never_follow_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "etc").mkdir(parents=True)
    (outside / "etc" / "hosts").write_text("")
    upper = tmp_path / "upper"
    upper.mkdir()
    os.symlink(str(outside), upper / "host")  # a container made /host -> the outside
    prune_placeholders(str(upper), [], {"/host/etc/hosts"})
    assert (outside / "etc" / "hosts").exists()


def test_a_dockerfile_linking_outside_the_context_is_refused(tmp_path: Path) -> None:
    from cove.engine.build import BuildRequest, BuildService
    from cove.errors import BuildError

    secret = tmp_path / "secret"
    secret.write_text("FROM host-secret-line\n")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").symlink_to(secret)
    (context / "inner").write_text("FROM bb:1\n")
    (context / "Other").symlink_to("inner")
    service = BuildService(str(tmp_path / "root"))
    with pytest.raises(BuildError, match="points outside the build context") as caught:
        service._dockerfile(BuildRequest(context_dir=str(context)), str(context))
    assert "host-secret-line" not in str(caught.value)
    text, _, _ = service._dockerfile(BuildRequest(context_dir=str(context), dockerfile="Other"),
                                     str(context))  # fmt: skip
    assert text == "FROM bb:1\n"  # a link inside the context is fine
