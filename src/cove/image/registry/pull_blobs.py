"""Step 3 of a pull (`cove.image.registry.pull`): the config and layer blobs of a manifest
that the store lacks, fetched in parallel by a few threads (one per blob up to `workers`).

Each blob is streamed from the socket into the store's resumable temp file
`tmp/pull-<hex>.partial` (hashed on the way, no copy in between), fsynced, verified against
digest and size, renamed into place. A connection that breaks mid-blob is resumed with an
HTTP Range request; so is a download a killed pull left behind: the bytes already in the
temp file are re-hashed and the rest is asked for. When the registry ignores the Range
(200 instead of 206), the download starts over. Blobs the store holds are not fetched.
"""

from __future__ import annotations

import _thread
import threading
import time

from cove.errors import DigestMismatch, RegistryError, RegistryUnreachable, SizeMismatch
from cove.image.registry.progress import ProgressEvent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Protocol

    from cove.image.digest import Digest
    from cove.image.manifest import Descriptor, ImageManifest
    from cove.image.registry.client import RegistryClient, Response
    from cove.image.registry.progress import Progress
    from cove.image.store_blobs import ResumableBlob

    class Blobs(Protocol):
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


class PullAborted(RegistryError):
    """Another blob of the same pull failed: this download stopped."""


def fetch_blobs(
    store: Blobs,
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
    store: Blobs,
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
