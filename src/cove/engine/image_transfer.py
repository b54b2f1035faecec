"""Images in and out of the engine for callers other than the CLI verbs (the API server):
pull and push with progress events and per-request credentials, save to any writable
stream, load and import from any readable one, registry login, and search (a registry's
catalog).

Errors come before any progress event when they can: a pull resolves the reference (the
manifest, through its index) before its first event, a push finds the local image before
its first; so a caller that answers the first event with a 200 answers those errors with a
status of their own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from cove.engine import events
from cove.errors import InvalidArgument, NoSuchImage
from cove.image.reference import Reference, parse_reference
from cove.image.registry.progress import Progress, no_progress

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cove.image.registry.auth import Credentials
    from cove.image.registry.pull import PullResult
    from cove.image.registry.push import PushResult
    from cove.image.store import ImageStore


def _images_dir(root: str) -> str:
    return os.path.join(root, "images")


def _store(root: str) -> ImageStore:
    from cove.image.store import ImageStore

    return ImageStore(_images_dir(root))


def pull(
    root: str,
    reference: str,
    *,
    platform: str | None = None,
    credentials: Credentials | None = None,
    progress: Progress = no_progress,
) -> PullResult:
    """Pull `reference` into the engine's store. The first event comes once the registry
    has answered with the image's manifest (a missing repository or tag, refused
    credentials, an unreachable registry are raised before it). Without `credentials`
    the engine host's config.json is asked (as `cove pull`)."""
    from cove.image.platform import parse_platform
    from cove.image.registry.client import RegistryClient
    from cove.image.registry.pull import pull as pull_into
    from cove.image.registry.pull_resolve import resolve

    ref = parse_reference(reference)
    wanted = parse_platform(platform) if platform else None
    with RegistryClient(ref.registry, credentials=credentials) as client:
        found = resolve(client, ref, wanted)
        with _store(root) as store:
            result = pull_into(store, ref, client=client, platform=wanted, progress=progress,
                               resolved=lambda: found)  # fmt: skip
    events.emit_image(root, "pull", ref.familiar(), ref.familiar_name())
    return result


def registry_data(reference: str, credentials: Credentials | None = None) -> dict[str, Any]:
    """What the registry says of `reference` without pulling it (the API's
    /distribution/NAME/json): the descriptor of the document the reference names (an index
    or a manifest) and the platforms it offers (an index's entries; a manifest's from its
    image config)."""
    from cove.image.manifest import ImageIndex, parse_config
    from cove.image.registry.client import RegistryClient
    from cove.image.registry.pull_resolve import fetch_manifest

    ref = parse_reference(reference)
    with RegistryClient(ref.registry, credentials=credentials) as client:
        data, digest, top = fetch_manifest(client, ref, str(ref.digest or ref.tag))
        if isinstance(top, ImageIndex):
            platforms = [m.platform for m in top.manifests if m.platform is not None]
        else:
            with client.open_blob(ref.repository, top.config.digest) as blob:
                config = parse_config(blob.body(limit=1 << 22), top.config.media_type)
            platforms = [config.platform]
    return {
        "Descriptor": {"mediaType": top.media_type, "digest": str(digest), "size": len(data)},
        "Platforms": [p.to_json() for p in platforms],
    }


def push_targets(root: str, name: str, tag: str = "") -> list[Reference]:
    """What `docker push NAME[:TAG]` pushes: that tag, or every tag of the repository
    (NoSuchImage when there is none)."""
    if tag:
        ref = parse_reference(f"{name}:{tag}" if "@" not in tag else f"{name}@{tag}")
        if ref.digest is not None:
            raise InvalidArgument(f"cannot push a digest reference: {name}@{tag}")
        with _store(root) as store:
            store.resolve(str(ref))
        return [ref]
    wanted = parse_reference(name, default_tag=False)
    if wanted.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference: {name}")
    if wanted.tag is not None and ":" in name.rsplit("/", 1)[-1]:
        with _store(root) as store:
            store.resolve(str(wanted))
        return [wanted]
    with _store(root) as store:
        found = {n for record in store.images() for n in record.names
                 if n.name == wanted.name and n.tag is not None}  # fmt: skip
    if not found:
        raise NoSuchImage(f"an image does not exist locally with the tag: {name}")
    return sorted(found, key=lambda n: n.tag or "")


def push(
    root: str,
    targets: Sequence[Reference],
    *,
    credentials: Credentials | None = None,
    progress: Progress = no_progress,
) -> list[PushResult]:
    """Push each of `targets` (from `push_targets`) to its registry."""
    from cove.image.registry.client import RegistryClient
    from cove.image.registry.push import push as push_from

    results = []
    with _store(root) as store:
        for ref in targets:
            with RegistryClient(ref.registry, credentials=credentials) as client:
                results.append(push_from(store, ref, client=client, progress=progress))
            events.emit_image(root, "push", ref.familiar(), ref.familiar_name())
    return results


