"""Pull and push against the in-process fake registry (127.0.0.1 only): token flow,
Basic auth, Range resume, digest mismatch cleanup, platform selection, uploads, mounts."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cove.errors import DigestMismatch, NoMatchingPlatform, NoSuchImage, RegistryUnauthorized
from cove.image.manifest import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    canonical_json,
)
from cove.image.registry.auth import Credentials, CredentialStore
from cove.image.registry.client import RegistryClient
from cove.image.registry.progress import ProgressEvent
from cove.image.registry.pull import pull
from cove.image.registry.push import push
from cove.image.store import ImageStore
from tests.unit.image.registry.fake_registry import FakeRegistry, State


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def publish(state: State, repo: str, tag: str, layers: list[bytes], arch: str = "amd64") -> str:
    """Put an image (config + layers + manifest) into the fake registry; its manifest digest."""
    descriptors = []
    for data in layers:
        descriptors.append({"mediaType": OCI_LAYER_GZIP, "digest": state.add_blob(repo, data),
                            "size": len(data)})  # fmt: skip
    config = canonical_json({
        "architecture": arch, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [_digest(d + b"!") for d in layers]},
    })  # fmt: skip
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": state.add_blob(repo, config),
                   "size": len(config)},
        "layers": descriptors,
    })  # fmt: skip
    state.manifests[(repo, tag)] = (manifest, OCI_MANIFEST)
    state.manifests[(repo, _digest(manifest))] = (manifest, OCI_MANIFEST)
    return _digest(manifest)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ImageStore]:
    with ImageStore(tmp_path / "images") as opened:
        yield opened


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))
    return folder


def test_anonymous_pull_and_up_to_date(store: ImageStore, no_config: Path) -> None:
    with FakeRegistry() as reg:
        digest = publish(reg.state, "lib/app", "1", [b"layer-a" * 1000, b"layer-b"])
        events: list[ProgressEvent] = []
        result = pull(store, f"{reg.address}/lib/app:1", progress=events.append)
        assert result.downloaded and str(result.digest) == digest
        assert str(result.image.manifest_digest) == digest
        assert [str(n) for n in result.image.names] == [f"{reg.address}/lib/app:1"]
        statuses = [(e.id, e.status) for e in events if e.id and e.status != "Downloading"]
        assert statuses.count((result.image.manifest_digest.short(), "Pull complete")) == 0
        assert sum(1 for _, s in statuses if s == "Pull complete") == 2
        assert events[-1].status == f"Status: Downloaded newer image for {reg.address}/lib/app:1"
        again = pull(store, f"{reg.address}/lib/app:1")
        assert not again.downloaded
        blob_gets = [r for r in reg.state.requests if r[0] == "GET" and "/blobs/" in r[1]]
        assert len(blob_gets) == 3  # config + 2 layers, once


def test_bearer_token_flow_retries_and_caches(store: ImageStore, no_config: Path) -> None:
    with FakeRegistry(auth="bearer") as reg:
        publish(reg.state, "lib/app", "1", [b"a", b"b", b"c"])
        with RegistryClient(reg.address) as client:
            pull(store, f"{reg.address}/lib/app:1", client=client, workers=1)
            # one token for the pull scope, fetched after the first 401, then reused
            assert len(reg.state.token_requests) == 1
            query = reg.state.token_requests[0]
            assert query["service"] == ["fake-registry"]
            assert query["scope"] == ["repository:lib/app:pull"]
        first, token, retry = reg.state.requests[:3]
        assert "Authorization" not in first[2] and token[1].startswith("/token?")
        assert retry[1] == first[1] and retry[2]["Authorization"].startswith("Bearer ")
        assert all("Authorization" in r[2] for r in reg.state.requests[3:])


def test_token_server_with_credentials(store: ImageStore, no_config: Path) -> None:
    with FakeRegistry(auth="bearer", users={"alice": "pw"}) as reg:
        publish(reg.state, "priv/app", "1", [b"x"])
        ref = f"{reg.address}/priv/app:1"
        with pytest.raises(RegistryUnauthorized, match="login required"):
            pull(store, ref)
        CredentialStore().set(reg.address, Credentials("alice", "pw"))
        assert pull(store, ref).downloaded
        with RegistryClient(reg.address, credentials=Credentials("alice", "nope")) as client:
            with pytest.raises(RegistryUnauthorized, match="refused"):
                client.ping()
        with RegistryClient(reg.address, credentials=Credentials("alice", "pw")) as client:
            client.ping()
        assert reg.state.token_requests[-1]["account"] == ["alice"]


def test_basic_auth_registry(store: ImageStore, no_config: Path) -> None:
    with FakeRegistry(auth="basic", users={"bob": "pw"}) as reg:
        publish(reg.state, "b/app", "1", [b"x", b"y"])
        ref = f"{reg.address}/b/app:1"
        with pytest.raises(RegistryUnauthorized):
            pull(store, ref)
        creds = Credentials("bob", "pw")
        with RegistryClient(reg.address, credentials=creds) as client:
            client.ping()
            assert pull(store, ref, client=client).downloaded
        with RegistryClient(reg.address, credentials=Credentials("bob", "x")) as client:
            with pytest.raises(RegistryUnauthorized):
                client.ping()


@pytest.mark.parametrize("honour_range", [True, False])
def test_broken_download_resumes(store: ImageStore, no_config: Path, honour_range: bool) -> None:
    with FakeRegistry() as reg:
        big = os.urandom(3 << 20)
        publish(reg.state, "r/app", "1", [big])
        layer = _digest(big)
        reg.state.break_after[layer] = 1 << 20
        reg.state.honour_range = honour_range
        result = pull(store, f"{reg.address}/r/app:1")
        assert store.read_blob(layer) == big
        assert result.downloaded
        gets = [r for r in reg.state.requests if r[0] == "GET" and r[1].endswith(layer)]
        assert len(gets) == 2
        assert "Range" not in gets[0][2]
        assert gets[1][2]["Range"].startswith("bytes=")
        assert int(gets[1][2]["Range"][6:-1]) > 0


def test_digest_mismatch_leaves_nothing(store: ImageStore, no_config: Path) -> None:
    with FakeRegistry() as reg:
        good, bad = b"good" * 5000, b"bad" * 5000
        publish(reg.state, "c/app", "1", [good, bad])
        reg.state.corrupt.add(_digest(bad))
        with pytest.raises(DigestMismatch):
            pull(store, f"{reg.address}/c/app:1", workers=1)
        assert not store.has_blob(_digest(bad))
        assert list(store.tmp_dir.iterdir()) == []
        with pytest.raises(NoSuchImage):
            store.resolve(f"{reg.address}/c/app:1")
        assert store.images() == []


def test_manifest_digest_pinned(store: ImageStore, no_config: Path) -> None:
    with FakeRegistry() as reg:
        digest = publish(reg.state, "d/app", "1", [b"z"])
        result = pull(store, f"{reg.address}/d/app@{digest}")
        assert result.image.names == ()
        other = "sha256:" + "0" * 64
        reg.state.manifests[("d/app", other)] = reg.state.manifests[("d/app", "1")]
        with pytest.raises(DigestMismatch):
            pull(store, f"{reg.address}/d/app@{other}")


def test_index_platform_selection(store: ImageStore, no_config: Path) -> None:
    with FakeRegistry() as reg:
        state = reg.state
        amd = publish(state, "m/app", "amd", [b"amd64 layer"], "amd64")
        arm = publish(state, "m/app", "arm", [b"arm64 layer"], "arm64")
        entries = []
        for digest, arch, variant in ((amd, "amd64", ""), (arm, "arm64", "v8")):
            data = state.manifests[("m/app", digest)][0]
            platform = {
                "os": "linux",
                "architecture": arch,
                **({"variant": variant} if variant else {}),
            }
            entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(data),
                            "platform": platform})  # fmt: skip
        index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        state.manifests[("m/app", "multi")] = (index, OCI_INDEX)
        result = pull(store, f"{reg.address}/m/app:multi", platform="linux/arm64")
        assert str(result.image.manifest_digest) == arm
        assert str(result.image.index_digest) == _digest(index)
        assert store.has_blob(_digest(index))
        assert not store.has_blob(_digest(b"amd64 layer"))
        with pytest.raises(NoMatchingPlatform):
            pull(store, f"{reg.address}/m/app:multi", platform="linux/s390x")


def test_push_monolithic_chunked_mount_and_existing(store: ImageStore, no_config: Path) -> None:
    with FakeRegistry(auth="bearer") as reg:
        small, big = b"s" * 1000, os.urandom(300_000)
        publish(reg.state, "src/app", "1", [small, big])
        pulled = pull(store, f"{reg.address}/src/app:1")
        events: list[ProgressEvent] = []
        result = push(store, f"{reg.address}/dst/app:2", source=f"{reg.address}/src/app:1",
                      progress=events.append)  # fmt: skip
        assert str(result.digest) == str(pulled.image.manifest_digest)
        assert any(e.status == "Mounted from src/app" for e in events)
        assert reg.state.manifests[("dst/app", "2")][0] == store.read_blob(result.digest)
    # a registry the store knows nothing about: real uploads, the big blob in chunks
    with FakeRegistry(auth="bearer") as other:
        target = f"{other.address}/fresh/app:1"
        push(store, target, source=str(pulled.image.id), chunk_size=64_000)
        methods = [r[0] for r in other.state.requests if "/fresh/app/blobs/uploads/" in r[1]]
        assert methods.count("PATCH") == 5  # 300000 bytes in 64000-byte chunks
        assert methods.count("PUT") == 3  # config and small layer whole, big layer's end
        assert other.state.blobs[_digest(big)] == big
        assert _digest(big) in other.state.repo_blobs["fresh/app"]
        assert other.state.manifests[("fresh/app", "1")][1] == OCI_MANIFEST
        events.clear()
        push(store, target, source=str(pulled.image.id), progress=events.append)
        assert [e.status for e in events if e.id and e.status != "Preparing"] == [
            "Layer already exists", "Layer already exists"
        ]  # fmt: skip


def test_not_found_errors(store: ImageStore, no_config: Path) -> None:
    from cove.errors import RegistryNotFound

    with FakeRegistry() as reg:
        with pytest.raises(RegistryNotFound, match="manifest unknown"):
            pull(store, f"{reg.address}/no/such:1")


def test_unreachable_registry(store: ImageStore, no_config: Path) -> None:
    from cove.errors import RegistryUnreachable

    with FakeRegistry() as reg:
        address = reg.address
    with pytest.raises(RegistryUnreachable, match="cannot connect"):
        pull(store, f"{address}/x/y:1")


def test_index_document_parses(store: ImageStore) -> None:
    # manifests published by `publish` are valid for the store
    doc = json.loads(canonical_json({"a": 1}))
    assert doc == {"a": 1}


def test_tls_verify_false_falls_back_to_http(no_config: Path) -> None:
    from cove.errors import RegistryUnreachable

    with FakeRegistry() as reg:
        with RegistryClient(reg.address, tls_verify=False) as client:
            assert client.scheme == "https"
            client.ping()
            assert client.scheme == "http"
        with RegistryClient(reg.address, tls_verify=True) as client:
            with pytest.raises(RegistryUnreachable, match="TLS"):
                client.ping()


def test_https_with_self_signed_certificate(tmp_path: Path, no_config: Path) -> None:
    import shutil
    import ssl
    import subprocess

    from cove.errors import RegistryUnreachable

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    with FakeRegistry() as reg:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        reg.server.socket = context.wrap_socket(reg.server.socket, server_side=True)
        with RegistryClient(reg.address, tls_verify=True) as client:
            with pytest.raises(RegistryUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
                client.ping()
        with RegistryClient(reg.address, tls_verify=False) as client:
            client.ping()
            assert client.scheme == "https"
