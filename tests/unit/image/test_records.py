"""The plain data classes of the image modules (`cove.image.records`) behave as the
dataclasses they replace: equality, hashing and immutability when frozen, ordering of
digests, repr in declaration order without `raw`, copies."""

from __future__ import annotations

import copy
import pickle

import pytest

from cove.image import manifest as m
from cove.image.digest import Digest
from cove.image.platform import Platform
from cove.image.reference import Reference, parse_reference

A = Digest.of(b"a")
B = Digest.of(b"b")


def test_digest_is_frozen_hashable_and_ordered() -> None:
    assert Digest.parse(str(A)) == A and hash(Digest.parse(str(A))) == hash(A)
    assert {A: 1}[Digest("sha256", A.hex)] == 1
    assert sorted([B, A]) == sorted([A, B]) and (A < B) == (A.hex < B.hex)
    assert Digest("sha256", "0" * 64) < Digest("sha512", "0" * 128)
    with pytest.raises(AttributeError):
        A.hex = B.hex  # type: ignore[misc]
    with pytest.raises(TypeError):
        _ = A < "sha256:00"  # type: ignore[operator]
    assert repr(A) == f"Digest(algorithm='sha256', hex='{A.hex}')"


def test_copies_and_pickles_of_frozen_records() -> None:
    ref = parse_reference("localhost:5000/a/b:1")
    for value in (A, ref, Platform("linux", "arm64", "v8")):
        assert copy.deepcopy(value) == value
        assert pickle.loads(pickle.dumps(value)) == value
    assert ref.replace(tag="2") == Reference("localhost:5000", "a/b", "2")


def test_reference_repr_follows_the_declaration() -> None:
    ref = Reference("docker.io", "library/busybox")
    assert repr(ref) == (
        "Reference(registry='docker.io', repository='library/busybox', tag='latest', digest=None)"
    )
    assert len({ref, Reference("docker.io", "library/busybox", "latest")}) == 1


def test_documents_compare_without_raw_and_do_not_share_defaults() -> None:
    config = m.Descriptor(m.OCI_CONFIG, A, 1)
    one = m.ImageManifest(m.OCI_MANIFEST, config, (), raw=b"{}")
    two = m.ImageManifest(m.OCI_MANIFEST, config, ())
    assert one == two and "raw" not in repr(one)
    one.annotations["x"] = "y"
    assert two.annotations == {} and one != two
    with pytest.raises(TypeError):
        hash(one)
    assert m.ImageConfig("amd64", "linux").config == m.ExecutionConfig()
