"""What COPY and ADD copy: their sources resolved, listed and hashed.

A source is read from a `SourceRoot`: the build context (where `.dockerignore` rules
apply: an excluded file is not there at all) or an image's files (`COPY --from`). Paths
are resolved inside that root (`cove.engine.rootfs_path`): a symlink that is a source
itself is followed as Docker follows it, but only inside the root (an absolute target or
a `..` means the root's own, never the host's: a link to /etc/shadow in the context names
the context's etc/shadow, which is not there); links met inside a copied directory are
copied as links. A context path written with `..` that leaves the context is an error.

Globs (`*`, `?`, `[...]`, `\\` escapes) follow Go's filepath.Match, one path component at
a time, as Docker matches them; a pattern that matches nothing is an error. The content
hash (the cache key of a COPY/ADD) covers names, types, permission bits, link targets and
bytes: never mtimes or owners, so touching a file keeps the cache, editing it does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import stat
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from cove.engine.file_tree import Entry, TreeReader
from cove.engine.rootfs_path import open_in_root, real_path, split
from cove.errors import DockerfileError
from cove.image.build.ignore import IgnoreRules, context_files

_O_ROOT = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_O_LIST = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_WILDCARD = re.compile(r"(?<!\\)[*?\[]")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Source:
    """One thing a COPY/ADD copies. `rel` is its path in the root ("" for the root);
    `name` the file name it gets in a destination directory; `data`/`file`: a heredoc's
    content or a downloaded file (host path) instead of a path in the root."""

    label: str
    rel: str = ""
    is_dir: bool = False
    name: str = ""
    archive: bool = False  # ADD: a local tar archive, unpacked at the destination
    data: bytes | None = None
    file: str = ""
    mode: int = 0o644


def has_wildcards(path: str) -> bool:
    return _WILDCARD.search(path) is not None


def _component_regex(pattern: str) -> re.Pattern[str]:
    """Go's filepath.Match for one path component, as a regex."""
    out = []
    index, n = 0, len(pattern)
    while index < n:
        ch = pattern[index]
        index += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and index < n:
            out.append(re.escape(pattern[index]))
            index += 1
        elif ch == "[":
            end = index
            if end < n and pattern[end] == "^":
                end += 1
            if end < n and pattern[end] == "]":
                end += 1
            while end < n and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            if end >= n:
                out.append(re.escape(ch))  # no closing bracket: Go fails; take it literally
                continue
            body = pattern[index:end]
            negate = body.startswith("^")
            if negate:
                body = body[1:]
            body = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append(f"[{'^' if negate else ''}{body}]")
            index = end + 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


class SourceRoot:
    """The files sources are read from: a directory (the context, or an image mounted),
    with the context's ignore rules when it is the context."""

    def __init__(self, path: str, *, rules: IgnoreRules | None = None, context: bool = True):
        self.path = path
        self.context = context
        self.rules = rules if rules else None
        self.fd = os.open(path, _O_ROOT)
        self._included: set[str] | None = None
        self._reader_links: dict[tuple[int, int], str] = {}

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> SourceRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what is there -----------------------------------------------------------------

    def allowed(self, rel: str) -> bool:
        """Whether `rel` is part of the context (not excluded by the ignore rules)."""
        if self.rules is None or not rel:
            return True
        if self._included is None:
            self._included = set(context_files(self.path, self.rules))
        return rel in self._included

    def _error(self, keyword: str, written: str, why: str, file: str, line: int) -> DockerfileError:
        return DockerfileError(f"{keyword} {written}: {why}", file=file, line=line)

    def resolve(self, written: str, *, keyword: str, file: str, line: int) -> list[Source]:
        """The sources `written` names (several for a glob)."""
        text = written.lstrip("/") or "."
        cleaned = posixpath.normpath(text)
        where = "the build context" if self.context else "the image"
        if self.context and (cleaned == ".." or cleaned.startswith("../")):
            raise self._error(keyword, written, "forbidden path outside the build context",
                              file, line)  # fmt: skip
        cleaned = "" if cleaned == "." else cleaned
        if has_wildcards(cleaned):
            found = [self._source(rel, rel, keyword, file, line) for rel in self._glob(cleaned)]
            if not found:
                raise self._error(keyword, written, f"no file in {where} matches", file, line)
            return found
        return [self._source(cleaned, written, keyword, file, line)]

    def _source(self, rel: str, written: str, keyword: str, file: str, line: int) -> Source:
        missing = self._error(
            keyword, written,
            "no such file or directory in the build context" + (
                " (or excluded by .dockerignore)" if self.rules is not None else "")
            if self.context else "no such file or directory in the image",
            file, line,
        )  # fmt: skip
        if not self.allowed(rel):
            raise missing
        try:
            real = real_path(self.fd, rel).lstrip("/")
            fd = open_in_root(self.fd, real, os.O_PATH)
        except FileNotFoundError:
            raise missing from None
        except OSError as exc:
            raise self._error(keyword, written, exc.strerror or str(exc), file, line) from None
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
        if real != rel and not self.allowed(real):
            raise missing
        name = posixpath.basename(rel.rstrip("/")) or posixpath.basename(real)
        return Source(written, real, stat.S_ISDIR(info.st_mode), name)

    def _glob(self, pattern: str) -> list[str]:
        parts = split(pattern)
        found: list[str] = []
        top = os.open(".", _O_LIST, dir_fd=self.fd)
        try:
            self._match(top, "", [_component_regex(p) for p in parts], parts, found)
        finally:
            os.close(top)
        return sorted(found)

    def _match(
        self, dir_fd: int, prefix: str, regexes: list[re.Pattern[str]], parts: list[str],
        found: list[str],
    ) -> None:  # fmt: skip
        depth = len(split(prefix)) if prefix else 0
        regex, last = regexes[depth], depth == len(parts) - 1
        try:
            names = sorted(os.listdir(dir_fd))
        except OSError:
            return
        for name in names:
            if not regex.match(name):
                continue
            rel = f"{prefix}/{name}" if prefix else name
            if not self.allowed(rel):
                continue
            if last:
                found.append(rel)
                continue
            try:
                child = os.open(name, _O_LIST, dir_fd=dir_fd)
            except OSError:
                continue  # not a directory (links are not followed while matching)
            try:
                self._match(child, rel, regexes, parts, found)
            finally:
                os.close(child)

    # --- reading -----------------------------------------------------------------------

    def entries(
        self, source: Source, excludes: IgnoreRules | None = None
    ) -> Generator[Entry, None, None]:
        """The entries of a source (names relative to it: "" is the source itself), the
        context's excluded files and the `--exclude` patterns left out."""
        if source.data is not None or source.file:
            yield from single_entries(source)
            return
        fd = open_in_root(self.fd, source.rel, os.O_PATH)
        try:
            reader = TreeReader()
            for entry in reader.entries(fd):
                name = entry.info.name
                if name:
                    full = f"{source.rel}/{name}" if source.rel else name
                    if not self.allowed(full):
                        continue
                    if excludes is not None and excludes.excluded(name):
                        continue
                yield entry
        finally:
            os.close(fd)


