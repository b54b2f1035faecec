"""cove.image.reference: docker's reference grammar and normalisation."""

from __future__ import annotations

import pytest

from cove.errors import InvalidReference
from cove.image.digest import Digest
from cove.image.reference import Reference, is_image_id_prefix, parse_reference

H64 = "0123456789abcdef" * 4
H128 = H64 * 2
SHA = f"sha256:{H64}"

# input -> (registry, repository, tag, digest, canonical str, familiar form)
VALID: list[tuple[str, str, str, str | None, str | None, str, str]] = [
    ("busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None,
     "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox:musl", "docker.io", "library/busybox", "musl", None,
     "docker.io/library/busybox:musl", "busybox:musl"),
    ("user/app", "docker.io", "user/app", "latest", None,
     "docker.io/user/app:latest", "user/app:latest"),
    ("docker.io/user/app:v2", "docker.io", "user/app", "v2", None,
     "docker.io/user/app:v2", "user/app:v2"),
    ("library/foo/bar", "docker.io", "library/foo/bar", "latest", None,
     "docker.io/library/foo/bar:latest", "library/foo/bar:latest"),
    ("localhost/foo", "localhost", "foo", "latest", None,
     "localhost/foo:latest", "localhost/foo:latest"),
    ("localhost:5000/x:1", "localhost:5000", "x", "1", None,
     "localhost:5000/x:1", "localhost:5000/x:1"),
    ("localhost:5000/ns/name:tag", "localhost:5000", "ns/name", "tag", None,
     "localhost:5000/ns/name:tag", "localhost:5000/ns/name:tag"),
    # No slash: "localhost" is a repository, and ":5000" is its tag.
    ("localhost", "docker.io", "library/localhost", "latest", None,
     "docker.io/library/localhost:latest", "localhost:latest"),
    ("localhost:5000", "docker.io", "library/localhost", "5000", None,
     "docker.io/library/localhost:5000", "localhost:5000"),
    ("registry.example.com/team/app:2024.01-rc1", "registry.example.com", "team/app",
     "2024.01-rc1", None, "registry.example.com/team/app:2024.01-rc1",
     "registry.example.com/team/app:2024.01-rc1"),
    ("example.com:8443/a/b/c/d:tag", "example.com:8443", "a/b/c/d", "tag", None,
     "example.com:8443/a/b/c/d:tag", "example.com:8443/a/b/c/d:tag"),
    ("192.168.1.10:5000/app", "192.168.1.10:5000", "app", "latest", None,
     "192.168.1.10:5000/app:latest", "192.168.1.10:5000/app:latest"),
    ("[2001:db8::1]:5000/app:tag", "[2001:db8::1]:5000", "app", "tag", None,
     "[2001:db8::1]:5000/app:tag", "[2001:db8::1]:5000/app:tag"),
    ("[::1]/app", "[::1]", "app", "latest", None, "[::1]/app:latest", "[::1]/app:latest"),
    ("xn--bcher-kva.example/pkg", "xn--bcher-kva.example", "pkg", "latest", None,
     "xn--bcher-kva.example/pkg:latest", "xn--bcher-kva.example/pkg:latest"),
    ("gcr.io/distroless/static:nonroot", "gcr.io", "distroless/static", "nonroot", None,
     "gcr.io/distroless/static:nonroot", "gcr.io/distroless/static:nonroot"),
    # Upper case makes the first component a host (hosts are case-insensitive).
    ("Example.com/app", "Example.com", "app", "latest", None,
     "Example.com/app:latest", "Example.com/app:latest"),
    ("MYHOST/app", "MYHOST", "app", "latest", None, "MYHOST/app:latest", "MYHOST/app:latest"),
    # Digests: no default tag; a tag and a digest together keep both.
    (f"quay.io/coreos/etcd@{SHA}", "quay.io", "coreos/etcd", None, SHA,
     f"quay.io/coreos/etcd@{SHA}", f"quay.io/coreos/etcd@{SHA}"),
    (f"busybox@{SHA}", "docker.io", "library/busybox", None, SHA,
     f"docker.io/library/busybox@{SHA}", f"busybox@{SHA}"),
    (f"busybox:1.36@{SHA}", "docker.io", "library/busybox", "1.36", SHA,
     f"docker.io/library/busybox:1.36@{SHA}", f"busybox:1.36@{SHA}"),
    (f"localhost:5000/x:1@sha512:{H128}", "localhost:5000", "x", "1", f"sha512:{H128}",
     f"localhost:5000/x:1@sha512:{H128}", f"localhost:5000/x:1@sha512:{H128}"),
    # Path component separators: . _ __ and any run of dashes.
    ("foo.bar", "docker.io", "library/foo.bar", "latest", None,
     "docker.io/library/foo.bar:latest", "foo.bar:latest"),
    ("foo_bar", "docker.io", "library/foo_bar", "latest", None,
     "docker.io/library/foo_bar:latest", "foo_bar:latest"),
    ("foo__bar", "docker.io", "library/foo__bar", "latest", None,
     "docker.io/library/foo__bar:latest", "foo__bar:latest"),
    ("foo-bar", "docker.io", "library/foo-bar", "latest", None,
     "docker.io/library/foo-bar:latest", "foo-bar:latest"),
    ("foo---bar", "docker.io", "library/foo---bar", "latest", None,
     "docker.io/library/foo---bar:latest", "foo---bar:latest"),
    ("a", "docker.io", "library/a", "latest", None, "docker.io/library/a:latest", "a:latest"),
    ("0", "docker.io", "library/0", "latest", None, "docker.io/library/0:latest", "0:latest"),
    ("a/b/c/d/e/f", "docker.io", "a/b/c/d/e/f", "latest", None,
     "docker.io/a/b/c/d/e/f:latest", "a/b/c/d/e/f:latest"),
    # Tags: word characters, then also . and -, at most 128.
    ("app:_under", "docker.io", "library/app", "_under", None,
     "docker.io/library/app:_under", "app:_under"),
    ("app:A_Tag.1-x", "docker.io", "library/app", "A_Tag.1-x", None,
     "docker.io/library/app:A_Tag.1-x", "app:A_Tag.1-x"),
    ("app:" + "t" * 128, "docker.io", "library/app", "t" * 128, None,
     "docker.io/library/app:" + "t" * 128, "app:" + "t" * 128),
    # A 63-hex name is a name; only exactly 64 hex digits are an id.
    (H64[:63], "docker.io", f"library/{H64[:63]}", "latest", None,
     f"docker.io/library/{H64[:63]}:latest", f"{H64[:63]}:latest"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest", "canonical", "familiar"), VALID
)
def test_valid_references(
    text: str,
    registry: str,
    repository: str,
    tag: str | None,
    digest: str | None,
    canonical: str,
    familiar: str,
) -> None:
    ref = parse_reference(text)
    assert ref.registry == registry
    assert ref.repository == repository
    assert ref.tag == tag
    assert (str(ref.digest) if ref.digest else None) == digest
    assert str(ref) == canonical
    assert ref.familiar() == familiar
    # Both forms parse back to the same reference.
    assert parse_reference(canonical) == ref
    assert parse_reference(familiar) == ref


# input -> a fragment of the error message
INVALID: list[tuple[str, str]] = [
    ("", "reference is empty"),
    ("Busybox", "must be lowercase"),
    ("user/Repo", "must be lowercase"),
    ("docker.io/Library/busybox", "must be lowercase"),
    ("localhost:5000/Foo", "must be lowercase"),
    (H64, "image id"),
    ("busybox:", "tag is empty"),
    ("busybox:-tag", "invalid tag '-tag'"),
    ("busybox:.tag", "invalid tag '.tag'"),
    ("busybox:tag!", "invalid tag 'tag!'"),
    ("busybox:t√g", "invalid tag"),
    ("app:" + "t" * 129, "longer than 128"),
    ("busybox@", "digest is empty"),
    ("busybox@sha256:abc", "malformed digest"),
    (f"busybox@sha256:{H64.upper()}", "lower-case hex"),
    (f"busybox@sha256:{H64}0", "64 hex digits, got 65"),
    (f"busybox@sha512:{H64}", "128 hex digits, got 64"),
    (f"busybox@md5:{H64[:32]}", "unsupported algorithm 'md5'"),
    (f"busybox@{H64}", "malformed digest"),
    (f"busybox@{SHA}@{SHA}", "malformed digest"),
    (":tag", "repository name is empty"),
    ("/foo", "empty path component"),
    ("foo//bar", "empty path component"),
    ("foo/bar/", "empty path component"),
    ("_foo", "path component '_foo'"),
    ("foo_", "path component 'foo_'"),
    (".foo", "path component '.foo'"),
    ("foo.", "path component 'foo.'"),
    ("-foo", "path component '-foo'"),
    ("foo-", "path component 'foo-'"),
    ("foo___bar", "path component 'foo___bar'"),
    ("foo..bar", "path component 'foo..bar'"),
    ("foo._bar", "path component 'foo._bar'"),
    ("foo bar", "path component 'foo bar'"),
    ("user/app~1", "path component 'app~1'"),
    ("localhost:port/foo", "invalid registry host 'localhost:port'"),
    ("-host.com/foo", "invalid registry host '-host.com'"),
    ("host-.com/foo", "invalid registry host 'host-.com'"),
    ("host..com/foo", "invalid registry host 'host..com'"),
    ("[::1/foo", "invalid registry host"),
    ("http://example.com/foo", "invalid registry host 'http:'"),
    ("example.com/" + "a" * 244, "longer than 255"),
]


@pytest.mark.parametrize(("text", "problem"), INVALID)
def test_invalid_references(text: str, problem: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    message = str(caught.value)
    assert problem in message
    assert message.startswith(f"invalid reference {text!r}: ")
    assert caught.value.text == text


def test_name_length_limit_counts_the_normalised_name() -> None:
    # 255 characters including "example.com/" is fine, one more is not.
    ok = "example.com/" + "a" * (255 - len("example.com/"))
    assert len(parse_reference(ok).name) == 255
    with pytest.raises(InvalidReference, match="longer than 255"):
        parse_reference(ok + "a")


def test_default_tag_can_be_turned_off() -> None:
    ref = parse_reference("busybox", default_tag=False)
    assert ref.tag is None
    assert str(ref) == "docker.io/library/busybox"
    assert Reference.parse("busybox").tag == "latest"


def test_name_and_familiar_name() -> None:
    ref = parse_reference("busybox:1")
    assert ref.name == "docker.io/library/busybox"
    assert ref.familiar_name() == "busybox"
    assert ref.is_official
    assert not parse_reference("user/app").is_official
    assert not parse_reference("localhost/busybox").is_official
    assert parse_reference("localhost:5000/library/x").familiar_name() == "localhost:5000/library/x"


def test_with_tag_and_with_digest() -> None:
    ref = parse_reference(f"busybox:1@{SHA}")
    assert str(ref.with_tag("2")) == "docker.io/library/busybox:2"
    pinned = parse_reference("busybox").with_digest(Digest.parse(SHA))
    assert pinned.tag is None
    assert pinned.familiar() == f"busybox@{SHA}"
    with pytest.raises(InvalidReference, match="invalid tag"):
        ref.with_tag("-x")


def test_direct_construction_is_validated_and_hashable() -> None:
    ref = Reference("docker.io", "library/busybox", "latest")
    assert ref == parse_reference("busybox")
    assert len({ref, parse_reference("docker.io/library/busybox:latest")}) == 1
    with pytest.raises(InvalidReference, match="must be lowercase"):
        Reference("docker.io", "Library/busybox")
    with pytest.raises(InvalidReference, match="invalid registry host"):
        Reference("bad host", "x")


def test_non_string_input_is_refused() -> None:
    with pytest.raises(InvalidReference, match="expected a string"):
        parse_reference(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("abcd", True), ("0", True), (H64, True), (H64 + "0", False), ("", False),
     ("ABCD", False), ("abcg", False), ("sha256:abcd", False)],
)  # fmt: skip
def test_is_image_id_prefix(text: str, expected: bool) -> None:
    assert is_image_id_prefix(text) is expected