def check_save(root: str, terms: Iterable[str]) -> None:
    """Raise what `save` would for `terms` (NoSuchImage...) before anything is written."""
    from cove.image.archive import select_images

    names = list(terms)
    if not names:
        raise InvalidArgument("nothing to save: no image given")
    with _store(root) as store:
        select_images(store, names)


def save(root: str, terms: Iterable[str], out: BinaryIO | IO[bytes]) -> None:
    """`docker save TERM...`: a docker-archive tar written to `out`."""
    from cove.image.archive import DOCKER_ARCHIVE, select_images
    from cove.image.archive import save as save_to

    with _store(root) as store:
        images = select_images(store, list(terms))
        save_to(store, images, out, DOCKER_ARCHIVE)  # type: ignore[arg-type]
    for image_id in dict.fromkeys(str(record.id) for record, _ in images):
        events.emit_image(root, "save", image_id)


def load(root: str, stream: BinaryIO | IO[bytes]) -> list[str]:
    """`docker load`: a docker or OCI archive (maybe compressed) read from `stream`;
    returns what docker prints (`Loaded image: NAME`, `Loaded image ID: ID`)."""
    from cove.image.archive import load as load_from

    with _store(root) as store:
        loaded = load_from(store, stream)
    for image in loaded:
        events.emit_image(root, "load", str(image.record.id))
    return [line for image in loaded for line in image.lines()]


def import_image(
    root: str,
    stream: BinaryIO | IO[bytes],
    reference: str | None = None,
    changes: Sequence[str] = (),
    message: str = "",
) -> str:
    """`docker import -`: a root filesystem tarball as a one-layer image; its id."""
    from cove.engine.image_import import import_tarball

    with _store(root) as store:
        record = import_tarball(store, stream, reference or None, tuple(changes), message)  # type: ignore[arg-type]
    events.emit_image(root, "import", str(record.id))
    return str(record.id)


def server_name(text: str) -> str:
    """`https://host:5000/v2/` or `host:5000` -> `host:5000`; Docker Hub's names (and none)
    -> docker.io."""
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    host = text.split("/", 1)[0]
    if not host or host in ("index.docker.io", "registry-1.docker.io"):
        return "docker.io"
    return host


def login(server: str, username: str, password: str) -> str:
    """Check credentials against the registry's /v2/ (through its token server when it
    has one); returns the registry's name. RegistryUnauthorized when refused."""
    from cove.image.registry.auth import Credentials
    from cove.image.registry.client import RegistryClient

    if not username:
        raise InvalidArgument("the username is empty")
    registry = server_name(server)
    credentials = Credentials(username, password)
    with RegistryClient(registry, credentials=credentials) as client:
        client.ping()
    return registry


@dataclass(frozen=True)
class SearchResult:
    name: str
    description: str = ""
    star_count: int = 0
    is_official: bool = False
    is_automated: bool = False


CATALOG_PAGE = 1000


def search(
    term: str, limit: int = 25, credentials: Credentials | None = None
) -> list[SearchResult]:
    """Search a registry named in `term` (`host:port/words`, `localhost/words`) through its
    catalog (/v2/_catalog): the repositories whose name contains the words. Without a
    registry host there is no index to ask (Docker Hub's search is not part of the
    registry API): nothing is found."""
    registry, _, words = term.partition("/")
    if not _registry_host(registry) or not registry:
        return []
    from cove.image.registry.client import RegistryClient

    with RegistryClient(registry, credentials=credentials) as client:
        response = client.request(
            "GET", f"/v2/_catalog?n={CATALOG_PAGE}", scopes=["registry:catalog:*"],
            what=f"catalog of {registry}",
        )  # fmt: skip
        import json

        try:
            document: Any = json.loads(response.body())
        except ValueError:
            document = {}
    repositories = document.get("repositories") if isinstance(document, dict) else None
    names = [r for r in repositories or [] if isinstance(r, str) and words.lower() in r.lower()]
    return [SearchResult(f"{registry}/{name}") for name in sorted(names)[: max(limit, 0)]]


def _registry_host(text: str) -> bool:
    """Whether the first part of a name is a registry host (as docker decides)."""
    return text == "localhost" or "." in text or ":" in text or bool(_IPV6.match(text))


_IPV6 = re.compile(r"^\[[0-9a-fA-F:]+\](:[0-9]+)?$")
