"""Shared pieces of `cove.image.archive`: the names inside an archive, deterministic tar
writing, decompression, and the streaming reader that spools each tar member (never
extracting it) and refuses hostile entries: absolute names, ``..``, devices and FIFOs, a
name listed twice, a link leaving the archive or to an entry not seen before.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import posixpath
import re
import tarfile
import tempfile
import zlib
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, cast

from cove.errors import ArchiveError, ArchiveRejected, ImageStoreError
from cove.image.digest import CHUNK, Digest, VerifyingReader

DOCKER_ARCHIVE = "docker-archive"
OCI_ARCHIVE = "oci-archive"
FORMATS = (DOCKER_ARCHIVE, OCI_ARCHIVE)

MANIFEST_JSON = "manifest.json"
REPOSITORIES = "repositories"
INDEX_JSON = "index.json"
OCI_LAYOUT = "oci-layout"
LAYOUT_VERSION = "1.0.0"

#: members up to this size are spooled in memory (while the total stays under _MEMORY_MAX)
_IN_MEMORY = 1 << 20
_MEMORY_MAX = 64 << 20
#: the largest JSON document (manifest.json, index.json, a config, a manifest) we read
_DOCUMENT_MAX = 16 << 20
_LINK_HOPS = 40
_HEX64_RE = re.compile(r"[0-9a-f]{64}")

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZIP2_MAGIC = b"BZh"


class _TarWriter:
    """Deterministic tar entries: owner root, mtime 0, 0644 files and 0755 folders."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.written: set[str] = set()

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        parent = posixpath.dirname(name)
        if parent and parent not in self.written:
            self._dir(parent)
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        info.mtime = 0
        info.uname = info.gname = ""
        return info

    def _dir(self, name: str) -> None:
        info = self._info(name, 0)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        self.tar.addfile(info)
        self.written.add(name)

    def data(self, name: str, data: bytes) -> None:
        if name not in self.written:
            self.tar.addfile(self._info(name, len(data)), io.BytesIO(data))
            self.written.add(name)

    def stream(self, name: str, size: int, source: IO[bytes] | VerifyingReader) -> None:
        """Write `size` bytes of `source`; reading it to its end runs its verification."""
        self.tar.addfile(self._info(name, size), cast(IO[bytes], source))
        if isinstance(source, VerifyingReader):
            if source.read(1):  # the tar took `size` bytes: there must be no more
                raise ArchiveError(f"{name}: the blob is longer than its recorded size")
        self.written.add(name)


def _blob_name(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


# --- decompression -------------------------------------------------------------------------


class _Peek:
    """A reader whose first bytes have been looked at (and are read again)."""

    def __init__(self, raw: IO[bytes] | BinaryIO, size: int = 8) -> None:
        self._raw = raw
        head = b""
        while len(head) < size:
            chunk = raw.read(size - len(head))
            if not chunk:
                break
            head += chunk
        self.head = head
        self._pending = head

    def read(self, size: int = -1) -> bytes:
        if self._pending:
            if size < 0:
                data, self._pending = self._pending + self._raw.read(), b""
                return data
            data, self._pending = self._pending[:size], self._pending[size:]
            return data
        return self._raw.read(size)

    def readable(self) -> bool:
        return True


def _compression_of(head: bytes) -> str:
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_XZ_MAGIC):
        return "xz"
    if head.startswith(_BZIP2_MAGIC) and len(head) > 3 and 0x31 <= head[3] <= 0x39:
        return "bzip2"
    return ""


