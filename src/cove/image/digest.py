"""Content digests (`algorithm:hex`) and hashing that verifies while data flows.

Supported algorithms are the ones the OCI image spec registers: sha256 (64 lower-case hex
digits) and sha512 (128). Like go-digest, upper-case hex is rejected: a digest has one
spelling, so it can be compared as a string and used as a file name.
"""

from __future__ import annotations

from cove.errors import DigestMismatch, InvalidDigest, SizeMismatch
from cove.image.records import FrozenRecord

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import BinaryIO

#: algorithm -> length of its hex encoding
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
CANONICAL = "sha256"

# The OCI grammar: algorithm components of [a-z0-9]+ joined by one of + . _ -, then ":"
# and the encoded part. Checked by hand, not with `re`: a pull parses digests before it
# needs `re` for anything else.
_ALGORITHM_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALGORITHM_SEPARATORS = frozenset("+._-")
_HEX_DIGITS = frozenset("0123456789abcdef")

CHUNK = 1 << 20


class Digest(FrozenRecord):
    """A validated digest; `str(d)` is `algorithm:hex`. Immutable, hashable, and ordered
    by (algorithm, hex)."""

    __slots__ = ("algorithm", "hex")
    algorithm: str
    hex: str

    def __init__(self, algorithm: str, hex: str) -> None:
        _validate(algorithm, hex, f"{algorithm}:{hex}")
        self._init(algorithm, hex)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        return (self.algorithm, self.hex) < (other.algorithm, other.hex)

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        return (self.algorithm, self.hex) <= (other.algorithm, other.hex)

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        return (self.algorithm, self.hex) > (other.algorithm, other.hex)

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Digest):
            return NotImplemented
        return (self.algorithm, self.hex) >= (other.algorithm, other.hex)

    @classmethod
    def parse(cls, text: str) -> Digest:
        if not isinstance(text, str):
            raise InvalidDigest(repr(text), "expected a string")
        algorithm, sep, encoded = text.partition(":")
        if not sep:
            raise InvalidDigest(text, "expected algorithm:hex")
        _validate(algorithm, encoded, text)
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = CANONICAL) -> Digest:
        """The digest of `data`."""
        hasher = Hasher(algorithm)
        hasher.update(data)
        return hasher.digest()

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def short(self, length: int = 12) -> str:
        """The first `length` hex digits, as docker prints image ids."""
        return self.hex[:length]


def _validate(algorithm: str, encoded: str, text: str) -> None:
    if not _is_algorithm(algorithm):
        raise InvalidDigest(text, f"malformed algorithm {algorithm!r}")
    length = ALGORITHMS.get(algorithm)
    if length is None:
        raise InvalidDigest(
            text, f"unsupported algorithm {algorithm!r} (supported: {', '.join(ALGORITHMS)})"
        )
    if not encoded or not all(c in _HEX_DIGITS for c in encoded):
        raise InvalidDigest(text, f"{algorithm} needs lower-case hex digits")
    if len(encoded) != length:
        raise InvalidDigest(text, f"{algorithm} needs {length} hex digits, got {len(encoded)}")


def _is_algorithm(text: str) -> bool:
    """`[a-z0-9]+(?:[+._-][a-z0-9]+)*`, the whole of `text`."""
    if text in ALGORITHMS:
        return True
    previous_separator = True  # (the first character must not be a separator)
    for c in text:
        if c in _ALGORITHM_CHARS:
            previous_separator = False
        elif c in _ALGORITHM_SEPARATORS and not previous_separator:
            previous_separator = True
        else:
            return False
    return not previous_separator


def parse_digest(text: str) -> Digest:
    return Digest.parse(text)


def is_digest(text: str) -> bool:
    """True when `text` is a valid, supported digest."""
    try:
        Digest.parse(text)
    except InvalidDigest:
        return False
    return True


class Hasher:
    """Hashes data as it is fed, counts bytes, and optionally checks the result.

    With `expected`, the algorithm is the expected digest's; `verify()` raises
    DigestMismatch (or SizeMismatch when `expected_size` is given and differs). Feeding more
    than `expected_size` bytes fails at once, so an endless stream cannot fill a disk.
    """

    __slots__ = ("_hash", "algorithm", "expected", "expected_size", "size", "subject")

    def __init__(
        self,
        algorithm: str = CANONICAL,
        *,
        expected: Digest | None = None,
        expected_size: int | None = None,
        subject: str = "",
    ) -> None:
        if expected is not None:
            algorithm = expected.algorithm
        if algorithm not in ALGORITHMS:
            raise InvalidDigest(f"{algorithm}:", f"unsupported algorithm {algorithm!r}")
        self.algorithm = algorithm
        self.expected = expected
        self.expected_size = expected_size
        self.subject = subject or (str(expected) if expected is not None else "")
        self.size = 0
        # Imported on first use: loading OpenSSL takes a few ms, and a pull hashes nothing
        # before the registry answers.
        import hashlib

        self._hash = hashlib.new(algorithm)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self.expected_size is not None and self.size > self.expected_size:
            raise SizeMismatch(self.expected_size, self.size, self.subject)
        self._hash.update(data)

    def digest(self) -> Digest:
        """The digest of everything fed so far."""
        return Digest(self.algorithm, self._hash.hexdigest())

    def verify(self) -> Digest:
        """The digest, after checking it (and the size) against the expected values."""
        actual = self.digest()
        if self.expected_size is not None and self.size != self.expected_size:
            raise SizeMismatch(self.expected_size, self.size, self.subject)
        if self.expected is not None and actual != self.expected:
            raise DigestMismatch(self.expected, actual, self.subject)
        return actual


class VerifyingReader:
    """A read-only file wrapper that hashes what passes through it.

    When the wrapped stream reaches its end, the digest and size are checked: the read that
    returns b"" raises DigestMismatch/SizeMismatch instead, so a consumer (tar extraction,
    a copy into the blob store) fails before it can accept tampered content as complete.
    """

    def __init__(
        self,
        stream: BinaryIO,
        expected: Digest | None = None,
        *,
        expected_size: int | None = None,
        algorithm: str = CANONICAL,
        subject: str = "",
    ) -> None:
        self._stream = stream
        self.hasher = Hasher(
            algorithm, expected=expected, expected_size=expected_size, subject=subject
        )
        self._verified: Digest | None = None

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        if data:
            self.hasher.update(data)
        if (not data and size != 0) or size < 0:
            # The end of the stream (or everything up to it) has been read: check it now.
            self._verified = self.hasher.verify()
        return data

    def readable(self) -> bool:
        return True

    @property
    def size(self) -> int:
        return self.hasher.size

    @property
    def verified(self) -> Digest | None:
        """The verified digest once the end of the stream has been read, else None."""
        return self._verified

    def digest(self) -> Digest:
        return self.hasher.digest()

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def digest_chunks(chunks: Iterable[bytes], algorithm: str = CANONICAL) -> tuple[Digest, int]:
    """The digest and total size of a sequence of byte chunks."""
    hasher = Hasher(algorithm)
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.digest(), hasher.size


def digest_file(stream: BinaryIO, algorithm: str = CANONICAL) -> tuple[Digest, int]:
    """The digest and size of what remains in `stream`, read in 1 MiB chunks."""
    return digest_chunks(iter(lambda: stream.read(CHUNK), b""), algorithm)
