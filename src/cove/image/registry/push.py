"""`push`: an image of the store to a registry, by tag.

For each layer (in parallel) and then the config:

    HEAD /v2/<repo>/blobs/<digest>                       200: already there, done
    POST /v2/<repo>/blobs/uploads/?mount=<d>&from=<r>    201: mounted from repository <r>
        (tried when another repository of the same registry is known to hold the blob:
        the store has an image named there that uses it)
    POST /v2/<repo>/blobs/uploads/                       202 + Location: an upload session
    PUT  <location>?digest=<d>  (the whole blob)         small blobs: monolithic
    PATCH <location>  Content-Range: a-b (a chunk)...    big blobs: chunked, each 202 gives
    PUT  <location>?digest=<d>  (empty)                  the next location

then `PUT /v2/<repo>/manifests/<tag>` with the manifest's stored bytes, so the registry's
digest is the local manifest digest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from cove.errors import InvalidArgument, RegistryError
from cove.image.digest import CHUNK, Digest
from cove.image.manifest import Descriptor
from cove.image.reference import Reference, parse_reference
from cove.image.registry.auth import CredentialStore, repository_scope
from cove.image.registry.client import RegistryClient, absolute_location, with_query
from cove.image.registry.progress import Progress, ProgressEvent, no_progress
from cove.image.store import ImageStore

DEFAULT_WORKERS = 4
#: blobs up to this size are sent in one PUT; bigger ones in PATCH chunks of this size
DEFAULT_CHUNK_SIZE = 16 << 20
MAX_MOUNT_SOURCES = 3
PROGRESS_INTERVAL = 0.1


@dataclass(frozen=True)
class PushResult:
    reference: Reference
    digest: Digest
    size: int


def push(
    store: ImageStore,
    reference: Reference | str,
    *,
    source: str | None = None,
    client: RegistryClient | None = None,
    tls_verify: bool | None = None,
    credential_store: CredentialStore | None = None,
    progress: Progress = no_progress,
    workers: int = DEFAULT_WORKERS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> PushResult:
    """Push the image named `reference` (or the image `source`, any name or id the store
    resolves) to `reference`'s registry, repository and tag."""
    ref = reference if isinstance(reference, Reference) else parse_reference(reference)
    if ref.digest is not None or ref.tag is None:
        raise InvalidArgument(f"cannot push to a digest reference: {reference}")
    record = store.resolve(source if source is not None else str(ref))
    manifest = store.manifest(record)
    raw = store.read_blob(record.manifest_digest)
    own_client = client is None
    if client is None:
        client = RegistryClient(
            ref.registry, tls_verify=tls_verify, credential_store=credential_store
        )
    try:
        progress(ProgressEvent(f"The push refers to repository [{ref.name}]"))
        sources = _mount_sources(store, ref)
        layers: dict[Digest, Descriptor] = {}
        for layer in manifest.layers:
            layers.setdefault(layer.digest, layer)
        for layer in layers.values():
            progress(ProgressEvent("Preparing", id=layer.digest.short()))
        jobs = [(layer, True) for layer in layers.values()] + [(manifest.config, False)]
        pusher = _Pusher(store, client, ref.repository, sources, progress, chunk_size)
        pusher.run(jobs, max(1, workers))
        response = client.request(
            "PUT",
            f"/v2/{ref.repository}/manifests/{ref.tag}",
            scopes=[repository_scope(ref.repository, "pull", "push")],
            headers={"Content-Type": record.manifest_media_type},
            body=raw,
            ok=(200, 201),
            what=f"manifest {ref}",
        )
        response.body(1 << 16)
        digest = Digest.of(raw)
        progress(ProgressEvent(f"{ref.tag}: digest: {digest} size: {len(raw)}"))
        return PushResult(ref, digest, len(raw))
    finally:
        if own_client:
            client.close()


def _mount_sources(store: ImageStore, ref: Reference) -> dict[Digest, list[str]]:
    """Blob -> other repositories of `ref`'s registry that should hold it (the store has an
    image named there that uses the blob)."""
    sources: dict[Digest, list[str]] = {}
    for record in store.images():
        repos = sorted(
            {
                name.repository
                for name in record.names
                if name.registry == ref.registry and name.repository != ref.repository
            }
        )
        if not repos:
            continue
        manifest = store.manifest(record)
        for desc in (manifest.config, *manifest.layers):
            known = sources.setdefault(desc.digest, [])
            known.extend(repo for repo in repos if repo not in known)
    return sources


class PushAborted(RegistryError):
    """Another blob of the same push failed: this upload stopped."""