def _decompress(compression: str, raw: Any) -> Any:
    """A reader of the decompressed content of `raw`."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(
            raw, read_size=CHUNK, read_across_frames=True, closefd=False
        )
    if compression == "xz":
        return lzma.LZMAFile(raw)
    if compression == "bzip2":
        return bz2.BZ2File(raw)
    return raw


def _decompression_errors() -> tuple[type[Exception], ...]:
    errors: tuple[type[Exception], ...] = (EOFError, zlib.error, gzip.BadGzipFile, lzma.LZMAError)
    try:
        import zstandard
    except ImportError:  # pragma: no cover - a dependency
        return errors
    return (*errors, zstandard.ZstdError)


# --- reading the tar -----------------------------------------------------------------------


@dataclass
class _Member:
    """A regular file of the archive, spooled: its size, sha256 and first bytes."""

    name: str
    size: int
    digest: Digest
    head: bytes
    data: bytes | None = None
    file: IO[bytes] | None = None

    def open(self) -> IO[bytes]:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.file is not None
        self.file.seek(0)
        return self.file

    def read(self, limit: int = _DOCUMENT_MAX) -> bytes:
        if self.size > limit:
            raise ArchiveRejected(self.name, f"too large for a JSON document ({self.size} bytes)")
        if self.data is not None:
            return self.data
        return self.open().read()


@dataclass
class _Spool:
    """What the tar holds: regular files (spooled), links (aliases) and folders."""

    tmp_dir: str
    members: dict[str, _Member] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)
    in_memory: int = 0

    def close(self) -> None:
        for member in self.members.values():
            if member.file is not None:
                member.file.close()

    def __contains__(self, name: str) -> bool:
        return name in self.members

    def add(self, info: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
        name = _entry_name(info.name)
        if info.isdir():
            if name in self.members or name in self.links:
                raise ArchiveRejected(info.name, "listed twice in the archive")
            self.dirs.add(name)
            return
        if not name:
            raise ArchiveRejected(info.name, "a file cannot be the archive's root")
        if name in self.members or name in self.links or name in self.dirs:
            raise ArchiveRejected(info.name, "listed twice in the archive")
        if info.issym():
            if info.linkname.startswith("/"):
                raise ArchiveRejected(
                    info.name, f"symbolic link to an absolute path {info.linkname!r}"
                )
            self.links[name] = _join_inside(posixpath.dirname(name), info.linkname, info.name)
            return
        if info.islnk():
            target = _entry_name(info.linkname)
            if target not in self.members and target not in self.links:
                raise ArchiveRejected(
                    info.name, f"hard link to {info.linkname!r}, which is not an earlier entry"
                )
            self.links[name] = target
            return
        if not info.isreg():
            raise ArchiveRejected(info.name, "not a regular file, folder or link (device or FIFO)")
        source = tar.extractfile(info)
        assert source is not None  # a regular file
        self.members[name] = self._spool(name, info.size, source)

    def _spool(self, name: str, size: int, source: IO[bytes]) -> _Member:
        hasher = hashlib.sha256()
        keep = size <= _IN_MEMORY and self.in_memory + size <= _MEMORY_MAX
        chunks: list[bytes] = []
        out: IO[bytes] | None = None
        head = b""
        try:
            if not keep:
                out = tempfile.TemporaryFile(dir=self.tmp_dir)
            while chunk := source.read(CHUNK):
                hasher.update(chunk)
                if len(head) < 8:
                    head = (head + chunk)[:8]
                if out is None:
                    chunks.append(chunk)
                else:
                    out.write(chunk)
        except OSError as err:
            if out is not None:
                out.close()
            if isinstance(err, gzip.BadGzipFile):
                raise
            raise ImageStoreError(f"cannot spool {name!r} into {self.tmp_dir}: {err}") from None
        digest = Digest("sha256", hasher.hexdigest())
        if out is None:
            data = b"".join(chunks)
            self.in_memory += len(data)
            return _Member(name, len(data), digest, head, data=data)
        return _Member(name, out.tell(), digest, head, file=out)

    def lookup(self, path: str, referrer: str, what: str = "") -> _Member:
        """The member `path` (as the document `referrer` names it) designates, following
        links; `what` says where in that document."""
        try:
            name = _entry_name(path)
        except ArchiveRejected as err:
            raise ArchiveRejected(referrer, f"{what}names {path!r}: {err.why}") from None
        for _ in range(_LINK_HOPS):
            if name in self.members:
                return self.members[name]
            if name not in self.links:
                raise ArchiveRejected(
                    referrer, f"{what}names {path!r}, which is not in the archive"
                )
            name = self.links[name]
        raise ArchiveRejected(referrer, f"{what}names {path!r}: too many levels of links")


def _entry_name(raw: str) -> str:
    """An archive-relative name: `./a//b` is `a/b`; absolute names and `..` are refused."""
    if raw.startswith("/"):
        raise ArchiveRejected(raw, "absolute path")
    if "\x00" in raw:
        raise ArchiveRejected(raw, "NUL byte in the name")
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveRejected(raw, "'..' in the path")
    return "/".join(parts)


def _join_inside(folder: str, target: str, entry: str) -> str:
    parts = folder.split("/") if folder else []
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ArchiveRejected(entry, f"link target {target!r} leaves the archive")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _read_archive(stream: IO[bytes] | BinaryIO, spool: _Spool) -> None:
    peek = _Peek(stream)
    if not peek.head:
        raise ArchiveError("the archive is empty")
    compression = _compression_of(peek.head)
    source = _decompress(compression, peek)
    errors: tuple[type[Exception], ...] = (tarfile.TarError, *_decompression_errors(), ValueError)
    try:
        with tarfile.open(fileobj=source, mode="r|") as tar:
            for info in tar:
                spool.add(info, tar)
    except errors as err:
        what = f"{compression}-compressed tar" if compression else "tar"
        raise ArchiveError(f"not a valid {what} archive: {err}") from None
