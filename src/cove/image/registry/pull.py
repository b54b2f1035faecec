"""`pull`: a tag or digest from a registry into the image store.

    1. GET the manifest by tag (Accept: OCI index, Docker list, OCI manifest, Docker
       manifest); check it against the reference's digest and Docker-Content-Digest.
    2. An index: pick the platform's manifest (linux/amd64 on this host by default) and GET
       it by digest.
    3. Config and layer blobs: fetched in parallel by a small thread pool, each streamed
       into `ImageStore.put_blob`, which hashes while writing and keeps nothing unless the
       digest and size match. A connection that breaks mid-blob is resumed with an HTTP
       Range request (when the registry answers 200 instead of 206, the bytes already
       stored are skipped from the new stream). Blobs the store holds are not fetched.
    4. The manifest (and the index) are stored, then `add_image` registers the image and
       tags it with the reference (not when pulled by digest).

A failure at any step leaves no partial blob (the store removes its temp files) and no
registered image; blobs fully downloaded before the failure stay for the next attempt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from cove.errors import (
    DigestMismatch,
    InvalidManifest,
    NoSuchImage,
    RegistryError,
    RegistryUnreachable,
)
from cove.image.digest import Digest
from cove.image.manifest import (
    INDEX_TYPES,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Platform,
    layer_compression,
    parse_config,
    parse_manifest,
    parse_platform,
    select_manifest,
)
from cove.image.reference import Reference, parse_reference
from cove.image.registry.auth import CredentialStore
from cove.image.registry.client import RegistryClient, Response
from cove.image.registry.progress import Progress, ProgressEvent, no_progress
from cove.image.store import ImageRecord, ImageStore

DEFAULT_WORKERS = 3
#: how often one blob download may be resumed after its connection broke
DEFAULT_RETRIES = 5
PROGRESS_INTERVAL = 0.1


class PullAborted(RegistryError):
    """Another blob of the same pull failed: this download stopped."""


@dataclass(frozen=True)
class PullResult:
    """`digest` is what the reference resolved to (the index's digest when it was one);
    `downloaded` is False when the image was already there under that name."""

    image: ImageRecord
    reference: Reference
    digest: Digest
    downloaded: bool


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
) -> PullResult:
    """Pull `reference` into `store`; see the module's docstring for the steps."""
    ref = reference if isinstance(reference, Reference) else parse_reference(reference)
    want = parse_platform(platform) if isinstance(platform, str) else platform
    own_client = client is None
    if client is None:
        client = RegistryClient(
            ref.registry, tls_verify=tls_verify, credential_store=credential_store
        )
    try:
        return _pull(store, ref, client, want, progress, max(1, workers), retries)
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
) -> PullResult:
    label = ref.tag if ref.digest is None and ref.tag else str(ref.digest)
    progress(ProgressEvent(f"Pulling from {ref.repository}", id=label or ""))
    top_data, top_digest, top = _fetch_manifest(client, ref, str(ref.digest or ref.tag))
    index: ImageIndex | None = None
    if isinstance(top, ImageIndex):
        index = top
        entry = select_manifest(top, platform)
        if entry.media_type in INDEX_TYPES:
            raise InvalidManifest(
                f"index {top_digest} of {ref} points at another index for "
                f"{platform or 'this host'}: nested indexes are not supported"
            )
        manifest_data, manifest_digest, document = _fetch_manifest(
            client, ref.with_digest(entry.digest), str(entry.digest), entry
        )
        if not isinstance(document, ImageManifest):
            raise InvalidManifest(f"manifest {entry.digest} of {ref} is an index")
        manifest = document
    else:
        manifest, manifest_data, manifest_digest = top, top_data, top_digest
    for layer in manifest.layers:
        layer_compression(layer.media_type)  # refuses what is not a layer
    previous = _current(store, ref)
    _fetch_blobs(store, client, ref.repository, manifest, progress, workers, retries)
    if platform is not None and index is None:
        config = parse_config(store.read_blob(manifest.config.digest), manifest.config.media_type)
        if not config.platform.matches(platform):
            progress(
                ProgressEvent(
                    f"WARNING: the image's platform ({config.platform}) does not match the "
                    f"requested platform ({platform})"
                )
            )
    store.put_blob(manifest_data, manifest_digest, expected_size=len(manifest_data))
    if index is not None:
        store.put_blob(top_data, top_digest, expected_size=len(top_data))
    names = [ref] if ref.digest is None else []
    record = store.add_image(
        manifest_digest, names=names, index=top_digest if index is not None else None
    )
    downloaded = previous is None or previous.manifest_digest != record.manifest_digest
    progress(ProgressEvent(f"Digest: {top_digest}"))
    status = "Downloaded newer image for" if downloaded else "Image is up to date for"
    progress(ProgressEvent(f"Status: {status} {ref.familiar()}"))
    return PullResult(record, ref, top_digest, downloaded)


def _current(store: ImageStore, ref: Reference) -> ImageRecord | None:
    try:
        return store.resolve(str(ref))
    except NoSuchImage:
        return None


