"""`pull`: a tag or digest from a registry into the image store.

    1. GET the manifest by tag (Accept: OCI index, Docker list, OCI manifest, Docker
       manifest); check it against the reference's digest and Docker-Content-Digest.
    2. An index: pick the platform's manifest (linux/amd64 on this host by default) and GET
       it by digest. (`start_resolve` runs steps 1-2 in a thread, so the CLI opens the
       store meanwhile.)
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
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cove.errors import (
    DigestMismatch,
    InvalidManifest,
    NoSuchImage,
    RegistryError,
    RegistryUnreachable,
    SizeMismatch,
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

if TYPE_CHECKING:
    from cove.image.store import ImageRecord, ImageStore, ResumableBlob

#: parallel blob downloads (as skopeo's default)
DEFAULT_WORKERS = 6
#: bytes read from the socket at a time, straight into the buffer that is hashed and written
BUFFER_SIZE = 1 << 20
#: how often one blob download may be resumed after its connection broke
DEFAULT_RETRIES = 5
PROGRESS_INTERVAL = 0.1


class PullAborted(RegistryError):
    """Another blob of the same pull failed: this download stopped."""


@dataclass(frozen=True)
class Resolved:
    """What a reference resolved to: the top document (an index or the manifest) and the
    image manifest, each with its bytes and sha256 digest."""

    top_data: bytes
    top_digest: Digest
    index: ImageIndex | None
    manifest: ImageManifest
    manifest_data: bytes
    manifest_digest: Digest


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
    resolved: Callable[[], Resolved] | None = None,
) -> PullResult:
    """Pull `reference` into `store`; see the module's docstring for the steps.
    `resolved` is `start_resolve(client, reference, platform)`, started earlier."""
    ref = reference if isinstance(reference, Reference) else parse_reference(reference)
    want = parse_platform(platform) if isinstance(platform, str) else platform
    own_client = client is None
    if client is None:
        client = RegistryClient(
            ref.registry, tls_verify=tls_verify, credential_store=credential_store
        )
    try:
        return _pull(store, ref, client, want, progress, max(1, workers), retries, resolved)
    finally:
        if own_client:
            client.close()


def resolve(client: RegistryClient, ref: Reference, platform: Platform | None) -> Resolved:
    """Steps 1 and 2: the reference's manifest (through the index when it is one)."""
    top_data, top_digest, top = _fetch_manifest(client, ref, str(ref.digest or ref.tag))
    if not isinstance(top, ImageIndex):
        return Resolved(top_data, top_digest, None, top, top_data, top_digest)
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


