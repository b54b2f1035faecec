"""Steps 1 and 2 of a pull (`cove.image.registry.pull`): what a reference resolves to.

    1. GET the manifest by tag (Accept: OCI index, Docker list, OCI manifest, Docker
       manifest); check it against the reference's digest and Docker-Content-Digest.
    2. An index: pick the platform's manifest (linux/amd64 on this host by default) and GET
       it by digest.

`start_resolve` runs them in a thread, so the CLI opens the store meanwhile.
"""

from __future__ import annotations

import threading

from cove.errors import DigestMismatch, InvalidManifest
from cove.image.digest import Digest
from cove.image.platform import parse_platform
from cove.image.records import FrozenRecord
from cove.image.reference import Reference, parse_reference

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from cove.image.manifest import Descriptor, ImageIndex, ImageManifest, Platform
    from cove.image.registry.client import RegistryClient


class Resolved(FrozenRecord):
    """What a reference resolved to: the top document (an index or the manifest) and the
    image manifest, each with its bytes and sha256 digest."""

    __slots__ = (
        "index",
        "manifest",
        "manifest_data",
        "manifest_digest",
        "top_data",
        "top_digest",
    )
    _field_order = (
        "top_data",
        "top_digest",
        "index",
        "manifest",
        "manifest_data",
        "manifest_digest",
    )
    top_data: bytes
    top_digest: Digest
    index: ImageIndex | None
    manifest: ImageManifest
    manifest_data: bytes
    manifest_digest: Digest

    def __init__(
        self,
        top_data: bytes,
        top_digest: Digest,
        index: ImageIndex | None,
        manifest: ImageManifest,
        manifest_data: bytes,
        manifest_digest: Digest,
    ) -> None:
        self._init(top_data, top_digest, index, manifest, manifest_data, manifest_digest)


def resolve(
    client: RegistryClient,
    ref: Reference,
    platform: Platform | None,
    sent: Callable[[], None] | None = None,
) -> Resolved:
    """Steps 1 and 2: the reference's manifest (through the index when it is one);
    `sent()` once the first request is out."""
    top_data, top_digest, top = fetch_manifest(client, ref, str(ref.digest or ref.tag), sent=sent)
    # (The documents' module and json load once the request is out, as hashlib does.)
    from cove.image.manifest import INDEX_TYPES, ImageIndex, ImageManifest, select_manifest

    if not isinstance(top, ImageIndex):
        return Resolved(top_data, top_digest, None, top, top_data, top_digest)
    entry = select_manifest(top, platform)
    if entry.media_type in INDEX_TYPES:
        raise InvalidManifest(
            f"index {top_digest} of {ref} points at another index for "
            f"{platform or 'this host'}: nested indexes are not supported"
        )
    manifest_data, manifest_digest, document = fetch_manifest(
        client, ref.with_digest(entry.digest), str(entry.digest), entry
    )
    if not isinstance(document, ImageManifest):
        raise InvalidManifest(f"manifest {entry.digest} of {ref} is an index")
    return Resolved(top_data, top_digest, top, document, manifest_data, manifest_digest)


def start_resolve(
    client: RegistryClient, reference: Reference | str, platform: Platform | str | None = None
) -> Callable[[], Resolved]:
    """`resolve` in a thread: returns the function that waits for it (and raises what it
    raised). Lets the caller open the store while the registry answers."""
    ref = reference if isinstance(reference, Reference) else parse_reference(reference)
    want = parse_platform(platform) if isinstance(platform, str) else platform
    outcome: list[Resolved | BaseException] = []

    def run() -> None:
        try:
            outcome.append(resolve(client, ref, want))
        except BaseException as err:  # handed to the waiting thread
            outcome.append(err)

    thread = threading.Thread(target=run, name="cove-pull-resolve", daemon=True)
    thread.start()

    def wait() -> Resolved:
        thread.join()
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    return wait


def fetch_manifest(
    client: RegistryClient,
    ref: Reference,
    reference: str,
    entry: Descriptor | None = None,
    *,
    sent: Callable[[], None] | None = None,
) -> tuple[bytes, Digest, ImageManifest | ImageIndex]:
    """A manifest's bytes, checked digest and parsed document."""
    accept = None if entry is None else (entry.media_type,)
    if accept is None:
        data, media_type, served = client.get_manifest(ref.repository, reference, sent=sent)
    else:
        data, media_type, served = client.get_manifest(ref.repository, reference, accept, sent)
    pinned = ref.digest or (entry.digest if entry is not None else None)
    algorithm = (pinned or served or Digest.of(b"")).algorithm
    actual = Digest.of(data, algorithm)
    if pinned is not None and actual != pinned:
        raise DigestMismatch(pinned, actual, f"manifest of {ref}")
    if served is not None and served.algorithm == actual.algorithm and served != actual:
        raise DigestMismatch(served, actual, f"manifest of {ref} (Docker-Content-Digest)")
    if entry is not None and entry.size != len(data):
        raise DigestMismatch(
            f"{entry.size} bytes", f"{len(data)} bytes", f"manifest {entry.digest}"
        )
    if actual.algorithm != "sha256":
        actual = Digest.of(data)  # the store names documents by sha256
    from cove.image.manifest import parse_manifest

    return data, actual, parse_manifest(data, media_type or None)


def ref_label(ref: Reference) -> str:
    """The id of a pull's "Pulling from" event: the tag, else the digest."""
    label = ref.tag if ref.digest is None and ref.tag else str(ref.digest)
    return label or ""