class _Pusher:
    def __init__(
        self,
        store: ImageStore,
        client: RegistryClient,
        repository: str,
        sources: dict[Digest, list[str]],
        progress: Progress,
        chunk_size: int,
    ) -> None:
        self.store = store
        self.client = client
        self.repository = repository
        self.sources = sources
        self.progress = progress
        self.chunk_size = max(1, chunk_size)
        self.scope = repository_scope(repository, "pull", "push")
        self.abort = threading.Event()

    def run(self, jobs: list[tuple[Descriptor, bool]], workers: int) -> None:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cove-push") as pool:
            futures: list[Future[None]] = [
                pool.submit(self.push_blob, desc, shown) for desc, shown in jobs
            ]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                self.abort.set()
                for future in futures:
                    future.cancel()
                wait(futures)
                errors = [f.exception() for f in futures if not f.cancelled() and f.exception()]
                first = next((e for e in errors if not isinstance(e, PushAborted)), errors[0])
                assert first is not None
                raise first

    def event(self, desc: Descriptor, shown: bool, status: str, current: int | None = None) -> None:
        if shown:
            self.progress(ProgressEvent(status, desc.digest.short(), current, desc.size))

    def push_blob(self, desc: Descriptor, shown: bool) -> None:
        if self.abort.is_set():
            raise PushAborted(f"push aborted before blob {desc.digest}")
        if self.client.blob_exists(self.repository, desc.digest, [self.scope]) is not None:
            self.event(desc, shown, "Layer already exists")
            return
        location: str | None = None
        for source in self.sources.get(desc.digest, [])[:MAX_MOUNT_SOURCES]:
            response = self.client.request(
                "POST",
                with_query(
                    f"/v2/{self.repository}/blobs/uploads/",
                    mount=str(desc.digest),
                    **{"from": source},
                ),
                scopes=[self.scope, repository_scope(source, "pull")],
                ok=(201, 202),
                what=f"mount of blob {desc.digest} from {source}",
            )
            response.body(1 << 16)
            if response.status == 201:
                self.event(desc, shown, f"Mounted from {source}")
                return
            location = absolute_location(response)
            break
        if location is None:
            response = self.client.request(
                "POST",
                f"/v2/{self.repository}/blobs/uploads/",
                scopes=[self.scope],
                ok=(202,),
                what=f"upload of blob {desc.digest}",
            )
            response.body(1 << 16)
            location = absolute_location(response)
        size = self.store.blob_size(desc.digest)
        if size <= self.chunk_size:
            self._monolithic(desc, shown, location, size)
        else:
            self._chunked(desc, shown, location, size)
        self.event(desc, shown, "Pushed")

    def _monolithic(self, desc: Descriptor, shown: bool, location: str, size: int) -> None:
        def body() -> Iterator[bytes]:
            sent = 0
            last = 0.0
            with self.store.open_blob(desc.digest) as stream:
                while chunk := stream.read(CHUNK):
                    if self.abort.is_set():
                        raise PushAborted(f"push aborted during blob {desc.digest}")
                    sent += len(chunk)
                    now = time.monotonic()
                    if now - last >= PROGRESS_INTERVAL or sent >= size:
                        last = now
                        self.event(desc, shown, "Pushing", sent)
                    yield chunk

        response = self.client.request(
            "PUT",
            with_query(location, digest=str(desc.digest)),
            scopes=[self.scope],
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=body,
            ok=(201,),
            what=f"upload of blob {desc.digest}",
        )
        response.body(1 << 16)

    def _chunked(self, desc: Descriptor, shown: bool, location: str, size: int) -> None:
        offset = 0
        with self.store.open_blob(desc.digest) as stream:
            while offset < size:
                if self.abort.is_set():
                    raise PushAborted(f"push aborted during blob {desc.digest}")
                chunk = stream.read(self.chunk_size)
                if not chunk:
                    break
                response = self.client.request(
                    "PATCH",
                    location,
                    scopes=[self.scope],
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(len(chunk)),
                        "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                    },
                    body=chunk,
                    ok=(202,),
                    what=f"chunk {offset} of blob {desc.digest}",
                )
                response.body(1 << 16)
                location = absolute_location(response)
                offset += len(chunk)
                self.event(desc, shown, "Pushing", offset)
        response = self.client.request(
            "PUT",
            with_query(location, digest=str(desc.digest)),
            scopes=[self.scope],
            ok=(201,),
            what=f"upload of blob {desc.digest}",
        )
        response.body(1 << 16)
