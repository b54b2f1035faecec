"""`.dockerignore` / `.containerignore`: which files of the build context are left out.

The rules (Docker's, from moby's ignore-file reader and pattern matcher):

- One pattern per line. A line starting with `#` (in the first column) is a comment;
  other lines are stripped of surrounding whitespace and skipped when empty. A leading
  `!` makes the pattern an exception (it re-includes what earlier patterns excluded).
- Each pattern is cleaned as Go's `filepath.Clean` does (`./a/../b/` is `b`) and a
  leading `/` is dropped: patterns are relative to the context root.
- Matching is Go's `filepath.Match` on the slash-separated relative path: `*` is any run
  of characters but `/`, `?` one character but `/`, `[...]` a class (`[^...]` negated),
  `\\` escapes the next character; `**` matches any number of directories (also none):
  `**/*.go`, `a/**/b`, and a trailing `**` (`build/**`) everything below.
- A path is excluded when the last pattern that matches the path or one of its parent
  directories is not an exception. So `dir` then `!dir/keep` keeps `dir/keep` only.
  Patterns do not tell files from directories (`foo/` is `foo`).
- The Dockerfile and the ignore file are still sent with the context even when they
  match (the builder needs them), but COPY and ADD must not copy them then.

Where the file is: `<Dockerfile>.dockerignore` beside the Dockerfile (BuildKit's rule)
wins, then `.containerignore` in the context root (Podman and Buildah read it first),
then `.dockerignore` there (`find_ignore_file`).
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass

from cove.errors import BuildError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

_EXACT, _PREFIX, _SUFFIX, _REGEXP = "exact", "prefix", "suffix", "regexp"
_BOM = "\ufeff"


def go_clean(path: str) -> str:
    """Go's `path.Clean`: the shortest equivalent slash path (`""` is `.`)."""
    if not path:
        return "."
    rooted = path.startswith("/")
    cleaned = posixpath.normpath(path)
    if rooted:
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


@dataclass(frozen=True)
class IgnorePattern:
    """One compiled pattern."""

    text: str  # cleaned, without the `!`
    exclusion: bool  # an exception (`!pattern`)
    kind: str
    regex: re.Pattern[str] | None

    @classmethod
    def compile(cls, pattern: str, exclusion: bool = False) -> IgnorePattern:
        """Compile one pattern as moby's pattern matcher does (its fast paths included:
        a pattern whose only wildcard is a leading or trailing `**` compares strings)."""
        regex_parts = ["^"]
        kind = _EXACT
        pos, n, index = 0, len(pattern), 0
        in_class = False
        while pos < n:
            ch = pattern[pos]
            pos += 1
            if in_class:
                if ch == "]":
                    in_class = False
                    regex_parts.append("]")
                elif ch == "\\" and pos < n:
                    regex_parts.append(re.escape(pattern[pos]))
                    pos += 1
                elif ch in "\\[":
                    regex_parts.append("\\" + ch)
                else:
                    regex_parts.append(ch)
            elif ch == "*":
                if pos < n and pattern[pos] == "*":
                    pos += 1
                    if pos < n and pattern[pos] == "/":
                        pos += 1
                    if pos >= n:
                        if kind == _EXACT:
                            kind = _PREFIX
                        else:
                            regex_parts.append(".*")
                            kind = _REGEXP
                    else:
                        regex_parts.append("(.*/)?")
                        kind = _REGEXP
                    if index == 0:
                        kind = _SUFFIX
                else:
                    regex_parts.append("[^/]*")
                    kind = _REGEXP
            elif ch == "?":
                regex_parts.append("[^/]")
                kind = _REGEXP
            elif ch == "\\":
                kind = _REGEXP  # moby compares such patterns as plain text; Go's Match does not
                if pos < n:
                    regex_parts.append(re.escape(pattern[pos]))
                    pos += 1
                else:
                    regex_parts.append("\\\\")
            elif ch == "[":
                in_class = True
                kind = _REGEXP
                regex_parts.append("[")
                if pos < n and pattern[pos] == "^":
                    regex_parts.append("^")
                    pos += 1
                if pos < n and pattern[pos] == "]":
                    regex_parts.append("\\]")
                    pos += 1
            else:
                regex_parts.append(re.escape(ch))
            index += 1
        if in_class:
            raise BuildError(f"invalid ignore pattern {pattern!r}: unterminated [")
        regex = None
        if kind == _REGEXP:
            try:
                regex = re.compile("".join(regex_parts) + "$", re.DOTALL)
            except re.error as exc:
                raise BuildError(f"invalid ignore pattern {pattern!r}: {exc}") from None
        return cls(pattern, exclusion, kind, regex)

    def matches(self, path: str) -> bool:
        """Whether the pattern matches `path` itself (a cleaned relative slash path)."""
        if self.kind == _EXACT:
            return path == self.text
        if self.kind == _PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind == _SUFFIX:
            suffix = self.text[2:]
            if path.endswith(suffix):
                return True
            return suffix.startswith("/") and path == suffix[1:]
        assert self.regex is not None
        return self.regex.match(path) is not None

    def could_match_below(self, directory: str) -> bool:
        """Whether the pattern might match `directory`, an ancestor of it, or something
        below it. Conservative: True when unsure."""
        if "**" in self.text or "[" in self.text or "\\" in self.text:
            return True
        wanted = self.text.split("/")
        have = directory.split("/")
        for part, name in zip(wanted, have, strict=False):
            if not _component(part).match(name):
                return False
        return True


