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
"""

from __future__ import annotations

import _thread
import os
import threading
import time

from cove.errors import (
    DigestMismatch,
    InvalidManifest,
    NoSuchImage,
    RegistryError,
    RegistryUnreachable,
    SizeMismatch,
)
from cove.image.digest import Digest
from cove.image.media_types import layer_compression
from cove.image.platform import parse_platform
from cove.image.records import FrozenRecord
from cove.image.reference import Reference, parse_reference
from cove.image.registry.client import RegistryClient
from cove.image.registry.progress import ProgressEvent, no_progress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    from cove.image.manifest import Descriptor, ImageIndex, ImageManifest, Platform
    from cove.image.registry.auth import CredentialStore
    from cove.image.registry.client import Response
    from cove.image.registry.progress import Progress
    from cove.image.store import ImageRecord, ImageStore, ResumableBlob

    class _Blobs(Protocol):
        """Where blobs are downloaded to: an `ImageStore`, or a `BlobFolder` of one."""

        def has_blob(self, digest: Digest) -> bool: ...

        def resumable_blob(
            self, expected: Digest, *, expected_size: int | None = None
        ) -> ResumableBlob: ...

        def commit_blob(self, blob: ResumableBlob, *, sync_dir: bool = True) -> object: ...


#: parallel blob downloads (as skopeo's default)
DEFAULT_WORKERS = 6
#: bytes read from the socket at a time, straight into the buffer that is hashed and written
BUFFER_SIZE = 1 << 20
#: how often one blob download may be resumed after its connection broke
DEFAULT_RETRIES = 5
PROGRESS_INTERVAL = 0.1
#: how long `start_pull` waits at most for every blob download to have sent its request
SETTLE_TIME = 0.05


class PullAborted(RegistryError):
    """Another blob of the same pull failed: this download stopped."""


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


def resolve(
    client: RegistryClient,
    ref: Reference,
    platform: Platform | None,
    sent: Callable[[], None] | None = None,
) -> Resolved:
    """Steps 1 and 2: the reference's manifest (through the index when it is one);
    `sent()` once the first request is out."""
    top_data, top_digest, top = _fetch_manifest(client, ref, str(ref.digest or ref.tag), sent=sent)
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


def start_pull(
    client: RegistryClient,
    reference: Reference | str,
    platform: Platform | str | None,
    root: str | os.PathLike[str],
    *,
    progress: Progress = no_progress,
    workers: int = DEFAULT_WORKERS,
    retries: int = DEFAULT_RETRIES,
    settle: float = SETTLE_TIME,
) -> EarlyPull:
    """Steps 1-3 of a pull into the image store at `root`, in threads, before the store is
    open: hand the result to `pull(store, reference, early=...)`, or `cancel()` it.
    Returns once every blob download has sent its request (or the pull failed or has
    nothing to download), or after `settle` seconds (a slow registry)."""
    ref = reference if isinstance(reference, Reference) else parse_reference(reference)
    want = parse_platform(platform) if isinstance(platform, str) else platform
    early = EarlyPull(client, ref, want, root, progress, max(1, workers), retries)
    # Once the first request is out, load what the thread needs next while the registry
    # answers (json and the document types, OpenSSL's hashes, the blob files), then leave
    # the interpreter to it until the blob requests are out: imports, and the caller's next
    # steps (importing and opening the store), hold the GIL for milliseconds at a time, and
    # each would delay a request. The downloads themselves are I/O and hashing, which let
    # go of it.
    try:
        early.wait_asked(settle)
        import hashlib  # noqa: F401

        import cove.image.manifest
        import cove.image.store_blobs  # noqa: F401

        early.wait_started(settle)
    except BaseException:  # Ctrl-C
        early.cancel()
        raise
    return early


class EarlyPull:
    """Resolving and downloading started by `start_pull`; see the module's docstring."""

    def __init__(
        self,
        client: RegistryClient,
        ref: Reference,
        platform: Platform | None,
        root: str | os.PathLike[str],
        progress: Progress,
        workers: int,
        retries: int,
    ) -> None:
        self.reference = ref
        self.root = os.fspath(root)
        self._progress = progress
        self._held: list[ProgressEvent] | None = []
        self._lock = threading.Lock()
        self._abort = threading.Event()
        self._asked = threading.Event()  # the first request is out (or not to come)
        self._started = threading.Event()  # the blob requests are out (or not to come)
        self._resolved = threading.Event()  # `_found` is there, or resolving failed
        self._found: Resolved | None = None
        self._outcome: list[Resolved | BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(client, platform, root, workers, retries),
            name="cove-pull-resolve", daemon=True,
        )  # fmt: skip
        self._thread.start()

    def fills(self, root: str | os.PathLike[str], tmp_dir: str | os.PathLike[str]) -> bool:
        """True when this downloads into the store at `root` with temp folder `tmp_dir`."""
        mine = os.path.normpath(self.root)
        tmp = os.path.join(mine, "tmp")
        return os.path.normpath(root) == mine and os.path.normpath(tmp_dir) == tmp

    def wait_asked(self, timeout: float) -> bool:
        """Wait until the first request is out (or none is to come); False on timeout."""
        return self._asked.wait(timeout)

    def wait_started(self, timeout: float) -> bool:
        """Wait until every blob request is out (or none is to come); False on timeout."""
        return self._started.wait(timeout)

    def release_progress(self) -> None:
        """Let the held progress events out; later ones go straight to the caller's."""
        with self._lock:
            held, self._held = self._held, None
            for event in held or ():
                self._progress(event)

    def documents(self) -> Resolved:
        """Wait for steps 1-2 (the downloads may go on); raises what failed."""
        self._resolved.wait()
        if self._found is None:
            return self.release()  # (raises)
        return self._found

    def release(self) -> Resolved:
        """Let the held progress events out, wait for steps 1-3; raises what failed."""
        self.release_progress()
        try:
            self._thread.join()
        except BaseException:  # Ctrl-C: the downloads stop, their temp files stay
            self.cancel()
            raise
        result = self._outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def cancel(self) -> None:
        """Stop the downloads (a blob being written keeps its temp file for a later pull);
        held progress events are dropped. Does not wait for the threads."""
        self._abort.set()
        with self._lock:
            if self._held is not None:
                self._held.clear()

    def _report(self, event: ProgressEvent) -> None:
        with self._lock:
            if self._held is not None:
                self._held.append(event)
                return
        self._progress(event)

    def _run(
        self,
        client: RegistryClient,
        platform: Platform | None,
        root: str | os.PathLike[str],
        workers: int,
        retries: int,
    ) -> None:
        ref = self.reference
        try:
            self._report(ProgressEvent(f"Pulling from {ref.repository}", id=_label(ref)))
            found = resolve(client, ref, platform, self._asked.set)
            for layer in found.manifest.layers:
                layer_compression(layer.media_type)  # refuses what is not a layer
            self._found = found
            self._resolved.set()
            if self._abort.is_set():
                raise PullAborted(f"pull of {ref} cancelled")
            from cove.image.store_blobs import BlobFolder  # (after the request: see resolve)

            folder = BlobFolder(root)
            _fetch_blobs(
                folder, client, ref.repository, found.manifest, self._report, workers, retries,
                self._abort, inline=True, started=self._started,
            )  # fmt: skip
            self._outcome.append(found)
        except BaseException as err:  # handed to the waiting thread
            self._outcome.append(err)
        finally:
            self._asked.set()
            self._resolved.set()
            self._started.set()


