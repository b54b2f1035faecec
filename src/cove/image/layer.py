"""Image layers: apply a layer tar into a directory, and produce one from an overlay upper dir.

`apply_layer` streams a layer (plain tar, gzip or zstd, detected by magic bytes) into an
empty directory, hashing while it reads: the compressed digest (when given) and the diff_id
(sha256 of the uncompressed tar). A mismatch, a hostile entry or any failure removes the
partial directory and raises a `LayerError` subclass.

How extraction stays inside the layer directory:
- names are normalised lexically (leading "/" stripped, "." dropped, ".." resolved); a ".."
  that climbs above the layer root is rejected;
- every file system call is made relative to a file descriptor of the layer root, and the
  extractor knows which relative paths are real directories it created or checked itself
  (`_Extractor.dirs`). A parent that is not known is checked with lstat, one component at a
  time: a symlink or a non-directory in the way is rejected, never followed. The last
  component is created with O_CREAT|O_EXCL|O_NOFOLLOW (or mkdir/symlink/mknod/link, which
  never follow it either);
- hard links must name an entry extracted earlier in the same layer (and still there);
- character and block devices are skipped (with a note) unless `allow_devices=True`; a
  character device 0/0 is an overlay whiteout and is always allowed;
- PAX xattrs are applied except the overlay's own (trusted.overlay.*, user.overlay.*),
  which a layer must not forge; refusals by the file system become notes.

Whiteouts become overlayfs whiteouts: ".wh.NAME" -> character device 0/0 named NAME,
".wh..wh..opq" -> xattr trusted.overlay.opaque=y on its directory, other ".wh..wh.*" are
ignored. As the OCI image spec says, a whiteout hides only lower layers: an entry of the
same layer under that name wins (a directory then becomes opaque).

Hashing runs in a helper thread (hashlib releases the GIL), joined before apply_layer
returns: it overlaps the writes, and no thread outlives the call.

`diff_tar` is the reverse (for commit and the builder): a deterministic PAX tar of an
overlay upper dir, whiteouts and opaque dirs converted back to ".wh." entries.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import queue
import shutil
import stat
import struct
import tarfile
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Protocol, cast

from cove.errors import LayerDigestMismatch, LayerError, LayerRejected

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_ALLOWED_XATTR_PREFIXES = ("user.", "security.", "trusted.", "system.posix_acl_")
_PAX_XATTR = "SCHILY.xattr."

_CHUNK = 1 << 20
_TAR_BUFSIZE = 64 * 1024
_HASH_QUEUE = 16
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_XZ_MAGIC = b"\xfd7zXZ\x00"
_BZIP2_MAGIC = b"BZh"

_O_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class LayerSummary:
    """What `apply_layer` did."""

    entries: int  # tar members processed (including skipped ones)
    bytes: int  # length of the uncompressed tar stream
    compressed_bytes: int  # length of the stream as given
    compression: str  # "none", "gzip" or "zstd"
    diff_id: str  # "sha256:..." of the uncompressed tar stream
    digest: str  # digest of the stream as given, same algorithm as the expected one
    disk_usage: int  # bytes allocated (st_blocks) for the files and directories written
    notes: tuple[str, ...] = ()  # skipped entries, refused xattrs, ...


@dataclass(frozen=True)
class DiffSummary:
    """What `diff_tar` wrote."""

    entries: int
    bytes: int
    diff_id: str


# --- streams -----------------------------------------------------------------------------


class _Hasher:
    """A hash updated by a helper thread, so hashing overlaps decompression and writes.

    The thread lives only while a layer is applied (`close` joins it): no thread is left
    behind for a caller that forks later. At most `_HASH_QUEUE` chunks wait in memory.
    """

    def __init__(self, algorithm: str) -> None:
        self._hash = hashlib.new(algorithm)
        self._queue: queue.Queue[bytes | None] = queue.Queue(_HASH_QUEUE)
        self._thread = threading.Thread(target=self._run, name="cove-layer-hash", daemon=True)
        self._thread.start()
        self._digest: str | None = None

    def _run(self) -> None:
        update = self._hash.update
        get = self._queue.get
        while (data := get()) is not None:
            update(data)

    def update(self, data: bytes) -> None:
        self._queue.put(data)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    def hexdigest(self) -> str:
        if self._digest is None:
            self.close()
            self._digest = self._hash.hexdigest()
        return self._digest


class _HashingReader:
    """Reads from `raw`, hashing and counting every byte that passes."""

    def __init__(self, raw: _Reader, hasher: _Hasher) -> None:
        self._raw = raw
        self.hash = hasher
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._raw.read(size)
        if data:
            self.hash.update(data)
            self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


class _PushbackReader:
    """Gives back `head` first, then reads from `raw`."""

    def __init__(self, head: bytes, raw: _Reader) -> None:
        self._head = head
        self._raw = raw

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            if size < 0 or size >= len(self._head):
                head, self._head = self._head, b""
                return head
            head, self._head = self._head[:size], self._head[size:]
            return head
        return self._raw.read(size)


def detect_compression(head: bytes) -> str:
    """ "gzip", "zstd" or "none" from the first bytes of a layer; others are rejected."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    if head.startswith(_XZ_MAGIC):
        raise LayerError("xz-compressed layers are not supported")
    if head.startswith(_BZIP2_MAGIC) and len(head) > 3 and 0x31 <= head[3] <= 0x39:
        raise LayerError("bzip2-compressed layers are not supported")
    return "none"