def _fetch_manifest(
    client: RegistryClient, ref: Reference, reference: str, entry: Descriptor | None = None
) -> tuple[bytes, Digest, ImageManifest | ImageIndex]:
    """A manifest's bytes, checked digest and parsed document."""
    accept = None if entry is None else (entry.media_type,)
    if accept is None:
        data, media_type, served = client.get_manifest(ref.repository, reference)
    else:
        data, media_type, served = client.get_manifest(ref.repository, reference, accept)
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
    return data, actual, parse_manifest(data, media_type or None)


# --- blobs ---------------------------------------------------------------------------------


def _fetch_blobs(
    store: ImageStore,
    client: RegistryClient,
    repository: str,
    manifest: ImageManifest,
    progress: Progress,
    workers: int,
    retries: int,
) -> None:
    layers: dict[Digest, Descriptor] = {}
    for layer in manifest.layers:
        layers.setdefault(layer.digest, layer)
    todo: list[tuple[Descriptor, bool]] = []
    for layer in layers.values():
        if store.has_blob(layer.digest):
            progress(ProgressEvent("Already exists", id=layer.digest.short()))
        else:
            progress(ProgressEvent("Pulling fs layer", id=layer.digest.short()))
            todo.append((layer, True))
    if not store.has_blob(manifest.config.digest):
        todo.insert(0, (manifest.config, False))
    if not todo:
        return
    abort = threading.Event()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cove-pull") as pool:
        futures: list[Future[None]] = [
            pool.submit(
                _download,
                store,
                client,
                repository,
                desc,
                progress if shown else None,
                retries,
                abort,
            )
            for desc, shown in todo
        ]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in done if f.exception() is not None]
        if failed:
            abort.set()
            for future in futures:
                future.cancel()
            wait(futures)
            errors = [f.exception() for f in futures if not f.cancelled() and f.exception()]
            first = next((e for e in errors if not isinstance(e, PullAborted)), errors[0])
            assert first is not None
            raise first


def _download(
    store: ImageStore,
    client: RegistryClient,
    repository: str,
    desc: Descriptor,
    progress: Progress | None,
    retries: int,
    abort: threading.Event,
) -> None:
    short = desc.digest.short()
    if abort.is_set():
        raise PullAborted(f"pull aborted before blob {desc.digest}")
    store.put_blob(
        _blob_chunks(client, repository, desc, progress, retries, abort),
        desc.digest,
        expected_size=desc.size,
    )
    if progress is not None:
        progress(ProgressEvent("Download complete", id=short))
        progress(ProgressEvent("Pull complete", id=short))


def _blob_chunks(
    client: RegistryClient,
    repository: str,
    desc: Descriptor,
    progress: Progress | None,
    retries: int,
    abort: threading.Event,
) -> Iterator[bytes]:
    """The blob's bytes, resuming with Range requests when the connection breaks."""
    short = desc.digest.short()
    offset = 0
    failures = 0
    last_report = 0.0
    response: Response | None = None
    try:
        while True:
            try:
                response = client.open_blob(repository, desc.digest, offset)
                skip = _bytes_to_skip(response, offset, desc)
                for chunk in response.chunks():
                    if abort.is_set():
                        raise PullAborted(f"pull aborted during blob {desc.digest}")
                    if skip:
                        if len(chunk) <= skip:
                            skip -= len(chunk)
                            continue
                        chunk, skip = chunk[skip:], 0
                    offset += len(chunk)
                    now = time.monotonic()
                    if progress is not None and (
                        now - last_report >= PROGRESS_INTERVAL or offset >= desc.size
                    ):
                        last_report = now
                        progress(ProgressEvent("Downloading", short, offset, desc.size))
                    yield chunk
                response.close()
                response = None
                if offset >= desc.size:
                    return  # (a longer blob is caught by put_blob's size check)
                raise RegistryUnreachable(
                    f"blob {desc.digest}: connection closed after {offset} of {desc.size} bytes"
                )
            except (RegistryUnreachable, OSError) as err:
                if response is not None:
                    response.close()
                    response = None
                failures += 1
                if failures > retries:
                    raise RegistryUnreachable(
                        f"registry {client.registry}: blob {desc.digest} failed after "
                        f"{failures} attempts ({offset} of {desc.size} bytes): {err}"
                    ) from None
                time.sleep(min(0.2 * failures, 2.0))
    finally:
        if response is not None:
            response.close()


def _bytes_to_skip(response: Response, offset: int, desc: Descriptor) -> int:
    """How many leading bytes of `response` we already have."""
    if offset == 0:
        return 0
    if response.status == 200:
        return offset  # the registry ignored the Range: skip what we have
    content_range = response.header("Content-Range")
    try:
        start = int(content_range.split()[-1].split("-", 1)[0])
    except (ValueError, IndexError):
        start = -1
    if start < 0 or start > offset:
        response.close()
        raise RegistryError(
            f"registry answered a range request for blob {desc.digest} with "
            f"Content-Range {content_range!r} (wanted bytes from {offset})"
        )
    return offset - start