def _component(part: str) -> re.Pattern[str]:
    return re.compile(
        "^"
        + "".join("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch) for ch in part)
        + "$",
        re.DOTALL,
    )


def _relative(path: str) -> str:
    """A context-relative path in the form patterns are matched against."""
    cleaned = go_clean(path.replace(os.sep, "/"))
    cleaned = cleaned.lstrip("/")
    return "" if cleaned in (".", "") else cleaned


class IgnoreRules:
    """The compiled patterns of one ignore file."""

    __slots__ = ("patterns",)

    def __init__(self, patterns: Iterable[IgnorePattern] = ()) -> None:
        self.patterns = tuple(patterns)

    @classmethod
    def parse(cls, text: str) -> IgnoreRules:
        """The rules of an ignore file's text."""
        if text.startswith(_BOM):
            text = text[len(_BOM) :]
        lines = []
        for line in text.split("\n"):
            if line.startswith("#"):
                continue
            pattern = line.strip()
            if not pattern:
                continue
            exclusion = pattern.startswith("!")
            if exclusion:
                pattern = pattern[1:].strip()
            if pattern:
                pattern = go_clean(pattern)
                if len(pattern) > 1 and pattern.startswith("/"):
                    pattern = pattern[1:]
            lines.append(("!" if exclusion else "") + pattern)
        return cls.from_patterns(lines)

    @classmethod
    def from_patterns(cls, patterns: Iterable[str]) -> IgnoreRules:
        """The rules for patterns as a list (`!` prefix for exceptions), as given by an
        API caller: each is stripped and cleaned, empty ones skipped."""
        compiled = []
        for raw in patterns:
            pattern = raw.strip()
            if not pattern:
                continue
            exclusion = pattern.startswith("!")
            if exclusion:
                if len(pattern) == 1:
                    raise BuildError('illegal exclusion pattern: "!"')
                pattern = pattern[1:]
            compiled.append(IgnorePattern.compile(go_clean(pattern), exclusion))
        return cls(compiled)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    @property
    def has_exceptions(self) -> bool:
        return any(pattern.exclusion for pattern in self.patterns)

    def excluded(self, relpath: str, is_dir: bool = False) -> bool:
        """Whether `relpath` (relative to the context root) is left out. `is_dir` is
        accepted for callers' clarity: the rules treat files and directories alike."""
        del is_dir
        path = _relative(relpath)
        if not path:
            return False
        parents = path.split("/")[:-1]
        prefixes = ["/".join(parents[: i + 1]) for i in range(len(parents))]
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # cannot change the outcome
            hit = pattern.matches(path) or any(pattern.matches(p) for p in prefixes)
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_include_below(self, reldir: str) -> bool:
        """Whether something below the excluded directory `reldir` might be re-included
        by an exception, so that a walker must still look inside."""
        path = _relative(reldir)
        return any(
            pattern.exclusion and pattern.could_match_below(path) for pattern in self.patterns
        )


def find_ignore_file(context: str | os.PathLike[str], dockerfile: str | None = None) -> str | None:
    """The ignore file that applies: `<dockerfile>.dockerignore` (a path, relative to the
    context or absolute), else `.containerignore`, else `.dockerignore` in the context."""
    candidates = []
    if dockerfile:
        candidates.append(os.path.join(os.fspath(context), f"{dockerfile}.dockerignore"))
    candidates += [
        os.path.join(os.fspath(context), ".containerignore"),
        os.path.join(os.fspath(context), ".dockerignore"),
    ]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return None


def load_ignore_rules(
    context: str | os.PathLike[str], dockerfile: str | None = None
) -> IgnoreRules:
    """The rules of the ignore file that applies (none: no rules)."""
    path = find_ignore_file(context, dockerfile)
    if path is None:
        return IgnoreRules()
    inside = os.path.realpath(context).rstrip("/") + "/"
    if not os.path.realpath(path).startswith(inside):  # a link to a host file: refused
        raise BuildError(f"the ignore file {os.path.basename(path)} points outside the "
                         "build context")  # fmt: skip
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as file:
            text = file.read()
    except OSError as exc:
        raise BuildError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return IgnoreRules.parse(text)
    except BuildError as exc:
        raise BuildError(f"{path}: {exc}") from None


def context_files(
    root: str | os.PathLike[str], rules: IgnoreRules, *, keep: Iterable[str] = ()
) -> Iterator[str]:
    """The relative paths (slash-separated, sorted depth-first, a directory before its
    contents) of the context under `root` that `rules` do not exclude.

    Symbolic links are listed, never followed. An excluded directory is not entered
    unless an exception might re-include something below it; it is listed only when
    something below it is. `keep` names paths listed even when excluded (the Dockerfile
    and the ignore file when the context is sent somewhere).
    """
    kept = {_relative(path) for path in keep}
    base = os.fspath(root)
    yield from _walk(base, "", rules, kept, [])


def _walk(
    base: str, prefix: str, rules: IgnoreRules, kept: set[str], pending: list[str]
) -> Iterator[str]:
    directory = os.path.join(base, prefix) if prefix else base
    try:
        with os.scandir(directory) as entries:
            listing = sorted((entry.name, entry) for entry in entries)
    except OSError as exc:
        raise BuildError(f"cannot read the build context at {directory}: {exc.strerror}") from None
    for name, entry in listing:
        rel = f"{prefix}/{name}" if prefix else name
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except OSError as exc:
            raise BuildError(
                f"cannot read the build context at {entry.path}: {exc.strerror}"
            ) from None
        is_dir = stat.S_ISDIR(mode)
        excluded = rules.excluded(rel, is_dir) and rel not in kept
        if not excluded:
            yield from pending
            pending.clear()
            yield rel
            if is_dir:
                yield from _walk(base, rel, rules, kept, pending)
        elif is_dir and (
            rules.may_include_below(rel) or any(k.startswith(rel + "/") for k in kept)
        ):
            depth = len(pending)
            pending.append(rel)
            yield from _walk(base, rel, rules, kept, pending)
            del pending[depth:]
