"""Files of the image store (`cove.image.store`): temp files locked by their writer, so the
debris of a writer killed with -9 can be told from a live write, and durable writes (fsync
of the file, then of its directory after the rename), the listing and syncing of the blob
folders, and the store's paths as strings (`cove pull` does without pathlib).

Downloads are resumable across runs: `ResumableBlob` writes `tmp/pull-<hex>.partial`, named
by the digest it must have, under an flock while written. A pull killed halfway leaves it
behind; the next pull of that blob re-hashes what is there and asks the registry for the
rest. `_cleanup_partial` keeps such files unless they are a day old or their blob is stored.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time

from cove.errors import DigestMismatch, ImageStoreError, SizeMismatch
from cove.image.digest import CHUNK, Digest, Hasher, is_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path
    from typing import BinaryIO

_PARTIAL_RE = re.compile(r"(?:blob|file)-(\d+)-[0-9a-f]+\.partial")
#: a resumable download: `pull-<hex of the expected digest>.partial`
_RESUMABLE_RE = re.compile(r"pull-([0-9a-f]{64}|[0-9a-f]{128})\.partial")
#: resumable downloads older than this (seconds since their last write) are removed
RESUMABLE_MAX_AGE = 24 * 3600
_ALGORITHM_BY_HEX_LENGTH = {64: "sha256", 128: "sha512"}
#: the OCI image layout version the store writes and accepts
LAYOUT_VERSION = "1.0.0"


@contextlib.contextmanager
def _partial_file(tmp_dir: str | os.PathLike[str], kind: str) -> Iterator[tuple[BinaryIO, str]]:
    """A new temp file in `tmp_dir`, locked by its writer (us), removed unless the body
    renamed it away."""
    path = os.path.join(tmp_dir, f"{kind}-{os.getpid()}-{_token()}.partial")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    except OSError as err:
        raise ImageStoreError(f"cannot create a temp file in {tmp_dir}: {_why(err)}") from None
    fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if we are killed
    out = os.fdopen(fd, "wb")
    try:
        yield out, path
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    finally:
        out.close()


def _cleanup_partial(
    tmp_dir: str | os.PathLike[str], blobs_dir: str | os.PathLike[str] | None = None
) -> list[str]:
    """Removes the temp files in `tmp_dir` whose writer died; returns them. Resumable
    downloads (`pull-<hex>.partial`) not being written stay, unless older than a day or
    their blob is already in `blobs_dir`."""
    removed: list[str] = []
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        return removed
    for name in names:
        path = os.path.join(tmp_dir, name)
        resumable = _RESUMABLE_RE.fullmatch(name)
        if resumable is not None:
            if _stale_resumable(path, resumable.group(1), blobs_dir):
                removed.append(path)
            continue
        match = _PARTIAL_RE.fullmatch(name)
        if match is None:
            continue
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # renamed into place or cleaned up meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            if _pid_alive(int(match.group(1))):
                continue  # just created and not locked yet, or the pid was reused
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                removed.append(path)
        finally:
            os.close(fd)
    return removed


def _stale_resumable(path: str, hex_digest: str, blobs_dir: str | os.PathLike[str] | None) -> bool:
    """Removes a resumable download nobody writes when it is old or its blob is stored."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a pull is writing it
        stored = False
        if blobs_dir is not None:
            algorithm = _ALGORITHM_BY_HEX_LENGTH[len(hex_digest)]
            stored = os.path.isfile(os.path.join(blobs_dir, algorithm, hex_digest))
        old = time.time() - os.fstat(fd).st_mtime > RESUMABLE_MAX_AGE
        if not (stored or old):
            return False
        try:
            os.unlink(path)
        except FileNotFoundError:
            return False
        return True
    finally:
        os.close(fd)