def _pull(
    store: ImageStore,
    ref: Reference,
    client: RegistryClient,
    platform: Platform | None,
    progress: Progress,
    workers: int,
    retries: int,
    resolved: Callable[[], Resolved] | None,
) -> PullResult:
    label = ref.tag if ref.digest is None and ref.tag else str(ref.digest)
    progress(ProgressEvent(f"Pulling from {ref.repository}", id=label or ""))
    found = resolved() if resolved is not None else resolve(client, ref, platform)
    manifest, index = found.manifest, found.index
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
    data, digest = found.manifest_data, found.manifest_digest
    store.put_blob(data, digest, expected_size=len(data), sync_dir=False)
    if index is not None:
        store.put_blob(found.top_data, found.top_digest, expected_size=len(found.top_data),
                       sync_dir=False)  # fmt: skip
    store.sync_blobs()  # the renames of this pull's blobs, before the image refers to them
    names = [ref] if ref.digest is None else []
    record = store.add_image(
        digest, names=names, index=found.top_digest if index is not None else None
    )
    downloaded = previous is None or previous.manifest_digest != record.manifest_digest
    progress(ProgressEvent(f"Digest: {found.top_digest}"))
    status = "Downloaded newer image for" if downloaded else "Image is up to date for"
    progress(ProgressEvent(f"Status: {status} {ref.familiar()}"))
    return PullResult(record, ref, found.top_digest, downloaded)


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
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work() -> None:
        buffer = memoryview(bytearray(BUFFER_SIZE))
        while not abort.is_set():
            with lock:
                if not todo:
                    return
                desc, shown = todo.pop(0)
            try:
                _download(
                    store, client, repository, desc, progress if shown else None, retries,
                    abort, buffer,
                )  # fmt: skip
            except BaseException as err:  # handed to the main thread
                with lock:
                    errors.append(err)
                abort.set()
                return

    count = min(workers, len(todo))
    if count == 1:
        work()
    else:
        threads = [
            threading.Thread(target=work, name=f"cove-pull-{n}", daemon=True) for n in range(count)
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        except BaseException:  # Ctrl-C: the downloads stop, their temp files stay
            abort.set()
            raise
    if errors:
        first = next((e for e in errors if not isinstance(e, PullAborted)), errors[0])
        raise first


def _download(
    store: ImageStore,
    client: RegistryClient,
    repository: str,
    desc: Descriptor,
    progress: Progress | None,
    retries: int,
    abort: threading.Event,
    buffer: memoryview,
) -> None:
    short = desc.digest.short()
    for attempt in range(2):
        if abort.is_set():
            raise PullAborted(f"pull aborted before blob {desc.digest}")
        with store.resumable_blob(desc.digest, expected_size=desc.size) as blob:
            resumed = blob.resumed
            try:
                _receive(client, repository, desc, blob, progress, retries, abort, buffer)
                store.commit_blob(blob, sync_dir=False)
            except (DigestMismatch, SizeMismatch):
                blob.discard()
                if resumed == 0 or attempt == 1:
                    raise
                continue  # the bytes an earlier run left were wrong: once more from 0
        break
    if progress is not None:
        progress(ProgressEvent("Download complete", id=short))
        progress(ProgressEvent("Pull complete", id=short))


def _receive(
    client: RegistryClient,
    repository: str,
    desc: Descriptor,
    blob: ResumableBlob,
    progress: Progress | None,
    retries: int,
    abort: threading.Event,
    buffer: memoryview,
) -> None:
    """Download the rest of the blob into `blob`, resuming with Range requests."""
    short = desc.digest.short()
    failures = 0
    last_report = 0.0
    if progress is not None and blob.offset:
        progress(ProgressEvent("Resuming download", short, blob.offset, desc.size))
    while blob.offset < desc.size:
        if abort.is_set():
            raise PullAborted(f"pull aborted during blob {desc.digest}")
        try:
            response = client.open_blob(repository, desc.digest, blob.offset)
            try:
                skip = _bytes_to_skip(response, blob, desc)
                while count := response.readinto(buffer):
                    if abort.is_set():
                        raise PullAborted(f"pull aborted during blob {desc.digest}")
                    chunk = buffer[:count]
                    if skip:
                        if count <= skip:
                            skip -= count
                            continue
                        chunk, skip = chunk[skip:], 0
                    blob.write(chunk)
                    now = time.monotonic()
                    if progress is not None and (
                        now - last_report >= PROGRESS_INTERVAL or blob.offset >= desc.size
                    ):
                        last_report = now
                        progress(ProgressEvent("Downloading", short, blob.offset, desc.size))
            finally:
                response.close()
            if blob.offset >= desc.size:
                return  # (a longer blob fails in the hasher at once)
            raise RegistryUnreachable(
                f"blob {desc.digest}: connection closed after {blob.offset} of {desc.size} bytes"
            )
        except (RegistryUnreachable, OSError) as err:
            failures += 1
            if failures > retries:
                raise RegistryUnreachable(
                    f"registry {client.registry}: blob {desc.digest} failed after "
                    f"{failures} attempts ({blob.offset} of {desc.size} bytes): {err}"
                ) from None
            time.sleep(min(0.2 * failures, 2.0))


def _bytes_to_skip(response: Response, blob: ResumableBlob, desc: Descriptor) -> int:
    """How many leading bytes of `response` we already have; a registry that ignored the
    Range (200) makes the download start over."""
    offset = blob.offset
    if offset == 0:
        return 0
    if response.status == 200:
        blob.restart()
        return 0
    content_range = response.header("Content-Range")
    try:
        start = int(content_range.split()[-1].split("-", 1)[0])
    except (ValueError, IndexError):
        start = -1
    if start < 0 or start > offset:
        raise RegistryError(
            f"registry answered a range request for blob {desc.digest} with "
            f"Content-Range {content_range!r} (wanted bytes from {offset})"
        )
    return offset - start