def _decompressor(compression: str, raw: _Reader) -> _Reader:
    if compression == "gzip":
        return gzip.GzipFile(fileobj=cast(Any, raw), mode="rb")
    if compression == "zstd":
        import zstandard

        reader: _Reader = zstandard.ZstdDecompressor().stream_reader(
            cast(Any, raw), read_size=_CHUNK, read_across_frames=True, closefd=False
        )
        return reader
    return raw


def _stream_errors(compression: str) -> tuple[type[Exception], ...]:
    errors: tuple[type[Exception], ...] = (
        tarfile.TarError,
        EOFError,
        zlib.error,
        gzip.BadGzipFile,
        ValueError,  # a malformed number in a tar header
        struct.error,
    )
    if compression == "zstd":
        import zstandard

        errors += (zstandard.ZstdError,)
    return errors


def _split_digest(value: str, layer: str) -> tuple[str, str]:
    algorithm, sep, hexdigest = value.partition(":")
    if not sep or algorithm not in ("sha256", "sha384", "sha512") or not hexdigest:
        raise LayerError(f"layer {layer}: unsupported digest {value!r}")
    return algorithm, hexdigest.lower()


# --- tar reading -------------------------------------------------------------------------
#
# A streaming ustar/GNU/PAX reader, written here rather than using tarfile's stream mode:
# one buffer, data written to files straight from it (no copies), one struct unpack per
# header. It understands what layers contain: POSIX ustar (prefix), PAX local and global
# headers (path, linkpath, size, uid, gid, mtime, SCHILY.xattr.*, GNU.sparse.* 0.0, 0.1
# and 1.0), GNU long names and links (L, K), old GNU sparse members (S), base-256 numbers.

_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_USTAR = b"ustar\x00"
_REGULAR_TYPES = frozenset((b"0", b"\x00", b"7"))
_DIR, _SYMLINK, _HARDLINK, _CHR, _BLK, _FIFO = b"5", b"2", b"1", b"3", b"4", b"6"
_GNU_SPARSE = b"S"


class _Entry:
    """One tar member, after its extended headers were folded in."""

    __slots__ = (
        "data_size",
        "devmajor",
        "devminor",
        "gid",
        "linkname",
        "mode",
        "mtime",
        "name",
        "size",
        "sparse",
        "type",
        "uid",
        "xattrs",
    )

    def __init__(self) -> None:
        self.name = ""
        self.type = b"0"
        self.mode = 0
        self.uid = 0
        self.gid = 0
        self.size = 0  # the file's size (the real one for sparse files)
        self.data_size = 0  # bytes of data following the header(s) in the stream
        self.mtime = 0  # nanoseconds
        self.linkname = ""
        self.devmajor = 0
        self.devminor = 0
        self.xattrs: dict[str, bytes] | None = None
        self.sparse: list[tuple[int, int]] | None = None  # (offset, length) of data runs


def _num(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field, "big")
        if field[0] == 0xFF:
            return value - (1 << (8 * len(field)))
        return value - (0x80 << (8 * (len(field) - 1)))
    try:
        return int(field.rstrip(b"\x00 ") or b"0", 8)
    except ValueError:  # text after a NUL, as some writers leave
        text = field.split(b"\x00", 1)[0].strip()
        return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _mtime_ns(value: bytes) -> int:
    text = value.decode("ascii")
    negative = text.startswith("-")
    seconds, _, fraction = text.lstrip("-").partition(".")
    ns = int(seconds or "0") * 1_000_000_000 + int((fraction + "000000000")[:9])
    return -ns if negative else ns


