"""Image references, parsed and normalised the way Docker does.

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [ registry "/" ] repository
    registry    := host [ ":" port ]        host: DNS name or [IPv6]
    repository  := component ( "/" component )*
    component   := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag         := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest      := algorithm ":" hex          (sha256: 64 hex, sha512: 128 hex)

Normalisation: the first path component is a registry only when it contains a "." or a
":", is "localhost", or has upper-case letters (registries are case-insensitive hosts,
repositories are lower-case); otherwise the registry is docker.io. On docker.io a
one-component repository lives under "library/", and "index.docker.io" is spelt
"docker.io". Without tag and digest the tag is "latest". The whole name (registry,
"/", repository) is at most 255 characters, and a bare 64-hex string is an image id, never
a name.
"""

from __future__ import annotations

from cove.errors import InvalidDigest, InvalidReference
from cove.image.digest import Digest
from cove.image.records import FrozenRecord

DEFAULT_REGISTRY = "docker.io"
LEGACY_DEFAULT_REGISTRY = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
NAME_MAX = 255
TAG_MAX = 128

# The grammar's character classes (ASCII only). The rules are checked by hand rather than
# with `re`, which a pull does not need before its first request otherwise.
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
_LOWER_ALNUM = _LOWER | _DIGITS
_ALNUM = _LOWER | _UPPER | _DIGITS
_HEX = frozenset("0123456789abcdef")
_ANY_HEX = frozenset("0123456789abcdefABCDEF")
_TAG_FIRST = _ALNUM | {"_"}
_TAG_REST = _ALNUM | frozenset("_.-")


