"""The registry client: the OCI distribution API over HTTP(S), token and Basic auth with
Docker-compatible credentials, pull into and push from the image store, progress events.

Modules: `client` (RegistryClient: transport, auth retry, redirects, distribution errors),
`auth` (WWW-Authenticate parsing, Authenticator, CredentialStore for config.json), `pull`
(with `pull_resolve`, `pull_blobs` and `pull_early`), `push`, `progress` (ProgressEvent,
ProgressPrinter). Only loopback registries are spoken to in plain HTTP unless
`tls_verify=False` says otherwise.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cove.image.registry.auth import Credentials, CredentialStore
    from cove.image.registry.client import RegistryClient
    from cove.image.registry.progress import ProgressEvent, ProgressPrinter
    from cove.image.registry.pull import PullResult, pull
    from cove.image.registry.push import PushResult, push

# name -> module: imported on first use, so that `cove pull` never loads push (and its
# thread pool) and `cove push` never loads pull.
_LAZY = {
    "CredentialStore": "auth",
    "Credentials": "auth",
    "ProgressEvent": "progress",
    "ProgressPrinter": "progress",
    "PullResult": "pull",
    "PushResult": "push",
    "RegistryClient": "client",
    "pull": "pull",
    "push": "push",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "CredentialStore",
    "Credentials",
    "ProgressEvent",
    "ProgressPrinter",
    "PullResult",
    "PushResult",
    "RegistryClient",
    "pull",
    "push",
]