def _label(ref: Reference) -> str:
    label = ref.tag if ref.digest is None and ref.tag else str(ref.digest)
    return label or ""


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
        progress(ProgressEvent(f"Pulling from {ref.repository}", id=_label(ref)))
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


def _fetch_manifest(
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


# --- blobs ---------------------------------------------------------------------------------


def _fetch_blobs(
    store: _Blobs,
    client: RegistryClient,
    repository: str,
    manifest: ImageManifest,
    progress: Progress,
    workers: int,
    retries: int,
    abort: threading.Event | None = None,
    *,
    inline: bool = False,
    started: threading.Event | None = None,
) -> None:
    """Download the manifest's config and layers that `store` lacks; `started` is set once
    every download thread has sent its first request."""
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
    if abort is None:
        abort = threading.Event()
    errors: list[BaseException] = []
    lock = threading.Lock()

    import mmap

    count = min(workers, len(todo))
    # `started` is set once every worker has sent its first request (or stopped before).
    waiting = [count]

    def requested() -> None:
        with lock:
            waiting[0] -= 1
            if waiting[0] == 0 and started is not None:
                started.set()

    def work() -> None:
        # An anonymous mapping, not a bytearray: zero-filling 1 MiB would hold the GIL for
        # a fraction of a millisecond per thread while the others wait to send their
        # requests; the kernel provides zeroed pages as the socket reads fill them.
        buffer = memoryview(mmap.mmap(-1, BUFFER_SIZE))
        told = False

        def first_request() -> None:
            nonlocal told
            if not told:
                told = True
                requested()

        try:
            while not abort.is_set():
                with lock:
                    if not todo:
                        return
                    desc, shown = todo.pop(0)
                try:
                    _download(
                        store, client, repository, desc, progress if shown else None, retries,
                        abort, buffer, first_request,
                    )  # fmt: skip
                except BaseException as err:  # handed to the main thread
                    with lock:
                        errors.append(err)
                    abort.set()
                    return
        finally:
            first_request()

    if count == 1:
        work()
    else:
        # In a background thread (`inline`), that thread is a worker too: one thread less
        # to start, and its connection (the manifest's) is reused for the first blob. The
        # others start with `_thread`: `threading.Thread.start` waits until each new thread
        # runs, one after the other, which on a busy machine delays the later requests by
        # milliseconds each. (They die with the interpreter, as daemon threads.)
        spawned = count - 1 if inline else count
        finished = threading.Semaphore(0)

        def worker() -> None:
            try:
                work()
            finally:
                finished.release()

        try:
            for _ in range(spawned):
                _thread.start_new_thread(worker, ())
            if inline:
                work()
            for _ in range(spawned):
                finished.acquire()
        except BaseException:  # Ctrl-C: the downloads stop, their temp files stay
            abort.set()
            raise
    if errors:
        first = next((e for e in errors if not isinstance(e, PullAborted)), errors[0])
        raise first


def _download(
    store: _Blobs,
    client: RegistryClient,
    repository: str,
    desc: Descriptor,
    progress: Progress | None,
    retries: int,
    abort: threading.Event,
    buffer: memoryview,
    sent: Callable[[], None] | None = None,
) -> None:
    """One blob into the store; `sent()` once a request for it is out."""
    short = desc.digest.short()
    for attempt in range(2):
        if abort.is_set():
            raise PullAborted(f"pull aborted before blob {desc.digest}")
        with store.resumable_blob(desc.digest, expected_size=desc.size) as blob:
            resumed = blob.resumed
            try:
                _receive(client, repository, desc, blob, progress, retries, abort, buffer,
                         sent)  # fmt: skip
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
    sent: Callable[[], None] | None = None,
) -> None:
    """Download the rest of the blob into `blob`, resuming with Range requests; `sent()`
    once a request is out."""
    short = desc.digest.short()
    failures = 0
    last_report = 0.0
    if progress is not None and blob.offset:
        progress(ProgressEvent("Resuming download", short, blob.offset, desc.size))
    while blob.offset < desc.size:
        if abort.is_set():
            raise PullAborted(f"pull aborted during blob {desc.digest}")
        try:
            response = client.open_blob(repository, desc.digest, blob.offset, sent)
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
