"""A streaming ustar/GNU/PAX reader for layer tars (see `cove.image.layer`).

Written here rather than using tarfile's stream mode: one buffer, data written to files
straight from it (no copies), one struct unpack per header. It understands what layers
contain: POSIX ustar (prefix), PAX local and global headers (path, linkpath, size, uid, gid,
mtime, SCHILY.xattr.*, GNU.sparse.* 0.0, 0.1 and 1.0), GNU long names and links (L, K), old
GNU sparse members (S), base-256 numbers.
"""

from __future__ import annotations

import os
import struct
from typing import Protocol

from cove.errors import LayerError

_CHUNK = 1 << 20


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


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