class _TarReader:
    def __init__(self, source: _Reader, layer: str) -> None:
        self._src = source
        self._layer = layer
        self._buf = b""
        self._pos = 0
        self.offset = 0  # stream offset of the next unread byte
        self._left = 0  # unread data of the current entry, padding included
        self._globals: list[tuple[bytes, bytes]] = []

    def _error(self, why: str) -> LayerError:
        return LayerError(f"layer {self._layer}: {why} at tar offset {self.offset}")

    def _read(self, size: int) -> bytes:
        """Exactly `size` bytes (fewer only at the end of the stream)."""
        buf, pos = self._buf, self._pos
        end = pos + size
        if end > len(buf):
            parts = [buf[pos:]]
            have = len(buf) - pos
            while have < size:
                data = self._src.read(_CHUNK)
                if not data:
                    break
                parts.append(data)
                have += len(data)
            buf = b"".join(parts)
            pos, end = 0, size
            self._buf = buf
        self._pos = min(end, len(buf))
        self.offset += self._pos - pos
        return buf[pos:end]

    def skip(self, size: int) -> None:
        while size > 0:
            got = len(self._read(min(size, _CHUNK)))
            if not got:
                raise self._error("truncated stream")
            size -= got

    def copy_to(self, fd: int, size: int) -> None:
        """Writes the next `size` data bytes of the current entry to `fd`."""
        if size > self._left:
            raise self._error("sparse map larger than the member data")
        self._left -= size
        write = os.write
        while size > 0:
            buf, pos = self._buf, self._pos
            if pos >= len(buf):
                buf = self._src.read(_CHUNK)
                if not buf:
                    raise self._error("truncated member data")
                self._buf, self._pos = buf, 0
                pos = 0
            take = min(size, len(buf) - pos)
            view = memoryview(buf)[pos : pos + take]
            while view:
                view = view[write(fd, view) :]
            self._pos = pos + take
            self.offset += take
            size -= take

    def _extension(self, size: int) -> bytes:
        if size < 0 or size > 64 << 20:
            raise self._error(f"extended header of {size} bytes")
        data = self._read(size)
        if len(data) < size:
            raise self._error("truncated extended header")
        self.skip(-size % _BLOCK)
        return data

    def _pax_records(self, data: bytes) -> list[tuple[bytes, bytes]]:
        records = []
        pos = 0
        while pos < len(data):
            space = data.find(b" ", pos)
            try:
                length = int(data[pos:space])
            except ValueError:
                raise self._error("malformed pax header") from None
            if space < 0 or length <= space - pos or pos + length > len(data):
                raise self._error("malformed pax header")
            key, sep, value = data[space + 1 : pos + length - 1].partition(b"=")
            if not sep:
                raise self._error("malformed pax record")
            records.append((key, value))
            pos += length
        return records

    def next(self) -> _Entry | None:
        """The next entry, its data unread; None at the end of the archive."""
        if self._left:
            self.skip(self._left)
            self._left = 0
        pax: list[tuple[bytes, bytes]] | None = None
        long_name: str | None = None
        long_link: str | None = None
        while True:
            block = self._read(_BLOCK)
            if len(block) < _BLOCK:
                if not block and pax is None and long_name is None and long_link is None:
                    return None  # no end-of-archive blocks: accepted, as GNU tar does
                raise self._error("truncated tar header")
            if block == _ZERO_BLOCK:
                return None
            (name, mode, uid, gid, size_f, mtime, chksum, kind, linkname, magic, _version,
             _uname, _gname, devmajor, devminor, prefix) = _HEADER.unpack(block)  # fmt: skip
            expected = _num(chksum)
            if expected != sum(block) - sum(block[148:156]) + 256:
                signed = sum(struct.unpack("512b", block)) - sum(struct.unpack("8b", chksum))
                if expected != signed + 256:
                    raise self._error("bad tar header checksum")
            size = _num(size_f)
            if size < 0:
                raise self._error("negative member size")
            if kind == b"x" or kind == b"g":
                records = self._pax_records(self._extension(size))
                if kind == b"g":
                    self._globals = records
                else:
                    pax = records
                continue
            if kind == b"L" or kind == b"K":
                value = _text(self._extension(size))
                if kind == b"L":
                    long_name = value
                else:
                    long_link = value
                continue
            entry = _Entry()
            if long_name is not None:
                entry.name = long_name
            elif magic == _USTAR and prefix[0]:
                entry.name = _text(prefix) + "/" + _text(name)
            else:
                entry.name = _text(name)
            entry.type = kind
            entry.mode = _num(mode)
            entry.uid = _num(uid)
            entry.gid = _num(gid)
            entry.size = entry.data_size = size
            entry.mtime = _num(mtime) * 1_000_000_000
            entry.linkname = long_link if long_link is not None else _text(linkname)
            if kind == _CHR or kind == _BLK:
                entry.devmajor = _num(devmajor)
                entry.devminor = _num(devminor)
            elif kind == _GNU_SPARSE:
                self._old_gnu_sparse(entry, block)
            elif kind == b"\x00" and entry.name.endswith("/"):
                entry.type = _DIR
            map_in_data = False
            if pax is not None or self._globals:
                map_in_data = self._apply_pax(entry, self._globals + (pax or []))
            if entry.type in (_DIR, _SYMLINK, _HARDLINK, _CHR, _BLK, _FIFO):
                entry.data_size = 0  # these never carry data, whatever the header says
            self._left = entry.data_size + (-entry.data_size % _BLOCK)
            if map_in_data:
                self._sparse_map_v1(entry)
            return entry

    def _old_gnu_sparse(self, entry: _Entry, block: bytes) -> None:
        runs = []
        for i in range(4):
            start = 386 + 24 * i
            if block[start]:
                runs.append((_num(block[start : start + 12]), _num(block[start + 12 : start + 24])))
        extended = block[482]
        entry.size = _num(block[483:495])
        while extended:
            ext = self._read(_BLOCK)
            if len(ext) < _BLOCK:
                raise self._error("truncated sparse header")
            for i in range(21):
                start = 24 * i
                if ext[start]:
                    runs.append((_num(ext[start : start + 12]), _num(ext[start + 12 : start + 24])))
            extended = ext[504]
        entry.sparse = runs
        entry.type = b"0"

    def _apply_pax(self, entry: _Entry, records: list[tuple[bytes, bytes]]) -> bool:
        """Folds PAX records into `entry`; True when a sparse map precedes the data."""
        sparse_name = None
        sparse_runs: list[int] = []
        real_size = entry.size
        major = minor = None
        map_in_data = False
        for key, value in records:
            if key == b"path":
                entry.name = value.decode("utf-8", "surrogateescape")
            elif key == b"linkpath":
                entry.linkname = value.decode("utf-8", "surrogateescape")
            elif key == b"size":
                entry.size = entry.data_size = int(value)
            elif key == b"uid":
                entry.uid = int(value)
            elif key == b"gid":
                entry.gid = int(value)
            elif key == b"mtime":
                entry.mtime = _mtime_ns(value)
            elif key.startswith(b"SCHILY.xattr."):
                if entry.xattrs is None:
                    entry.xattrs = {}
                entry.xattrs[key[13:].decode("utf-8", "surrogateescape")] = value
            elif key.startswith(b"GNU.sparse."):
                field = key[11:]
                if field == b"major":
                    major = int(value)
                elif field == b"minor":
                    minor = int(value)
                elif field == b"name":
                    sparse_name = value.decode("utf-8", "surrogateescape")
                elif field in (b"size", b"realsize"):
                    entry.sparse = entry.sparse or []
                    real_size = int(value)
                elif field in (b"offset", b"numbytes"):
                    sparse_runs.append(int(value))
                elif field == b"map":
                    sparse_runs.extend(int(v) for v in value.split(b",") if v)
        if entry.sparse is not None:
            entry.size = real_size
            if sparse_name is not None:
                entry.name = sparse_name
            if major == 1 and minor == 0:
                entry.sparse = []
                map_in_data = True
            else:
                if len(sparse_runs) % 2:
                    raise self._error("malformed pax sparse map")
                it = iter(sparse_runs)
                entry.sparse = list(zip(it, it, strict=True))
                entry.type = b"0"
        if entry.size < 0 or entry.data_size < 0:
            raise self._error("negative member size")
        return map_in_data

    def _sparse_map_v1(self, entry: _Entry) -> None:
        numbers: list[int] = []
        text = b""
        consumed = 0
        count = -1
        while count < 0 or len(numbers) < 1 + 2 * count:
            block = self._read(_BLOCK)
            consumed += _BLOCK
            if len(block) < _BLOCK or consumed > entry.data_size:
                raise self._error("truncated sparse map")
            text += block
            *lines, text = text.split(b"\n")
            numbers.extend(int(line) for line in lines)
            if numbers and count < 0:
                count = numbers[0]
                if count < 0 or count > 1 << 20:
                    raise self._error("malformed sparse map")
        runs = numbers[1 : 1 + 2 * count]
        it = iter(runs)
        entry.sparse = list(zip(it, it, strict=True))
        entry.data_size -= consumed
        self._left -= consumed
        entry.type = b"0"

    def drain_junk(self) -> bool:
        """Reads the rest of the stream; True if anything but zero bytes followed."""
        junk = self._buf[self._pos :].count(0) != len(self._buf) - self._pos
        self._buf, self._pos = b"", 0
        while data := self._src.read(_CHUNK):
            if not junk and data.count(0) != len(data):
                junk = True
        return junk


