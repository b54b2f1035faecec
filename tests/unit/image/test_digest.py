"""cove.image.digest: Digest, Hasher, VerifyingReader."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cove.errors import DigestMismatch, InvalidDigest, SizeMismatch
from cove.image.digest import (
    Digest,
    Hasher,
    VerifyingReader,
    digest_chunks,
    digest_file,
    is_digest,
    parse_digest,
)

EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_parse_and_str_round_trip() -> None:
    d = Digest.parse(EMPTY_SHA256)
    assert d.algorithm == "sha256"
    assert d.hex == EMPTY_SHA256.removeprefix("sha256:")
    assert str(d) == EMPTY_SHA256
    assert parse_digest(EMPTY_SHA256) == d
    assert d.short() == "e3b0c44298fc"
    assert d.short(4) == "e3b0"
    sha512 = "sha512:" + hashlib.sha512(b"x").hexdigest()
    assert str(Digest.parse(sha512)) == sha512


def test_digest_of_known_value() -> None:
    assert str(Digest.of(b"")) == EMPTY_SHA256
    assert Digest.of(b"abc", "sha512").hex == hashlib.sha512(b"abc").hexdigest()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "expected algorithm:hex"),
        ("e3b0c442", "expected algorithm:hex"),
        (":" + "a" * 64, "malformed algorithm ''"),
        ("SHA256:" + "a" * 64, "malformed algorithm 'SHA256'"),
        ("md5:" + "a" * 32, "unsupported algorithm 'md5'"),
        ("sha384:" + "a" * 96, "unsupported algorithm 'sha384'"),
        ("sha256:" + "A" * 64, "lower-case hex"),
        ("sha256:" + "g" * 64, "lower-case hex"),
        ("sha256:", "lower-case hex"),
        ("sha256:" + "a" * 63, "needs 64 hex digits, got 63"),
        ("sha256:" + "a" * 65, "needs 64 hex digits, got 65"),
        ("sha512:" + "a" * 64, "needs 128 hex digits, got 64"),
    ],
)
def test_invalid_digests_name_the_input_and_the_problem(text: str, problem: str) -> None:
    with pytest.raises(InvalidDigest) as caught:
        Digest.parse(text)
    assert str(caught.value).startswith(f"invalid digest {text!r}: ")
    assert problem in str(caught.value)
    assert not is_digest(text)


def test_direct_construction_is_validated() -> None:
    with pytest.raises(InvalidDigest, match="needs 64 hex digits"):
        Digest("sha256", "abc")


def test_digests_are_ordered_and_hashable() -> None:
    a, b = Digest("sha256", "0" * 64), Digest("sha256", "1" * 64)
    assert a < b
    assert len({a, Digest.parse(str(a)), b}) == 2


def test_hasher_verifies_digest_and_size() -> None:
    expected = Digest.of(b"hello world")
    hasher = Hasher(expected=expected, expected_size=11)
    hasher.update(b"hello ")
    hasher.update(memoryview(b"world"))
    assert hasher.size == 11
    assert hasher.verify() == expected


def test_hasher_mismatch_names_expected_and_actual() -> None:
    expected = Digest.of(b"good")
    hasher = Hasher(expected=expected, subject="layer 1")
    hasher.update(b"evil")
    with pytest.raises(DigestMismatch) as caught:
        hasher.verify()
    actual = Digest.of(b"evil")
    assert str(caught.value) == f"digest mismatch for layer 1: expected {expected}, got {actual}"
    assert caught.value.expected == expected
    assert caught.value.actual == actual


def test_hasher_uses_the_expected_algorithm() -> None:
    expected = Digest.of(b"x", "sha512")
    hasher = Hasher(expected=expected)
    hasher.update(b"x")
    assert hasher.algorithm == "sha512"
    assert hasher.verify() == expected


def test_hasher_refuses_oversized_input_at_once() -> None:
    hasher = Hasher(expected_size=4)
    hasher.update(b"1234")
    with pytest.raises(SizeMismatch, match="expected 4 bytes, got 5"):
        hasher.update(b"5")


def test_hasher_short_input_is_a_size_mismatch() -> None:
    hasher = Hasher(expected_size=10)
    hasher.update(b"123")
    with pytest.raises(SizeMismatch, match="expected 10 bytes, got 3"):
        hasher.verify()


def test_hasher_refuses_unknown_algorithm() -> None:
    with pytest.raises(InvalidDigest, match="unsupported algorithm 'md5'"):
        Hasher("md5")


def test_verifying_reader_passes_good_content_through() -> None:
    data = b"x" * 10_000
    reader = VerifyingReader(io.BytesIO(data), Digest.of(data), expected_size=len(data))
    chunks = []
    while chunk := reader.read(4096):
        chunks.append(chunk)
    assert b"".join(chunks) == data
    assert reader.verified == Digest.of(data)
    assert reader.size == len(data)


def test_verifying_reader_fails_on_the_final_read() -> None:
    reader = VerifyingReader(io.BytesIO(b"tampered"), Digest.of(b"original"))
    assert reader.read(4) == b"tamp"
    assert reader.read(100) == b"ered"
    assert reader.verified is None
    with pytest.raises(DigestMismatch):
        reader.read(100)


def test_verifying_reader_read_all_verifies() -> None:
    with pytest.raises(DigestMismatch):
        VerifyingReader(io.BytesIO(b"a"), Digest.of(b"b")).read()
    with VerifyingReader(io.BytesIO(b"a"), Digest.of(b"a")) as reader:
        assert reader.read() == b"a"
        assert reader.verified == Digest.of(b"a")


def test_verifying_reader_without_expectation_just_hashes() -> None:
    reader = VerifyingReader(io.BytesIO(b"abc"))
    assert reader.read() == b"abc"
    assert reader.digest() == Digest.of(b"abc")


def test_digest_helpers_over_chunks_and_files() -> None:
    assert digest_chunks([b"ab", b"", b"c"]) == (Digest.of(b"abc"), 3)
    assert digest_file(io.BytesIO(b"abc"), "sha512") == (Digest.of(b"abc", "sha512"), 3)


@given(st.binary(max_size=2048), st.lists(st.integers(min_value=1, max_value=300), max_size=20))
def test_chunking_does_not_change_the_digest(data: bytes, cuts: list[int]) -> None:
    hasher = Hasher()
    position = 0
    for cut in cuts:
        hasher.update(data[position : position + cut])
        position += cut
    hasher.update(data[position:])
    assert hasher.digest() == Digest.of(data)
    assert hasher.size == len(data)
