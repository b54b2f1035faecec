"""`start_pull`: steps 1-3 of a pull (`cove.image.registry.pull`) in threads, before the
image store is open.

The blobs go into the store's folders (`cove.image.store_blobs.BlobFolder`), which need no
database, while the caller imports the store and opens its database; then
`pull(store, ref, early=...)` does step 4 (the manifest is stored while the last blobs
come, the image registered once they are all there). Progress events are held back until
`pull` is called, so the output is what it would have been in one go (and a store that
cannot be opened shows none). `cove pull` does this: opening a new store costs several
fsyncs, and they overlap the downloads.
"""

from __future__ import annotations

import os
import threading

from cove.image.media_types import layer_compression
from cove.image.platform import parse_platform
from cove.image.reference import Reference, parse_reference
from cove.image.registry.progress import ProgressEvent, no_progress
from cove.image.registry.pull_blobs import (
    DEFAULT_RETRIES,
    DEFAULT_WORKERS,
    PullAborted,
    fetch_blobs,
)
from cove.image.registry.pull_resolve import ref_label, resolve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.image.manifest import Platform
    from cove.image.registry.client import RegistryClient
    from cove.image.registry.progress import Progress
    from cove.image.registry.pull_resolve import Resolved

#: how long `start_pull` waits at most for every blob download to have sent its request
SETTLE_TIME = 0.05


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
            self._report(ProgressEvent(f"Pulling from {ref.repository}", id=ref_label(ref)))
            found = resolve(client, ref, platform, self._asked.set)
            for layer in found.manifest.layers:
                layer_compression(layer.media_type)  # refuses what is not a layer
            self._found = found
            self._resolved.set()
            if self._abort.is_set():
                raise PullAborted(f"pull of {ref} cancelled")
            from cove.image.store_blobs import BlobFolder  # (after the request: see resolve)

            folder = BlobFolder(root)
            fetch_blobs(
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
