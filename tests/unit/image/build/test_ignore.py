"""cove.image.build.ignore: .dockerignore / .containerignore rules and the context walker."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cove.errors import BuildError
from cove.image.build.ignore import (
    IgnoreRules,
    context_files,
    find_ignore_file,
    go_clean,
    load_ignore_rules,
)


def excluded(patterns: str, path: str) -> bool:
    return IgnoreRules.parse(patterns).excluded(path)


# --- reading the file ------------------------------------------------------------------------


def test_parse_comments_blank_lines_and_cleaning() -> None:
    rules = IgnoreRules.parse(
        "\ufeff# comment\n\n  spaced  \n/rooted\n./dot/./x/../y/\n!  keep\n #not a comment\n"
    )
    assert [(p.text, p.exclusion) for p in rules.patterns] == [
        ("spaced", False),
        ("rooted", False),
        ("dot/y", False),
        ("keep", True),
        ("#not a comment", False),
    ]


def test_lone_exclamation_mark_is_an_error() -> None:
    with pytest.raises(BuildError, match='illegal exclusion pattern: "!"'):
        IgnoreRules.parse("a\n!\n")


def test_bad_pattern_is_an_error() -> None:
    with pytest.raises(BuildError, match="invalid ignore pattern"):
        IgnoreRules.parse("[abc\n")


def test_empty_rules() -> None:
    rules = IgnoreRules.parse("# nothing\n")
    assert not rules
    assert not rules.excluded("anything")


@pytest.mark.parametrize(
    ("path", "cleaned"),
    [("", "."), ("a//b/", "a/b"), ("//a", "/a"), ("./a/../b", "b"), ("../a", "../a"), ("/", "/")],
)
def test_go_clean(path: str, cleaned: str) -> None:
    assert go_clean(path) == cleaned


# --- matching --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patterns", "path", "result"),
    [
        # the examples of the Dockerfile reference
        ("*/temp*", "somedir/temporary.txt", True),
        ("*/temp*", "somedir/temp", True),
        ("*/temp*", "temp", False),
        ("*/*/temp*", "somedir/subdir/temporary.txt", True),
        ("temp?", "tempa", True),
        ("temp?", "temp", False),
        ("temp?", "dir/tempa", False),
        ("**/*.go", "main.go", True),
        ("**/*.go", "a/b/c.go", True),
        ("*.md\n!README.md", "README.md", False),
        ("*.md\n!README.md", "CHANGES.md", True),
        ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
        ("*.md\n!README*.md\nREADME-secret.md", "README-public.md", False),
        ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),
        # directories exclude what is below them
        ("node_modules", "node_modules/a/b.js", True),
        ("/foo/bar", "foo/bar/baz", True),
        ("foo/bar", "foo/bar", True),
        ("foo/bar", "bar", False),
        ("foo/", "foo/x", True),
        # no implicit "anywhere": a name pattern is relative to the root
        ("__pycache__", "pkg/__pycache__/a.pyc", False),
        ("**/__pycache__", "pkg/__pycache__/a.pyc", True),
        # exceptions inside excluded directories
        ("dir\n!dir/keep", "dir/keep", False),
        ("dir\n!dir/keep", "dir/keep/inner", False),
        ("dir\n!dir/keep", "dir/other", True),
        ("*\n!src", "src/a/b.py", False),
        ("*\n!src", "docs/x", True),
        # ** in the middle and at the end
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "a/x/y/c", False),
        ("build/**", "build/x/y", True),
        ("build/**", "build", False),
        ("**", "anything/at/all", True),
        ("**foo", "xfoo", True),  # moby's suffix fast path
        ("foo**", "foobar/x", True),  # moby's prefix fast path
        # classes, escapes, literal characters
        ("file[0-9].txt", "file3.txt", True),
        ("file[0-9].txt", "filex.txt", False),
        ("file[^0-9].txt", "filex.txt", True),
        ("a\\*b", "a*b", True),
        ("a\\*b", "axb", False),
        ("a.b", "axb", False),
        ("a+(b)", "a+(b)", True),
        ("*", "a/b", True),
        ("?", "a", True),
    ],
)
def test_matching(patterns: str, path: str, result: bool) -> None:
    assert excluded(patterns, path) is result


def test_root_and_path_spellings() -> None:
    rules = IgnoreRules.parse("a/b\n")
    assert rules.excluded("./a/b") and rules.excluded("/a/b") and rules.excluded("a//b/")
    assert not rules.excluded(".") and not rules.excluded("")


def test_is_dir_does_not_change_the_answer() -> None:
    rules = IgnoreRules.parse("logs\n")
    assert rules.excluded("logs", is_dir=True) and rules.excluded("logs", is_dir=False)


def test_may_include_below() -> None:
    rules = IgnoreRules.parse("*\n!src/keep\n!**/important\n")
    assert rules.may_include_below("src")
    assert rules.may_include_below("anything")  # because of **
    narrow = IgnoreRules.parse("*\n!src/keep\n!docs\n")
    assert narrow.may_include_below("src")
    assert not narrow.may_include_below("build")
    assert narrow.may_include_below("docs/sub")  # the exception matches an ancestor
    assert not IgnoreRules.parse("build\n").may_include_below("build")
    assert IgnoreRules.parse("*\n!s*c/x\n").may_include_below("src")


# --- against a reference implementation --------------------------------------------------------

_NAMES = ["a", "b", "ab", "ba", "c"]
_PATTERN_PARTS = ["a", "b", "ab", "*", "?", "a*", "*b", "?b", "**"]


def _component_regex(part: str) -> re.Pattern[str]:
    body = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in part)
    return re.compile(f"^{body}$")


def _reference_match(pattern: list[str], path: list[str], *, at_start: bool = True) -> bool:
    """filepath.Match per component, `**` any number of components (at the end: at
    least one, as `dir/**` does not match `dir` itself)."""
    if not pattern:
        return not path
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        if not rest:
            return len(path) >= 1 or at_start
        return any(_reference_match(rest, path[i:], at_start=False) for i in range(len(path) + 1))
    if not path or not _component_regex(head).match(path[0]):
        return False
    return _reference_match(rest, path[1:], at_start=False)


def _reference_excluded(patterns: list[str], path: str) -> bool:
    parts = path.split("/")
    candidates = [parts[: i + 1] for i in range(len(parts))]  # parents and the path
    result = False
    for pattern in patterns:
        exception = pattern.startswith("!")
        body = pattern[1:] if exception else pattern
        if any(_reference_match(body.split("/"), candidate) for candidate in candidates):
            result = not exception
    return result


_pattern = st.builds(
    lambda parts, bang: ("!" if bang else "") + "/".join(parts),
    st.lists(st.sampled_from(_PATTERN_PARTS), min_size=1, max_size=4),
    st.booleans(),
)
_path = st.lists(st.sampled_from(_NAMES), min_size=1, max_size=4).map("/".join)


@settings(max_examples=400)
@given(st.lists(_pattern, min_size=1, max_size=5), _path)
def test_matching_agrees_with_a_reference(patterns: list[str], path: str) -> None:
    rules = IgnoreRules.from_patterns(patterns)
    assert rules.excluded(path) == _reference_excluded(patterns, path)


@settings(max_examples=200)
@given(st.lists(_pattern, min_size=1, max_size=5), _path)
def test_skipping_a_directory_never_loses_an_included_file(patterns: list[str], path: str) -> None:
    rules = IgnoreRules.from_patterns(patterns)
    parts = path.split("/")
    for depth in range(1, len(parts)):
        directory = "/".join(parts[:depth])
        if rules.excluded(directory) and not rules.may_include_below(directory):
            assert rules.excluded(path)


# --- finding and loading the file ---------------------------------------------------------------


def test_find_ignore_file_precedence(tmp_path: Path) -> None:
    assert find_ignore_file(tmp_path) is None
    (tmp_path / ".dockerignore").write_text("a\n")
    assert find_ignore_file(tmp_path) == str(tmp_path / ".dockerignore")
    (tmp_path / ".containerignore").write_text("b\n")
    assert find_ignore_file(tmp_path) == str(tmp_path / ".containerignore")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "Dockerfile.dockerignore").write_text("c\n")
    assert find_ignore_file(tmp_path, "build/Dockerfile") == str(
        tmp_path / "build" / "Dockerfile.dockerignore"
    )
    assert find_ignore_file(tmp_path, "other/Dockerfile") == str(tmp_path / ".containerignore")


def test_load_ignore_rules(tmp_path: Path) -> None:
    assert not load_ignore_rules(tmp_path)
    (tmp_path / ".dockerignore").write_text("*.log\n!keep.log\n")
    rules = load_ignore_rules(tmp_path)
    assert rules.excluded("x.log") and not rules.excluded("keep.log")


def test_load_ignore_rules_names_the_file_on_error(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("!\n")
    with pytest.raises(BuildError, match=r"\.dockerignore: illegal exclusion pattern"):
        load_ignore_rules(tmp_path)


# --- walking the context ----------------------------------------------------------------------


def make_tree(root: Path, paths: list[str]) -> None:
    for path in paths:
        target = root / path
        if path.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path)


TREE = [
    "Dockerfile",
    ".dockerignore",
    "README.md",
    "docs/guide.md",
    "src/app.py",
    "src/__pycache__/app.pyc",
    "node_modules/pkg/index.js",
    "node_modules/keep/index.js",
    "empty/",
]


def test_context_files_without_rules(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    assert list(context_files(tmp_path, IgnoreRules())) == [
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "docs",
        "docs/guide.md",
        "empty",
        "node_modules",
        "node_modules/keep",
        "node_modules/keep/index.js",
        "node_modules/pkg",
        "node_modules/pkg/index.js",
        "src",
        "src/__pycache__",
        "src/__pycache__/app.pyc",
        "src/app.py",
    ]


def test_context_files_with_exceptions(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    rules = IgnoreRules.parse(
        "Dockerfile\n.dockerignore\n*.md\n**/__pycache__\nnode_modules\n!node_modules/keep\n"
    )
    assert list(context_files(tmp_path, rules)) == [
        "docs",
        "docs/guide.md",
        "empty",
        "node_modules",
        "node_modules/keep",
        "node_modules/keep/index.js",
        "src",
        "src/app.py",
    ]


def test_context_files_keep_the_dockerfile_and_ignore_file(tmp_path: Path) -> None:
    make_tree(tmp_path, TREE)
    rules = IgnoreRules.parse("*\n")
    assert list(context_files(tmp_path, rules, keep=["Dockerfile", ".dockerignore"])) == [
        ".dockerignore",
        "Dockerfile",
    ]
    make_tree(tmp_path, ["sub/Dockerfile"])
    assert list(context_files(tmp_path, rules, keep=["sub/Dockerfile"])) == [
        "sub",
        "sub/Dockerfile",
    ]


def test_context_files_skip_excluded_directories_early(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path, TREE)
    scanned: list[str] = []
    real_scandir = os.scandir

    def spy(path: str) -> object:
        scanned.append(os.path.relpath(path, tmp_path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", spy)
    list(context_files(tmp_path, IgnoreRules.parse("node_modules\nsrc/__pycache__\n")))
    assert "node_modules" not in scanned and "src/__pycache__" not in scanned
    scanned.clear()
    list(context_files(tmp_path, IgnoreRules.parse("node_modules\n!node_modules/keep\n")))
    assert "node_modules" in scanned and "node_modules/pkg" not in scanned


def test_context_files_do_not_follow_symlinks(tmp_path: Path) -> None:
    make_tree(tmp_path, ["real/file"])
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "shadow").symlink_to("/etc/shadow")
    assert list(context_files(tmp_path, IgnoreRules())) == ["link", "real", "real/file", "shadow"]


def test_context_files_unreadable_root(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="cannot read the build context"):
        list(context_files(tmp_path / "missing", IgnoreRules()))


@settings(max_examples=50, deadline=None)
@given(st.lists(_pattern, min_size=1, max_size=4))
def test_walker_agrees_with_excluded(patterns: list[str]) -> None:
    import tempfile

    rules = IgnoreRules.from_patterns(patterns)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = ["a/b/c", "a/ab", "b/a", "ab/ba/c", "c"]
        make_tree(root, files)
        listed = set(context_files(root, rules))
        for file in files:
            assert (file in listed) == (not rules.excluded(file)), file


def test_an_ignore_file_linking_outside_the_context_is_refused(tmp_path: Path) -> None:
    from cove.errors import BuildError
    from cove.image.build import load_ignore_rules

    (tmp_path / "host-file").write_text("secret-pattern\n")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / ".dockerignore").symlink_to(tmp_path / "host-file")
    with pytest.raises(BuildError, match="points outside the build context") as caught:
        load_ignore_rules(context)
    assert "secret-pattern" not in str(caught.value)