class Reference(FrozenRecord):
    """A normalised image reference: `docker.io/library/busybox:latest`.

    `tag` is None only when the reference is by digest alone (`busybox@sha256:...`);
    `digest` is None unless one was given. Immutable and hashable.
    """

    __slots__ = ("digest", "registry", "repository", "tag")
    _field_order = ("registry", "repository", "tag", "digest")
    registry: str
    repository: str
    tag: str | None
    digest: Digest | None

    def __init__(
        self,
        registry: str,
        repository: str,
        tag: str | None = DEFAULT_TAG,
        digest: Digest | None = None,
    ) -> None:
        self._init(registry, repository, tag, digest)
        _check(registry, repository, tag, str(self))

    @classmethod
    def parse(cls, text: str, *, default_tag: bool = True) -> Reference:
        """Parse and normalise `text`; without tag and digest the tag is `latest`
        (unless `default_tag` is false)."""
        return parse_reference(text, default_tag=default_tag)

    @property
    def name(self) -> str:
        """Registry and repository: `docker.io/library/busybox`."""
        return f"{self.registry}/{self.repository}"

    def familiar_name(self) -> str:
        """The name as docker prints it: `busybox`, `user/app`, `localhost:5000/x`."""
        if self.registry != DEFAULT_REGISTRY:
            return self.name
        prefix = OFFICIAL_NAMESPACE + "/"
        rest = self.repository.removeprefix(prefix)
        if rest != self.repository and "/" not in rest:
            return rest
        return self.repository

    def familiar(self) -> str:
        """The short form docker prints: `busybox:latest`, `localhost:5000/x:1`."""
        return self.familiar_name() + self._suffix()

    def __str__(self) -> str:
        """The canonical full form: `docker.io/library/busybox:latest`."""
        return self.name + self._suffix()

    def _suffix(self) -> str:
        tag = f":{self.tag}" if self.tag is not None else ""
        digest = f"@{self.digest}" if self.digest is not None else ""
        return tag + digest

    def with_tag(self, tag: str) -> Reference:
        """The same repository with `tag` and no digest."""
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: Digest) -> Reference:
        """The same repository pinned to `digest`, without tag: `name@sha256:...`."""
        return Reference(self.registry, self.repository, None, digest)

    @property
    def is_official(self) -> bool:
        """True for Docker Hub's official images (`docker.io/library/...`)."""
        return self.registry == DEFAULT_REGISTRY and self.familiar_name() != self.repository


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise an image reference as `docker pull` does.

    Raises InvalidReference naming the input and the rule it breaks.
    """
    if not isinstance(text, str):
        raise InvalidReference(repr(text), "expected a string")
    if not text:
        raise InvalidReference(text, "reference is empty")
    if _is_image_id(text):
        raise InvalidReference(
            text, "a 64-character hex string is an image id, it cannot be a repository name"
        )
    rest, at, digest_text = text.partition("@")
    digest: Digest | None = None
    if at:
        if not digest_text:
            raise InvalidReference(text, "digest is empty after '@'")
        if not _is_digest_syntax(digest_text):
            raise InvalidReference(text, f"malformed digest {digest_text!r}")
        try:
            digest = Digest.parse(digest_text)
        except InvalidDigest as err:
            raise InvalidReference(text, f"bad digest: {err.problem}") from None
    tag: str | None = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1 :]
        _check_tag(tag, text)
    if not rest:
        raise InvalidReference(text, "repository name is empty")
    registry, repository = _split_registry(rest)
    _check(registry, repository, tag, text)
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest)


def _split_registry(name: str) -> tuple[str, str]:
    first, slash, remainder = name.partition("/")
    looks_like_host = "." in first or ":" in first or first == "localhost" or first != first.lower()
    if not slash or not looks_like_host:
        registry, repository = DEFAULT_REGISTRY, name
    else:
        registry, repository = first, remainder
    if registry == LEGACY_DEFAULT_REGISTRY:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and repository and "/" not in repository:
        repository = f"{OFFICIAL_NAMESPACE}/{repository}"
    return registry, repository


def _check_tag(tag: str, text: str) -> None:
    if not tag:
        raise InvalidReference(text, "tag is empty after ':'")
    if len(tag) > TAG_MAX:
        raise InvalidReference(text, f"tag is longer than {TAG_MAX} characters ({len(tag)})")
    if not _is_tag(tag):
        raise InvalidReference(
            text,
            f"invalid tag {tag!r}: use letters, digits, '_', '.' and '-', "
            "not starting with '.' or '-'",
        )


def _check(registry: str, repository: str, tag: str | None, text: str) -> None:
    if not _is_registry(registry):
        raise InvalidReference(text, f"invalid registry host {registry!r}")
    if not repository:
        raise InvalidReference(text, "repository name is empty")
    if repository != repository.lower():
        raise InvalidReference(text, f"repository name {repository!r} must be lowercase")
    for component in repository.split("/"):
        if not component:
            raise InvalidReference(text, f"empty path component in repository {repository!r}")
        if not _is_component(component):
            raise InvalidReference(
                text,
                f"invalid repository path component {component!r}: use lower-case letters "
                "and digits separated by '.', '_', '__' or dashes",
            )
    length = len(registry) + 1 + len(repository)
    if length > NAME_MAX:
        raise InvalidReference(text, f"name is longer than {NAME_MAX} characters ({length})")
    if tag is not None:
        _check_tag(tag, text)


def is_image_id_prefix(text: str) -> bool:
    """True for what docker accepts as a short image id: 1 to 64 lower-case hex digits."""
    return 0 < len(text) <= 64 and all(c in "0123456789abcdef" for c in text)


# --- the grammar's rules, each for the whole of its text --------------------------------------


def _is_image_id(text: str) -> bool:
    """`[a-f0-9]{64}`"""
    return len(text) == 64 and all(c in _HEX for c in text)


def _is_tag(text: str) -> bool:
    """`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`"""
    return 0 < len(text) <= 128 and text[0] in _TAG_FIRST and all(c in _TAG_REST for c in text)


def _is_component(text: str) -> bool:
    """`[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`: runs of lower-case letters and digits, each
    two separated by one ".", one "_", "__", or any number of "-"."""
    separator = ""
    previous = ""  # "": start of text, "a": after a letter or digit, else after separator
    for c in text:
        if c in _LOWER_ALNUM:
            previous = "a"
            separator = ""
            continue
        if previous == "":
            return False
        separator += c
        if separator not in (".", "_", "__") and separator.strip("-"):
            return False
        previous = "s"
    return previous == "a"


def _is_domain_label(text: str) -> bool:
    """`[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`"""
    return (
        text != ""
        and text[0] in _ALNUM
        and text[-1] in _ALNUM
        and all(c in _ALNUM or c == "-" for c in text)
    )


def _is_registry(text: str) -> bool:
    r"""`(?:label(?:\.label)*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?`: a host name or a bracketed IPv6
    address, and an optional port."""
    if text.startswith("["):
        end = text.find("]")
        address, port = text[1:end], text[end + 1 :]
        if end < 0 or not address or not all(c in _ANY_HEX or c == ":" for c in address):
            return False
    else:
        host, colon, rest = text.partition(":")
        if not all(_is_domain_label(label) for label in host.split(".")):
            return False
        port = colon + rest
    return port == "" or (port[0] == ":" and len(port) > 1 and all(c in _DIGITS for c in port[1:]))


def _is_digest_syntax(text: str) -> bool:
    """`[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}`"""
    algorithm, colon, encoded = text.partition(":")
    if not colon or len(encoded) < 32 or not all(c in _ANY_HEX for c in encoded):
        return False
    previous = ""  # "": start or after a separator, "a": inside a component
    for c in algorithm:
        if previous == "":
            if c not in _LOWER and c not in _UPPER:
                return False
            previous = "a"
        elif c in _ALNUM:
            continue
        elif c in "-_+.":
            previous = ""
        else:
            return False
    return previous == "a"
