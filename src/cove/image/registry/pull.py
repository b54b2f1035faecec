"""`pull`: a tag or digest from a registry into the image store.

    1. GET the manifest by tag (Accept: OCI index, Docker list, OCI manifest, Docker
       manifest); check it against the reference's digest and Docker-Content-Digest.
    2. An index: pick the platform's manifest (linux/amd64 on this host by default) and GET
       it by digest. (`start_resolve` runs steps 1-2 in a thread, so the CLI opens the
       store meanwhile; `start_pull` runs steps 1-3, see below.)
    3. Config and layer blobs: fetched in parallel by a few threads (one per blob up to
       `workers`), each streamed from the socket into the store's resumable temp file
       `tmp/pull-<hex>.partial` (hashed on the way, no copy in between), fsynced, verified
       against digest and size, renamed into place. A connection that breaks mid-blob is
       resumed with an HTTP Range request; so is a download a killed pull left behind: the
       bytes already in the temp file are re-hashed and the rest is asked for. When the
       registry ignores the Range (200 instead of 206), the download starts over. Blobs
       the store holds are not fetched.
    4. One fsync of the blob folder (the renames), the manifest (and the index) stored,
       then `add_image` registers the image and tags it with the reference (not when
       pulled by digest).

A failure leaves no registered image and no corrupt blob: a digest or size mismatch
deletes the temp file; an unfinished download keeps its temp file (a later pull resumes
it; `ImageStore.cleanup_partial` removes it after a day). Finished blobs stay.

`start_pull(client, ref, platform, root)` runs steps 1-3 in threads before the store is
open: the blobs go into the store's folders (`cove.image.store_blobs.BlobFolder`), which
need no database, while the caller imports the store and opens its database; then
`pull(store, ref, early=...)` does step 4 (the manifest is stored while the last blobs
come, the image registered once they are all there). Progress events are held
back until `pull` is called, so the output is what it would have been in one go (and a
store that cannot be opened shows none). `cove pull` does this: opening a new store costs
several fsyncs, and they overlap the downloads.

Where the steps live: 1-2 in `pull_resolve`, 3 in `pull_blobs`, `start_pull` in
`pull_early`, 4 here.
"""

from __future__ import annotations

from cove.errors import NoSuchImage
from cove.image.media_types import layer_compression
from cove.image.platform import parse_platform
from cove.image.records import FrozenRecord
from cove.image.reference import Reference, parse_reference
from cove.image.registry.client import RegistryClient
from cove.image.registry.progress import ProgressEvent, no_progress
from cove.image.registry.pull_blobs import DEFAULT_RETRIES, DEFAULT_WORKERS, fetch_blobs
from cove.image.registry.pull_resolve import ref_label, resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from cove.image.digest import Digest
    from cove.image.manifest import Platform
    from cove.image.registry.auth import CredentialStore
    from cove.image.registry.progress import Progress
    from cove.image.registry.pull_early import EarlyPull
    from cove.image.registry.pull_resolve import Resolved
    from cove.image.store import ImageStore
    from cove.image.store_index import ImageRecord


class PullResult(FrozenRecord):
    """`digest` is what the reference resolved to (the index's digest when it was one);
    `downloaded` is False when the image was already there under that name."""

    __slots__ = ("digest", "downloaded", "image", "reference")
    _field_order = ("image", "reference", "digest", "downloaded")
    image: ImageRecord
    reference: Reference
    digest: Digest
    downloaded: bool

    def __init__(
        self, image: ImageRecord, reference: Reference, digest: Digest, downloaded: bool
    ) -> None:
        self._init(image, reference, digest, downloaded)


def pull(
    store: ImageStore,
    reference: Reference | str,
    *,
    client: RegistryClient | None = None,
    platform: Platform | str | None = None,
    tls_verify: bool | None = None,
    credential_store: CredentialStore | None = None,
    progress: Progress = no_progress,
    workers: int = DEFAULT_WORKERS,
    retries: int = DEFAULT_RETRIES,
    resolved: Callable[[], Resolved] | None = None,
    early: EarlyPull | None = None,
) -> PullResult:
    """Pull `reference` into `store`; see the module's docstring for the steps.
    `resolved` is `start_resolve(client, reference, platform)`, started earlier; `early`
    is `start_pull(client, reference, platform, store.root, progress=progress)` (which
    then did the resolving and downloading: `workers` and `retries` were its own)."""
    ref = reference if isinstance(reference, Reference) else parse_reference(reference)
    want = parse_platform(platform) if isinstance(platform, str) else platform
    # (The store's own strings: its Path attributes would load pathlib.)
    if early is not None and (early.reference != ref or not early.fills(store._root, store._tmp)):
        raise ValueError(f"pull of {ref} into {store._root} given another's early start")
    own_client = client is None
    if client is None:
        client = RegistryClient(
            ref.registry, tls_verify=tls_verify, credential_store=credential_store
        )
    try:
        return _pull(store, ref, client, want, progress, max(1, workers), retries, resolved, early)
    finally:
        if own_client:
            client.close()


def _pull(
    store: ImageStore,
    ref: Reference,
    client: RegistryClient,
    platform: Platform | None,
    progress: Progress,
    workers: int,
    retries: int,
    resolved: Callable[[], Resolved] | None,
    early: EarlyPull | None = None,
) -> PullResult:
    """With `early`, that did the first events, the checks and the downloads; the
    documents are stored while the last blobs come."""
    from cove.image.manifest import parse_config

    if early is not None:
        early.release_progress()
        found = early.documents()
        manifest, index = found.manifest, found.index
        previous = _current(store, ref)
        _store_documents(store, found)
        early.release()
    else:
        progress(ProgressEvent(f"Pulling from {ref.repository}", id=ref_label(ref)))
        found = resolved() if resolved is not None else resolve(client, ref, platform)
        manifest, index = found.manifest, found.index
        for layer in manifest.layers:
            layer_compression(layer.media_type)  # refuses what is not a layer
        previous = _current(store, ref)
        fetch_blobs(store, client, ref.repository, manifest, progress, workers, retries)
    if platform is not None and index is None:
        config = parse_config(store.read_blob(manifest.config.digest), manifest.config.media_type)
        if not config.platform.matches(platform):
            progress(
                ProgressEvent(
                    f"WARNING: the image's platform ({config.platform}) does not match the "
                    f"requested platform ({platform})"
                )
            )
    if early is None:
        _store_documents(store, found)
    store.sync_blobs()  # the renames of this pull's blobs, before the image refers to them
    names = [ref] if ref.digest is None else []
    record = store.add_image(
        found.manifest_digest, names=names, index=found.top_digest if index is not None else None
    )
    downloaded = previous is None or previous.manifest_digest != record.manifest_digest
    progress(ProgressEvent(f"Digest: {found.top_digest}"))
    status = "Downloaded newer image for" if downloaded else "Image is up to date for"
    progress(ProgressEvent(f"Status: {status} {ref.familiar()}"))
    return PullResult(record, ref, found.top_digest, downloaded)


def _store_documents(store: ImageStore, found: Resolved) -> None:
    """The manifest (and the index it came through) as blobs; `sync_blobs` syncs them."""
    data, digest = found.manifest_data, found.manifest_digest
    store.put_blob(data, digest, expected_size=len(data), sync_dir=False)
    if found.index is not None:
        store.put_blob(found.top_data, found.top_digest, expected_size=len(found.top_data),
                       sync_dir=False)  # fmt: skip


def _current(store: ImageStore, ref: Reference) -> ImageRecord | None:
    try:
        return store.resolve(str(ref))
    except NoSuchImage:
        return None