def single_entries(source: Source) -> Generator[Entry, None, None]:
    import io
    import tarfile

    info = tarfile.TarInfo("")
    info.type = tarfile.REGTYPE
    info.mode = source.mode
    if source.data is not None:
        info.size = len(source.data)
        yield Entry(info, io.BytesIO(source.data))
        return
    with open(source.file, "rb") as data:
        info.size = os.fstat(data.fileno()).st_size
        yield Entry(info, data)


def content_hash(root: SourceRoot | None, sources: list[Source],
                 excludes: IgnoreRules | None = None) -> str:  # fmt: skip
    """The hash of what `sources` copy: names, types, permission bits, link targets and
    bytes (not mtimes nor owners)."""
    digest = hashlib.sha256()
    for source in sources:
        head = [source.label, source.name, source.rel, source.is_dir, source.archive]
        digest.update(json.dumps(head).encode("utf-8", "surrogateescape") + b"\n")
        if source.data is None and not source.file:
            assert root is not None
            entries: Iterator[Entry] = root.entries(source, excludes)
        else:
            entries = single_entries(source)
        for entry in entries:
            info = entry.info
            meta = [info.name, info.type.decode("latin-1"), info.mode & 0o7777, info.linkname,
                    info.size, info.devmajor, info.devminor]  # fmt: skip
            digest.update(json.dumps(meta).encode("utf-8", "surrogateescape") + b"\n")
            if entry.data is not None:
                content = hashlib.sha256()
                while chunk := entry.data.read(_CHUNK):
                    content.update(chunk)
                digest.update(content.digest())
    return digest.hexdigest()


# --- ADD: archives and URLs ------------------------------------------------------------------


def archive_compression(path: str) -> str | None:
    """ "gzip", "bzip2", "xz" or "none" when the file is a tar archive (compressed or not,
    by its content as Docker detects it), else None."""
    import tarfile

    try:
        with open(path, "rb") as raw:
            head = raw.read(6)
            raw.seek(0)
            if head.startswith(b"\x1f\x8b"):
                import gzip

                kind, stream = "gzip", gzip.GzipFile(fileobj=raw)
                block = stream.read(tarfile.BLOCKSIZE)
            elif head.startswith(b"BZh"):
                import bz2

                kind, block = "bzip2", bz2.BZ2File(raw).read(tarfile.BLOCKSIZE)
            elif head.startswith(b"\xfd7zXZ\x00"):
                import lzma

                kind, block = "xz", lzma.LZMAFile(raw).read(tarfile.BLOCKSIZE)
            else:
                kind, block = "none", raw.read(tarfile.BLOCKSIZE)
    except (OSError, EOFError, ValueError):
        return None
    if len(block) < tarfile.BLOCKSIZE:
        return None
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return None
    return kind


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def url_file_name(url: str) -> str:
    """The file name an ADD of `url` gets in a destination directory (its path's last
    part, as Docker takes it)."""
    from urllib.parse import unquote, urlsplit

    return posixpath.basename(unquote(urlsplit(url).path).rstrip("/"))


def download(url: str, folder: str, *, checksum: str | None, file: str, line: int) -> str:
    """Download `url` into a file in `folder`; returns its path. No proxy: the build's
    environment is not the engine's. `checksum` ("sha256:HEX") is verified."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    target = os.path.join(folder, hashlib.sha256(url.encode()).hexdigest()[:24])
    digest = hashlib.sha256()
    try:
        with opener.open(url, timeout=60) as response, open(target, "wb") as out:
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DockerfileError(f"ADD {url}: cannot download: {reason}", file=file,
                              line=line) from None  # fmt: skip
    if checksum is not None:
        algorithm, _, expected = checksum.partition(":")
        if algorithm != "sha256" or not expected:
            raise DockerfileError(f"ADD --checksum={checksum}: only sha256:HEX is supported",
                                  file=file, line=line)  # fmt: skip
        if digest.hexdigest() != expected.lower():
            raise DockerfileError(
                f"ADD {url}: checksum mismatch: expected sha256:{expected}, got "
                f"sha256:{digest.hexdigest()}", file=file, line=line,
            )  # fmt: skip
    return target