class BlobFolder:
    """The blob files of an image store at `root` without its database: `blobs/<alg>/<hex>`
    and the resumable downloads in `tmp/`, as `ImageStore` lays them out. What a download
    needs (`has_blob`, `resumable_blob`, `commit_blob`), usable before the store is open:
    `cove pull` downloads while the store's module is imported and its database opened.
    The folders are created if missing. Paths are strings (no pathlib on the way to the
    first blob request)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.fspath(root)
        self.blobs_dir = os.path.join(self.root, "blobs")
        self.tmp_dir = os.path.join(self.root, "tmp")
        _check_layout(os.path.join(self.root, "oci-layout"))
        try:
            for folder in (os.path.join(self.blobs_dir, "sha256"), self.tmp_dir):
                os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise ImageStoreError(f"cannot create image store {self.root}: {_why(err)}") from None

    def blob_path(self, digest: Digest) -> str:
        return os.path.join(self.blobs_dir, digest.algorithm, digest.hex)

    def has_blob(self, digest: Digest) -> bool:
        return os.path.isfile(self.blob_path(digest))

    def resumable_blob(
        self, expected: Digest, *, expected_size: int | None = None
    ) -> ResumableBlob:
        return ResumableBlob.open(self.tmp_dir, expected, expected_size)

    def commit_blob(self, blob: ResumableBlob, *, sync_dir: bool = True) -> Digest:
        expected = blob.hasher.expected
        assert expected is not None
        return blob.commit(self.blob_path(expected), sync_dir=sync_dir)


def _check_layout(path: str) -> bool:
    """Whether the store's oci-layout file at `path` is there: ImageStoreError when it is
    unreadable or of another version (a missing one is for `ImageStore` to write)."""
    import json

    try:
        with open(path, "rb") as file:
            document = json.loads(file.read())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as err:
        raise ImageStoreError(f"cannot read {path}: {err}") from None
    version = document.get("imageLayoutVersion") if isinstance(document, dict) else None
    if version != LAYOUT_VERSION:
        raise ImageStoreError(f"{path}: unsupported imageLayoutVersion {version!r}")
    return True


class ResumableBlob:
    """The temp file of one blob download, which survives the process that writes it.

    Opened with `open()`: `tmp/pull-<hex>.partial`, flock'ed while we write. The bytes a
    previous (killed) download left are re-hashed, so `offset` says where to continue;
    `restart()` empties it when the source cannot continue there. `commit()` verifies the
    digest and size and renames the file into the blob store (a mismatch deletes it);
    `close()` keeps an unfinished file for the next attempt (an empty one is removed).
    When another process holds the lock (it downloads the same blob), the download goes to
    a private temp file instead, removed when it is not committed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fd: int,
        hasher: Hasher,
        *,
        resumable: bool,
        resumed: int,
    ) -> None:
        self._path = os.fspath(path)
        self.hasher = hasher
        self.resumable = resumable
        #: bytes found from an earlier attempt when opened
        self.resumed = resumed
        self._fd = fd
        self._done = False

    @property
    def path(self) -> Path:
        """The temp file (kept as a string inside: see `BlobFolder`)."""
        from pathlib import Path

        return Path(self._path)

    @classmethod
    def open(
        cls, tmp_dir: str | os.PathLike[str], expected: Digest, expected_size: int | None = None
    ) -> ResumableBlob:
        path = os.path.join(tmp_dir, f"pull-{expected.hex}.partial")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o444)
        except OSError as err:
            raise ImageStoreError(f"cannot create a temp file in {tmp_dir}: {_why(err)}") from None
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    return cls._private(tmp_dir, expected, expected_size)
                # The file may have been renamed into the store or removed while we waited
                # for the lock: only the file still at `path` is ours to continue.
                try:
                    same = os.stat(path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o444)
            hasher = Hasher(expected=expected, expected_size=expected_size)
            size = os.fstat(fd).st_size
            if expected_size is not None and size > expected_size:
                os.ftruncate(fd, 0)
                size = 0
            if size:
                size = _rehash(fd, hasher, size)
            os.lseek(fd, size, os.SEEK_SET)
        except OSError as err:
            os.close(fd)
            raise ImageStoreError(f"cannot resume download {path}: {_why(err)}") from None
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, hasher, resumable=True, resumed=size)

    @classmethod
    def _private(
        cls, tmp_dir: str | os.PathLike[str], expected: Digest, expected_size: int | None
    ) -> ResumableBlob:
        path = os.path.join(tmp_dir, f"blob-{os.getpid()}-{_token()}.partial")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        except OSError as err:
            raise ImageStoreError(f"cannot create a temp file in {tmp_dir}: {_why(err)}") from None
        fcntl.flock(fd, fcntl.LOCK_EX)
        hasher = Hasher(expected=expected, expected_size=expected_size)
        return cls(path, fd, hasher, resumable=False, resumed=0)

    @property
    def offset(self) -> int:
        """How many bytes the file holds."""
        return self.hasher.size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append `data` (hashed on the way; more than the expected size fails at once)."""
        self.hasher.update(data)
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as err:
            raise ImageStoreError(f"cannot write {self._path}: {_why(err)}") from None

    def restart(self) -> None:
        """Throw away what the file holds: the download starts over."""
        try:
            os.ftruncate(self._fd, 0)
            os.lseek(self._fd, 0, os.SEEK_SET)
        except OSError as err:
            raise ImageStoreError(f"cannot truncate {self._path}: {_why(err)}") from None
        self.hasher = Hasher(expected=self.hasher.expected, expected_size=self.hasher.expected_size)
        self.resumed = 0

    def commit(self, final: str | os.PathLike[str], *, sync_dir: bool = True) -> Digest:
        """fsync, verify, rename to `final` (fsync of its folder unless `sync_dir` is
        False: the caller syncs it later). A mismatch deletes the file and raises."""
        try:
            os.fsync(self._fd)
        except OSError as err:
            raise ImageStoreError(f"cannot write {self._path}: {_why(err)}") from None
        try:
            digest = self.hasher.verify()
        except (DigestMismatch, SizeMismatch):
            self.discard()
            raise
        folder = os.path.dirname(os.fspath(final))
        try:
            try:
                os.mkdir(folder)
            except FileExistsError:
                if not os.path.isdir(folder):
                    raise
            os.rename(self._path, final)
            if sync_dir:
                _fsync_dir(folder)
        except OSError as err:
            raise ImageStoreError(f"cannot store blob {final}: {_why(err)}") from None
        self._done = True
        return digest

    def discard(self) -> None:
        """Delete the file (its content is wrong)."""
        if not self._done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)
            self._done = True

    def close(self) -> None:
        """Release the file: kept for a later attempt unless committed, empty or private."""
        if self._fd < 0:
            return
        try:
            if not self._done and (not self.resumable or self.hasher.size == 0):
                self.discard()
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResumableBlob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _atomic_write(tmp_dir: str, path: str, data: bytes, *, sync_dir: bool = True) -> None:
    """Write a small file durably: a temp file in `tmp_dir`, fsynced, renamed to `path`,
    then (`sync_dir`) its folder fsynced."""
    with _partial_file(tmp_dir, "file") as (out, partial):
        try:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
            os.chmod(partial, 0o644)
            os.rename(partial, path)
            if sync_dir:
                _fsync_dir(os.path.dirname(path) or ".")
        except OSError as err:
            raise ImageStoreError(f"cannot write {path}: {_why(err)}") from None


def _list_blobs(blobs_dir: str) -> list[Digest]:
    """Every blob under `blobs_dir` (`<alg>/<hex>`), by algorithm and digest."""
    found: list[Digest] = []
    for algorithm in sorted(os.listdir(blobs_dir)):
        folder = os.path.join(blobs_dir, algorithm)
        if not os.path.isdir(folder):
            continue
        for name in sorted(os.listdir(folder)):
            text = f"{algorithm}:{name}"
            if is_digest(text):
                found.append(Digest.parse(text))
    return found


def _sync_blob_folders(blobs_dir: str) -> None:
    """fsync each `<alg>` folder of `blobs_dir`: the renames of blobs into it are durable."""
    try:
        for name in os.listdir(blobs_dir):
            folder = os.path.join(blobs_dir, name)
            if os.path.isdir(folder):
                _fsync_dir(folder)
    except OSError as err:
        raise ImageStoreError(f"cannot sync {blobs_dir}: {_why(err)}") from None


def _rehash(fd: int, hasher: Hasher, size: int) -> int:
    """Feed the first `size` bytes of `fd` to `hasher`; returns how many there were."""
    os.lseek(fd, 0, os.SEEK_SET)
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    done = 0
    while done < size:
        count = os.readv(fd, [view[: min(len(view), size - done)]])
        if not count:
            break
        hasher.update(view[:count])
        done += count
    return done


def _chunks(data: bytes | BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        yield bytes(data)
        return
    read = getattr(data, "read", None)
    if read is not None:
        while chunk := read(CHUNK):
            yield chunk
        return
    yield from data


def _token() -> str:
    """16 random hex digits for a temp file's name (`secrets.token_hex(8)`, without
    importing `secrets` and `random`)."""
    return os.urandom(8).hex()


def _fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, killed but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return True
    # The state follows the command name, which is in parentheses and may contain spaces.
    return stat[stat.rfind(")") + 2 : stat.rfind(")") + 3] != "Z"


def _why(err: OSError) -> str:
    return err.strerror or errno.errorcode.get(err.errno or 0, str(err))


# --- paths as strings (no pathlib on the way to the first blob request) ------------------


def _normpath(path: str | os.PathLike[str]) -> str:
    """`str(Path(path))` without pathlib: no empty or "." parts, no trailing slash, ".."
    kept, and "//" at the start kept as pathlib keeps it."""
    text = os.fspath(path)
    if text.startswith("//") and not text.startswith("///"):
        root = "//"
    else:
        root = "/" if text.startswith("/") else ""
    return root + "/".join(part for part in text.split("/") if part not in ("", ".")) or "."


def _join(folder: str, name: str) -> str:
    """`str(Path(folder) / name)` for a `_normpath` folder and a plain name."""
    return name if folder == "." else os.path.join(folder, name)


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _mkdir(folder: str) -> None:
    """`Path(folder).mkdir(exist_ok=True)`."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        if not os.path.isdir(folder):
            raise