# --- paths -------------------------------------------------------------------------------


def _normalise(name: str, layer: str) -> str:
    """The relative path of a tar name inside the layer root ("" is the root itself)."""
    parts: list[str] = []
    for part in name.split("/"):
        if part == "" or part == ".":
            continue
        if part == "..":
            if not parts:
                raise LayerRejected(f"layer {layer}: entry {name!r} escapes the layer root")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def _umask() -> int:
    """The process umask, read without changing it (Linux >= 4.7); 0o777 if unknown."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o777  # forces an explicit fchmod for every file


# --- extraction --------------------------------------------------------------------------


class _Extractor:
    """Writes tar members under one directory fd; see the module docstring for the rules."""

    def __init__(self, root_fd: int, root_path: str, layer: str, allow_devices: bool) -> None:
        self.root = root_fd
        self.root_path = root_path
        self.layer = layer
        self.allow_devices = allow_devices
        self.as_root = os.geteuid() == 0
        self.uid = os.geteuid()
        self.gid = os.getegid()
        self.umask = _umask()
        self.dirs: set[str] = {""}  # real directories, ours or checked, ancestors included
        self.files: set[str] = set()  # non-directories extracted (hard link targets)
        self.whiteouts: set[str] = set()
        self.skipped: set[str] = set()  # device nodes not created (links to them skipped too)
        self.dir_meta: dict[str, _Entry] = {}  # applied at the end
        self.notes: list[str] = []
        self.disk_usage = 0
        self._warned_owner = False

    # errors

    def _reject(self, path: str, why: str) -> LayerRejected:
        return LayerRejected(f"layer {self.layer}: entry {path!r} {why}")

    def _oserror(self, path: str, exc: OSError) -> LayerError:
        return LayerError(f"layer {self.layer}: {path!r}: {exc.strerror or exc}")

    # directories

    def _ensure_dirs(self, path: str, entry: str) -> None:
        """Makes every component of `path` a real directory (never following a link)."""
        parts = path.split("/")
        prefix = ""
        for part in parts:
            prefix = f"{prefix}/{part}" if prefix else part
            if prefix in self.dirs:
                continue
            try:
                os.mkdir(prefix, 0o755, dir_fd=self.root)
                os.chmod(prefix, 0o755, dir_fd=self.root)  # whatever the umask
            except FileExistsError:
                st = os.stat(prefix, dir_fd=self.root, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    raise self._reject(entry, f"goes through symlink {prefix!r}") from None
                if prefix in self.whiteouts:
                    # a whiteout then entries below it, in one layer: an opaque dir
                    self._remove(prefix)
                    os.mkdir(prefix, 0o755, dir_fd=self.root)
                    os.chmod(prefix, 0o755, dir_fd=self.root)
                    self._set_opaque(prefix)
                elif not stat.S_ISDIR(st.st_mode):
                    raise self._reject(entry, f"is under non-directory {prefix!r}") from None
            self.dirs.add(prefix)

    def _parent(self, path: str) -> None:
        parent = path.rpartition("/")[0]
        if parent not in self.dirs:
            self._ensure_dirs(parent, path)

    def _set_opaque(self, path: str) -> None:
        fd = self.root if path == "" else os.open(path, _O_DIR, dir_fd=self.root)
        try:
            os.setxattr(fd, OPAQUE_XATTR, b"y")
        finally:
            if fd != self.root:
                os.close(fd)

    def _remove(self, path: str) -> None:
        """Removes whatever is at `path` (a directory with its content) and forgets it."""
        st = os.stat(path, dir_fd=self.root, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, dir_fd=self.root)
            below = path + "/"
            self.dirs = {d for d in self.dirs if d != path and not d.startswith(below)}
            self.files = {f for f in self.files if not f.startswith(below)}
            self.whiteouts = {w for w in self.whiteouts if not w.startswith(below)}
            for key in [k for k in self.dir_meta if k == path or k.startswith(below)]:
                del self.dir_meta[key]
        else:
            os.unlink(path, dir_fd=self.root)
            self.files.discard(path)
            self.whiteouts.discard(path)

    # metadata

    def _chown(self, target: int | str, uid: int, gid: int) -> None:
        if not self.as_root:
            if not self._warned_owner:
                self._warned_owner = True
                self.notes.append("ownership not preserved: not running as root")
            return
        if isinstance(target, int):
            os.fchown(target, uid, gid)
        else:
            os.chown(target, uid, gid, dir_fd=self.root, follow_symlinks=False)

    def _xattrs(self, member: _Entry, path: str, target: int | str) -> None:
        for name, raw in (member.xattrs or {}).items():
            if name.startswith(_OVERLAY_XATTR_PREFIXES) or not name.startswith(
                _ALLOWED_XATTR_PREFIXES
            ):
                self.notes.append(f"xattr {name} of {path!r} ignored")
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, raw)
                else:
                    proc = f"/proc/self/fd/{self.root}/{target}"
                    os.setxattr(proc, name, raw, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EACCES, errno.EINVAL):
                    raise
                self.notes.append(f"xattr {name} of {path!r} not set: {exc.strerror}")

    # members

    def _create(
        self, path: str, make: Any, *args: Any, is_dir: bool = False, **kwargs: Any
    ) -> bool:
        """Runs make(*args); if the name is taken, the later entry wins (tar's rule).

        Returns False when an existing directory is kept for a directory entry.
        """
        try:
            make(*args, **kwargs)
            return True
        except FileExistsError:
            pass
        st = os.stat(path, dir_fd=self.root, follow_symlinks=False)
        if is_dir and stat.S_ISDIR(st.st_mode):
            return False
        was_whiteout = path in self.whiteouts
        self._remove(path)
        make(*args, **kwargs)
        if is_dir and was_whiteout:
            self._set_opaque(path)
        return True

    def regular(self, member: _Entry, path: str, tar: _TarReader) -> None:
        mode = member.mode & 0o7777
        try:  # created with its final mode when the umask allows: saves an fchmod
            fd = os.open(path, _O_FILE, mode & 0o777, dir_fd=self.root)
        except FileExistsError:
            self._remove_existing(path)
            fd = os.open(path, _O_FILE, mode & 0o777, dir_fd=self.root)
        try:
            sparse = member.sparse
            if sparse is None:
                tar.copy_to(fd, member.size)
            else:
                for offset, size in sparse:
                    if offset < 0 or size < 0:
                        raise self._reject(path, "has a negative sparse run")
                    os.lseek(fd, offset, os.SEEK_SET)
                    tar.copy_to(fd, size)
                os.ftruncate(fd, member.size)
            if member.uid != self.uid or member.gid != self.gid:
                self._chown(fd, member.uid, member.gid)
                os.fchmod(fd, mode)  # chown cleared setuid/setgid
            elif mode & ~self.umask != mode or mode & 0o7000:
                os.fchmod(fd, mode)
            if member.xattrs:
                self._xattrs(member, path, fd)
            mtime = member.mtime
            os.utime(fd, ns=(mtime, mtime))
            self.disk_usage += os.fstat(fd).st_blocks * 512
        finally:
            os.close(fd)
        self.files.add(path)

    def _remove_existing(self, path: str) -> None:
        """A later non-directory entry replaces whatever has its name."""
        self._remove(path)

    def directory(self, member: _Entry, path: str) -> None:
        if path == "":
            self.dir_meta[""] = member
            return
        self._create(path, os.mkdir, path, 0o700, is_dir=True, dir_fd=self.root)
        self.dirs.add(path)
        self.dir_meta[path] = member

    def symlink(self, member: _Entry, path: str) -> None:
        self._create(path, os.symlink, member.linkname, path, dir_fd=self.root)
        self._finish_path(member, path, chmod=False)
        self.files.add(path)

    def hardlink(self, member: _Entry, path: str) -> None:
        target = _normalise(member.linkname, self.layer)
        if target in self.skipped:
            self.notes.append(f"hard link {path!r} to skipped {target!r} skipped")
            self.skipped.add(path)
            return
        if target == path or target not in self.files:
            raise self._reject(
                path, f"is a hard link to {member.linkname!r}, not extracted before it"
            )
        self._create(
            path,
            os.link,
            target,
            path,
            src_dir_fd=self.root,
            dst_dir_fd=self.root,
            follow_symlinks=False,
        )
        self.files.add(path)

    def special(self, member: _Entry, path: str) -> None:
        if member.type == _FIFO:
            self._create(path, os.mkfifo, path, 0o600, dir_fd=self.root)
        else:
            is_whiteout = member.type == _CHR and member.devmajor == 0 and member.devminor == 0
            if not is_whiteout and not self.allow_devices:
                self.notes.append(f"device node {path!r} skipped")
                self.skipped.add(path)
                return
            kind = stat.S_IFCHR if member.type == _CHR else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            self._create(path, os.mknod, path, kind | 0o600, device, dir_fd=self.root)
        self._finish_path(member, path, chmod=True)
        self.files.add(path)

    def whiteout(self, member: _Entry, path: str) -> None:
        parent, _, base = path.rpartition("/")
        if base == WHITEOUT_OPAQUE:
            self._set_opaque(parent)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise self._reject(path, "is not a valid whiteout")
        target = f"{parent}/{name}" if parent else name
        try:
            os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=self.root)
        except FileExistsError:
            # the same layer has the entry: it wins over the whiteout (which only hides
            # lower layers); a directory then hides the lower one entirely.
            st = os.stat(target, dir_fd=self.root, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._set_opaque(target)
            return
        self._chown(target, member.uid, member.gid)
        mtime = member.mtime
        os.utime(target, ns=(mtime, mtime), dir_fd=self.root, follow_symlinks=False)
        self.whiteouts.add(target)

    def _finish_path(self, member: _Entry, path: str, chmod: bool) -> None:
        self._chown(path, member.uid, member.gid)
        if chmod:  # fifo or device just created by us: following the name is fine
            os.chmod(path, member.mode & 0o7777, dir_fd=self.root)
        if member.xattrs:
            self._xattrs(member, path, path)
        mtime = member.mtime
        os.utime(path, ns=(mtime, mtime), dir_fd=self.root, follow_symlinks=False)

    def finish(self) -> None:
        """Directory metadata last: writing children would change their mtimes."""
        for path in sorted(self.dirs, key=len, reverse=True):
            fd = self.root if path == "" else os.open(path, _O_DIR, dir_fd=self.root)
            try:
                member = self.dir_meta.get(path)
                if member is not None:
                    self._chown(fd, member.uid, member.gid)
                    os.fchmod(fd, member.mode & 0o7777)
                    if member.xattrs:
                        self._xattrs(member, path, fd)
                    mtime = member.mtime
                    os.utime(fd, ns=(mtime, mtime))
                self.disk_usage += os.fstat(fd).st_blocks * 512
            finally:
                if fd != self.root:
                    os.close(fd)


def apply_layer(
    source: BinaryIO | IO[bytes],
    dest: str | os.PathLike[str],
    *,
    digest: str | None = None,
    diff_id: str | None = None,
    allow_devices: bool = False,
    name: str | None = None,
) -> LayerSummary:
    """Extracts the layer read from `source` into `dest` (absent or empty; created, with
    its parents, when absent).

    `digest` is checked against the stream as given (compressed), `diff_id` against the
    uncompressed tar; both are "algorithm:hex". `name` labels the layer in errors (default:
    the digest, the diff_id or `dest`). On any failure `dest` is removed (emptied if it
    existed before) and a `LayerError` is raised.
    """
    dest_path = os.path.abspath(os.fspath(dest))
    layer = name or digest or diff_id or dest_path
    created = False
    try:
        os.makedirs(os.path.dirname(dest_path), exist_ok=True)
        os.mkdir(dest_path, 0o755)
        created = True
    except FileExistsError:
        if not os.path.isdir(dest_path) or os.path.islink(dest_path) or os.listdir(dest_path):
            raise LayerError(f"layer {layer}: {dest_path} is not an empty directory") from None
    except OSError as exc:
        raise LayerError(f"layer {layer}: cannot create {dest_path}: {exc.strerror}") from exc
    try:
        root_fd = os.open(dest_path, _O_DIR)
    except OSError as exc:
        raise LayerError(f"layer {layer}: cannot open {dest_path}: {exc.strerror}") from exc
    try:
        return _apply(source, root_fd, dest_path, layer, digest, diff_id, allow_devices)
    except BaseException as exc:
        _discard(dest_path, created)
        if isinstance(exc, OSError):
            raise LayerError(f"layer {layer}: {exc.strerror or exc}") from exc
        raise
    finally:
        os.close(root_fd)


def _discard(path: str, remove_dir: bool) -> None:
    if remove_dir:
        shutil.rmtree(path, ignore_errors=True)
        return
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass


def _apply(
    source: BinaryIO | IO[bytes],
    root_fd: int,
    root_path: str,
    layer: str,
    digest: str | None,
    diff_id: str | None,
    allow_devices: bool,
) -> LayerSummary:
    algorithm = _split_digest(digest, layer)[0] if digest else "sha256"
    expected_diff = _split_digest(diff_id, layer) if diff_id else None
    if expected_diff and expected_diff[0] != "sha256":
        raise LayerError(f"layer {layer}: diff_id {diff_id!r} is not a sha256 digest")

    head = source.read(_TAR_BUFSIZE)
    compression = detect_compression(head)
    raw = _PushbackReader(head, source)
    diff_hasher = _Hasher("sha256")
    compressed_hasher = diff_hasher
    try:
        if compression == "none" and algorithm == "sha256":
            tar_stream = compressed = _HashingReader(raw, diff_hasher)  # one stream, one hash
        else:
            compressed_hasher = _Hasher(algorithm)
            compressed = _HashingReader(raw, compressed_hasher)
            tar_stream = _HashingReader(_decompressor(compression, compressed), diff_hasher)
        extractor = _Extractor(root_fd, root_path, layer, allow_devices)
        tar = _TarReader(tar_stream, layer)
        try:
            entries = _extract_all(tar, extractor, layer)
            junk = tar.drain_junk()
            compressed.drain()
        except _stream_errors(compression) as exc:
            raise LayerError(f"layer {layer}: corrupt {compression} stream: {exc}") from exc
    finally:
        compressed_hasher.close()
        diff_hasher.close()

    actual_digest = f"{algorithm}:{compressed.hash.hexdigest()}"
    if digest and actual_digest != f"{algorithm}:{_split_digest(digest, layer)[1]}":
        raise LayerDigestMismatch(layer, "digest", digest, actual_digest)
    actual_diff = f"sha256:{tar_stream.hash.hexdigest()}"
    if expected_diff and actual_diff != f"sha256:{expected_diff[1]}":
        raise LayerDigestMismatch(layer, "diff_id", diff_id or "", actual_diff)
    if junk:
        raise LayerError(f"layer {layer}: unreadable tar header or data after the archive end")
    extractor.finish()
    return LayerSummary(
        entries=entries,
        bytes=tar_stream.count,
        compressed_bytes=compressed.count,
        compression=compression,
        diff_id=actual_diff,
        digest=actual_digest,
        disk_usage=extractor.disk_usage,
        notes=tuple(extractor.notes),
    )


def _extract_all(tar: _TarReader, ex: _Extractor, layer: str) -> int:
    entries = 0
    dirs = ex.dirs
    while (member := tar.next()) is not None:
        entries += 1
        path = _normalise(member.name, layer)
        parent, _, base = path.rpartition("/")
        kind = member.type
        try:
            if parent not in dirs and path != "":
                ex._parent(path)
            if base.startswith(WHITEOUT_PREFIX):
                ex.whiteout(member, path)
            elif kind in _REGULAR_TYPES:
                if path == "":
                    raise ex._reject(member.name, "is a file at the layer root")
                ex.regular(member, path, tar)
            elif kind == _DIR:
                ex.directory(member, path)
            elif path == "":
                raise ex._reject(member.name, "replaces the layer root")
            elif kind == _SYMLINK:
                ex.symlink(member, path)
            elif kind == _HARDLINK:
                ex.hardlink(member, path)
            elif kind == _FIFO or kind == _CHR or kind == _BLK:
                ex.special(member, path)
            else:
                ex.notes.append(f"entry {path!r} of unknown type {kind!r} skipped")
        except OSError as exc:
            raise ex._oserror(path, exc) from exc
    return entries


# --- diff ----------------------------------------------------------------------------------


class _HashingWriter:
    def __init__(self, raw: IO[bytes] | BinaryIO) -> None:
        self._raw = raw
        self.hash = hashlib.sha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self._raw.write(data)
        self.hash.update(data)
        self.count += len(data)
        return len(data)


def diff_tar(
    lower_dirs: Sequence[str | os.PathLike[str]],
    upper_dir: str | os.PathLike[str],
    out_stream: IO[bytes] | BinaryIO,
    *,
    mtime_clamp: int | None = None,
) -> DiffSummary:
    """Writes the layer tar of an overlay upper dir to `out_stream` (uncompressed).

    Output is deterministic: depth-first walk in byte order of names (an opaque marker
    right after its directory), PAX format, no atime/ctime, empty user/group names,
    integer mtimes (clamped to `mtime_clamp` when given), hard links within the upper
    dir as link entries to the first path in that order. Whiteout devices become
    ".wh.NAME" entries, opaque dirs get ".wh..wh..opq". `lower_dirs` (top first) give the
    data of metacopy-only upper files; an overlay redirect is refused. Sockets are
    skipped. The upper dir itself is not an entry.
    """
    upper = os.fspath(upper_dir)
    lowers = [os.fspath(d) for d in lower_dirs]
    writer = _HashingWriter(out_stream)
    try:
        root_fd = os.open(upper, _O_DIR)
    except OSError as exc:
        raise LayerError(f"upper dir {upper}: {exc.strerror}") from exc
    differ = _Differ(upper, lowers, mtime_clamp)
    try:
        with tarfile.open(  # type: ignore[call-overload]
            fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_TAR_BUFSIZE
        ) as tar:
            differ.walk(tar, root_fd, "")
    except OSError as exc:
        raise LayerError(f"upper dir {upper}: {exc.strerror or exc}") from exc
    finally:
        os.close(root_fd)
    return DiffSummary(differ.entries, writer.count, f"sha256:{writer.hash.hexdigest()}")


class _Differ:
    def __init__(self, upper: str, lowers: list[str], mtime_clamp: int | None) -> None:
        self.upper = upper
        self.lowers = lowers
        self.clamp = mtime_clamp
        self.links: dict[tuple[int, int], str] = {}
        self.entries = 0

    def _info(self, name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid = st.st_uid
        info.gid = st.st_gid
        mtime = int(st.st_mtime)
        info.mtime = mtime if self.clamp is None else min(mtime, self.clamp)
        return info

    def _xattrs(self, target: int | str, info: tarfile.TarInfo) -> dict[str, bytes]:
        """Copies xattrs to PAX headers; returns the overlay's own ones by short name."""
        try:
            names = sorted(os.listxattr(target, follow_symlinks=isinstance(target, int)))
        except OSError as exc:
            if exc.errno in (errno.ENOTSUP, errno.EPERM):
                return {}
            raise
        overlay: dict[str, bytes] = {}
        headers: dict[str, str] = {}
        for name in names:
            if name.startswith(_OVERLAY_XATTR_PREFIXES):
                suffix = name.split(".overlay.", 1)[1]
                overlay[suffix] = os.getxattr(target, name, follow_symlinks=isinstance(target, int))
            elif name.startswith(_ALLOWED_XATTR_PREFIXES):
                value = os.getxattr(target, name, follow_symlinks=isinstance(target, int))
                headers[_PAX_XATTR + name] = value.decode("utf-8", "surrogateescape")
        if headers:
            info.pax_headers = headers
        return overlay

    def walk(self, tar: tarfile.TarFile, dir_fd: int, prefix: str) -> None:
        with os.scandir(dir_fd) as it:
            names = sorted((e.name for e in it), key=os.fsencode)
        for name in names:
            path = prefix + name
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                fd = os.open(name, _O_DIR, dir_fd=dir_fd)
                try:
                    info = self._info(path, st, tarfile.DIRTYPE)
                    overlay = self._xattrs(fd, info)
                    if "redirect" in overlay:
                        raise LayerError(f"upper dir {self.upper}: {path!r} is a redirect")
                    self._add(tar, info)
                    if overlay.get("opaque") == b"y":
                        marker = self._info(path + "/" + WHITEOUT_OPAQUE, st, tarfile.REGTYPE)
                        marker.mode = 0o644
                        self._add(tar, marker)
                    self.walk(tar, fd, path + "/")
                finally:
                    os.close(fd)
            elif stat.S_ISCHR(mode) and st.st_rdev == 0:
                parent = path.rpartition("/")[0]
                wh = f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name
                self._add(tar, self._info(wh, st, tarfile.REGTYPE))
            elif stat.S_ISREG(mode):
                self._regular(tar, dir_fd, name, path, st)
            elif stat.S_ISLNK(mode):
                info = self._info(path, st, tarfile.SYMTYPE)
                info.linkname = os.readlink(name, dir_fd=dir_fd)
                self._xattrs(f"/proc/self/fd/{dir_fd}/{name}", info)
                self._add(tar, info)
            elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                kind = (
                    tarfile.FIFOTYPE
                    if stat.S_ISFIFO(mode)
                    else tarfile.CHRTYPE
                    if stat.S_ISCHR(mode)
                    else tarfile.BLKTYPE
                )
                info = self._info(path, st, kind)
                info.devmajor = os.major(st.st_rdev)
                info.devminor = os.minor(st.st_rdev)
                self._add(tar, info)
            # sockets and others: not representable in a tar, skipped

    def _regular(
        self, tar: tarfile.TarFile, dir_fd: int, name: str, path: str, st: os.stat_result
    ) -> None:
        if st.st_nlink > 1:
            first = self.links.get((st.st_dev, st.st_ino))
            if first is not None:
                info = self._info(path, st, tarfile.LNKTYPE)
                info.linkname = first
                self._add(tar, info)
                return
            self.links[(st.st_dev, st.st_ino)] = path
        fd = os.open(name, _O_READ, dir_fd=dir_fd)
        try:
            info = self._info(path, st, tarfile.REGTYPE)
            overlay = self._xattrs(fd, info)
            if "redirect" in overlay:
                raise LayerError(f"upper dir {self.upper}: {path!r} is a redirect")
            data_fd = fd
            metacopy = "metacopy" in overlay
            if metacopy:
                data_fd = self._lower_data(path)
            try:
                info.size = os.fstat(data_fd).st_size if metacopy else st.st_size
                with open(data_fd, "rb", closefd=False, buffering=0) as data:
                    tar.addfile(info, data)
            finally:
                if data_fd != fd:
                    os.close(data_fd)
        finally:
            os.close(fd)
        self.entries += 1

    def _lower_data(self, path: str) -> int:
        for lower in self.lowers:
            try:
                return os.open(os.path.join(lower, path), _O_READ)
            except FileNotFoundError:
                continue
        raise LayerError(f"upper dir {self.upper}: no lower data for metacopy file {path!r}")

    def _add(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        tar.addfile(info)
        self.entries += 1
