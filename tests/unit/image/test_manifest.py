"""cove.image.manifest: typed OCI/Docker documents and platform selection."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from cove.errors import InvalidArgument, InvalidManifest, NoMatchingPlatform
from cove.image import manifest as m
from cove.image.digest import Digest


def d(n: int) -> str:
    """A distinct, valid sha256 digest string."""
    return "sha256:" + f"{n:x}".rjust(64, "0")


def pretty(doc: dict[str, Any]) -> bytes:
    """As registries serve documents: indented, keys in their own order."""
    return json.dumps(doc, indent=3).encode()


# A Docker manifest list, shaped like an official multi-arch image's.
DOCKER_LIST = {
    "manifests": [
        {"digest": d(1), "mediaType": m.DOCKER_MANIFEST, "size": 528,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"digest": d(2), "mediaType": m.DOCKER_MANIFEST, "size": 528,
         "platform": {"architecture": "arm", "os": "linux", "variant": "v5"}},
        {"digest": d(3), "mediaType": m.DOCKER_MANIFEST, "size": 528,
         "platform": {"architecture": "arm", "os": "linux", "variant": "v6"}},
        {"digest": d(4), "mediaType": m.DOCKER_MANIFEST, "size": 528,
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
        {"digest": d(5), "mediaType": m.DOCKER_MANIFEST, "size": 528,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"digest": d(6), "mediaType": m.DOCKER_MANIFEST, "size": 528,
         "platform": {"architecture": "386", "os": "linux"}},
        {"digest": d(7), "mediaType": m.DOCKER_MANIFEST, "size": 528,
         "platform": {"architecture": "ppc64le", "os": "linux"}},
        {"digest": d(8), "mediaType": m.DOCKER_MANIFEST, "size": 528,
         "platform": {"architecture": "s390x", "os": "linux"}},
    ],
    "mediaType": m.DOCKER_MANIFEST_LIST,
    "schemaVersion": 2,
}  # fmt: skip

# An OCI index as BuildKit pushes it: images plus attestation manifests.
OCI_INDEX_DOC = {
    "schemaVersion": 2,
    "mediaType": m.OCI_INDEX,
    "manifests": [
        {"mediaType": m.OCI_MANIFEST, "digest": d(11), "size": 1000,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": m.OCI_MANIFEST, "digest": d(12), "size": 1000,
         "platform": {"architecture": "arm64", "os": "linux"}},
        {"mediaType": m.OCI_MANIFEST, "digest": d(13), "size": 566,
         "platform": {"architecture": "unknown", "os": "unknown"},
         "annotations": {"vnd.docker.reference.digest": d(11),
                         "vnd.docker.reference.type": "attestation-manifest"}},
    ],
    "annotations": {"org.opencontainers.image.created": "2024-05-01T10:00:00Z"},
}  # fmt: skip

DOCKER_MANIFEST_DOC = {
    "schemaVersion": 2,
    "mediaType": m.DOCKER_MANIFEST,
    "config": {"mediaType": m.DOCKER_CONFIG, "size": 1457, "digest": d(20)},
    "layers": [
        {"mediaType": m.DOCKER_LAYER_GZIP, "size": 2152262, "digest": d(21)},
        {"mediaType": m.DOCKER_LAYER_GZIP, "size": 32, "digest": d(22)},
    ],
}

OCI_MANIFEST_DOC = {
    "schemaVersion": 2,
    "mediaType": m.OCI_MANIFEST,
    "config": {"mediaType": m.OCI_CONFIG, "digest": d(30), "size": 600},
    "layers": [
        {"mediaType": m.OCI_LAYER_GZIP, "digest": d(31), "size": 3000,
         "annotations": {"org.opencontainers.image.title": "rootfs.tar.gz"}},
        {"mediaType": m.OCI_LAYER_ZSTD, "digest": d(32), "size": 100,
         "urls": ["https://example.com/layer"]},
    ],
    "annotations": {"org.opencontainers.image.source": "https://example.com/src"},
    "subject": {"mediaType": m.OCI_MANIFEST, "digest": d(33), "size": 10},
}  # fmt: skip

# A Docker-built config: Go's nanosecond timestamps, nulls, members we do not model.
DOCKER_CONFIG_DOC = {
    "architecture": "amd64",
    "config": {
        "Hostname": "",
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "Entrypoint": ["/docker-entrypoint.sh"],
        "WorkingDir": "",
        "User": "",
        "ExposedPorts": {"80/tcp": {}},
        "Volumes": None,
        "Labels": {"maintainer": "NGINX Docker Maintainers"},
        "StopSignal": "SIGQUIT",
        "OnBuild": None,
        "ArgsEscaped": True,
    },
    "created": "2024-04-16T22:24:16.123456789Z",
    "history": [
        {"created": "2024-04-10T01:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
        {"created": "2024-04-10T01:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"bash\"]",
         "empty_layer": True},
        {"created": "2024-04-16T22:24:16Z", "created_by": "COPY entry /", "comment": "buildkit"},
    ],
    "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": [d(41), d(42)]},
    "docker_version": "20.10.23",
    "container_config": {"Hostname": "abc"},
}  # fmt: skip


# --- parsing ---------------------------------------------------------------------------------


def test_docker_manifest_list_parses_and_keeps_raw_bytes() -> None:
    raw = pretty(DOCKER_LIST)
    index = m.parse_manifest(raw)
    assert isinstance(index, m.ImageIndex)
    assert index.is_docker
    assert index.raw == raw
    assert index.digest == Digest.of(raw)
    assert len(index.manifests) == 8
    first = index.manifests[0]
    assert first.digest == Digest.parse(d(1))
    assert first.platform == m.Platform("linux", "amd64")
    assert [str(p) for p in index.platforms()][:3] == [
        "linux/amd64",
        "linux/arm/v5",
        "linux/arm/v6",
    ]


def test_oci_index_keeps_annotations() -> None:
    index = m.parse_index(pretty(OCI_INDEX_DOC), m.OCI_INDEX)
    assert not index.is_docker
    assert index.annotations[m.ANNOTATION_CREATED] == "2024-05-01T10:00:00Z"
    assert index.manifests[2].annotations["vnd.docker.reference.type"] == "attestation-manifest"


def test_docker_schema2_manifest() -> None:
    manifest = m.parse_image_manifest(pretty(DOCKER_MANIFEST_DOC))
    assert manifest.is_docker
    assert manifest.config.media_type == m.DOCKER_CONFIG
    assert manifest.config.digest == Digest.parse(d(20))
    assert [layer.size for layer in manifest.layers] == [2152262, 32]
    assert manifest.descriptor() == m.Descriptor(
        m.DOCKER_MANIFEST, Digest.of(manifest.raw), len(manifest.raw)
    )


def test_oci_manifest_with_subject_urls_and_annotations() -> None:
    manifest = m.parse_image_manifest(pretty(OCI_MANIFEST_DOC), m.OCI_MANIFEST)
    assert not manifest.is_docker
    assert manifest.subject is not None
    assert manifest.subject.digest == Digest.parse(d(33))
    assert manifest.layers[0].annotations == {"org.opencontainers.image.title": "rootfs.tar.gz"}
    assert manifest.layers[1].urls == ("https://example.com/layer",)
    assert m.layer_compression(manifest.layers[1].media_type) == "zstd"


def test_media_type_from_content_type_and_from_shape() -> None:
    bare_manifest = {k: v for k, v in OCI_MANIFEST_DOC.items() if k != "mediaType"}
    bare_index = {k: v for k, v in OCI_INDEX_DOC.items() if k != "mediaType"}
    parsed = m.parse_manifest(pretty(bare_manifest))
    assert isinstance(parsed, m.ImageManifest)
    assert parsed.media_type == m.OCI_MANIFEST
    assert isinstance(m.parse_manifest(pretty(bare_index)), m.ImageIndex)
    # Content-Type parameters and generic types are ignored.
    served = m.parse_manifest(pretty(bare_manifest), f"{m.OCI_MANIFEST}; charset=utf-8")
    assert served.media_type == m.OCI_MANIFEST
    assert m.parse_manifest(pretty(DOCKER_LIST), "application/json").media_type == (
        m.DOCKER_MANIFEST_LIST
    )


def test_content_type_must_agree_with_declared_media_type() -> None:
    with pytest.raises(InvalidManifest, match=r"served as .*manifest\.v1.* declares mediaType"):
        m.parse_manifest(pretty(DOCKER_LIST), m.OCI_MANIFEST)


def test_expecting_the_wrong_kind_is_an_error() -> None:
    with pytest.raises(InvalidManifest, match="expected an image manifest, got an index"):
        m.parse_image_manifest(pretty(DOCKER_LIST))
    with pytest.raises(InvalidManifest, match="expected an index, got an image manifest"):
        m.parse_index(pretty(OCI_MANIFEST_DOC))


def test_schema1_is_refused() -> None:
    schema1 = {"schemaVersion": 1, "name": "library/busybox", "tag": "latest", "fsLayers": []}
    with pytest.raises(InvalidManifest, match="schema1 manifests are not supported"):
        m.parse_manifest(pretty(schema1))
    with pytest.raises(InvalidManifest, match="schema1"):
        m.parse_manifest(b"{}", m.DOCKER_SCHEMA1_SIGNED)


OCI_RE, DOCKER_RE = re.escape(m.OCI_MANIFEST), re.escape(m.DOCKER_MANIFEST)
LIST_RE = re.escape(m.DOCKER_MANIFEST_LIST)


def _broken(doc: dict[str, Any], path: list[str | int], value: Any) -> bytes:
    copy = json.loads(json.dumps(doc))
    node = copy
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return json.dumps(copy).encode()


@pytest.mark.parametrize(
    ("doc", "path", "value", "message"),
    [
        (OCI_MANIFEST_DOC, ["layers", 1, "digest"], "sha256:nothex",
         rf"invalid manifest \({OCI_RE}\): layers\[1\]\.digest: .*lower-case"),
        (OCI_MANIFEST_DOC, ["layers", 0, "size"], -1,
         r"layers\[0\]\.size: size must not be negative"),
        (OCI_MANIFEST_DOC, ["layers", 0, "size"], "12",
         r"layers\[0\]\.size: expected an integer, got a string"),
        (OCI_MANIFEST_DOC, ["config"], KeyError, r"config: required field is missing"),
        (OCI_MANIFEST_DOC, ["config", "mediaType"], KeyError,
         r"config\.mediaType: required field is missing"),
        (OCI_MANIFEST_DOC, ["schemaVersion"], 3, r"schemaVersion: unsupported schemaVersion 3"),
        (DOCKER_MANIFEST_DOC, ["layers"], {}, rf"\({DOCKER_RE}\): layers: expected an array"),
        (DOCKER_LIST, ["manifests", 4, "platform", "os"], KeyError,
         rf"invalid index \({LIST_RE}\): manifests\[4\]\.platform\.os: required"),
        (OCI_INDEX_DOC, ["manifests", 0, "annotations"], {"k": 1},
         r"manifests\[0\]\.annotations\.k: expected a string"),
    ],
)  # fmt: skip
def test_errors_name_media_type_and_field(
    doc: dict[str, Any], path: list[str | int], value: Any, message: str
) -> None:
    with pytest.raises(InvalidManifest, match=message):
        m.parse_manifest(_broken(doc, path, value))


def test_garbage_is_invalid() -> None:
    with pytest.raises(InvalidManifest, match="not JSON"):
        m.parse_manifest(b"\x00not json")
    with pytest.raises(InvalidManifest, match="expected a JSON object"):
        m.parse_manifest(b"[]")
    with pytest.raises(InvalidManifest, match="cannot tell the document type"):
        m.parse_manifest(b'{"schemaVersion": 2}')
    with pytest.raises(InvalidManifest, match="unsupported manifest media type"):
        m.parse_manifest(b'{"schemaVersion": 2, "mediaType": "application/vnd.foo+json"}')


def test_round_trip_through_canonical_json() -> None:
    for doc in (DOCKER_LIST, OCI_INDEX_DOC, DOCKER_MANIFEST_DOC, OCI_MANIFEST_DOC):
        parsed = m.parse_manifest(pretty(doc))
        canonical = parsed.to_json()
        assert json.loads(canonical) == json.loads(json.dumps(doc))
        again = m.parse_manifest(canonical)
        assert again == parsed
        assert again.digest == Digest.of(canonical) != parsed.digest  # digests follow bytes
        assert b" " not in canonical.replace(b"daemon off", b"")


def test_unknown_members_survive_a_round_trip() -> None:
    doc: dict[str, Any] = dict(OCI_MANIFEST_DOC, futureField={"x": 1})
    doc["config"] = dict(doc["config"], data="e30=")
    parsed = m.parse_image_manifest(pretty(doc))
    assert parsed.extra == {"futureField": {"x": 1}}
    assert parsed.config.extra == {"data": "e30="}
    assert json.loads(parsed.to_json()) == json.loads(json.dumps(doc))


def test_manifest_built_in_memory_digests_its_canonical_form() -> None:
    config = m.Descriptor(m.OCI_CONFIG, Digest.parse(d(1)), 2)
    manifest = m.ImageManifest(m.OCI_MANIFEST, config, ())
    assert manifest.content() == manifest.to_json()
    assert manifest.digest == Digest.of(manifest.to_json())


# --- image config ----------------------------------------------------------------------------


def test_docker_image_config() -> None:
    raw = pretty(DOCKER_CONFIG_DOC)
    config = m.parse_config(raw, m.DOCKER_CONFIG)
    assert config.digest == Digest.of(raw)
    assert config.platform == m.Platform("linux", "amd64")
    assert config.diff_ids == (Digest.parse(d(41)), Digest.parse(d(42)))
    run = config.config
    assert run.cmd == ("nginx", "-g", "daemon off;")
    assert run.entrypoint == ("/docker-entrypoint.sh",)
    assert run.exposed_ports == ("80/tcp",)
    assert run.volumes == ()
    assert run.labels == {"maintainer": "NGINX Docker Maintainers"}
    assert run.stop_signal == "SIGQUIT"
    assert run.env[0].startswith("PATH=")
    assert run.extra == {"Hostname": "", "OnBuild": None, "ArgsEscaped": True}
    assert [h.empty_layer for h in config.history] == [False, True, False]
    assert config.history[2].comment == "buildkit"
    assert config.extra == {"docker_version": "20.10.23", "container_config": {"Hostname": "abc"}}
    assert config.created_time() == datetime(2024, 4, 16, 22, 24, 16, 123456, tzinfo=UTC)


def test_config_round_trip_keeps_what_matters() -> None:
    config = m.parse_config(pretty(DOCKER_CONFIG_DOC))
    again = m.parse_config(config.to_json())
    assert again == config
    out = json.loads(config.to_json())
    assert out["config"]["ExposedPorts"] == {"80/tcp": {}}
    assert out["rootfs"] == {"type": "layers", "diff_ids": [d(41), d(42)]}
    assert "Volumes" not in out["config"]


def test_absent_cmd_differs_from_empty_cmd() -> None:
    base = {"architecture": "arm64", "variant": "v8", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}}  # fmt: skip
    assert m.parse_config(json.dumps(base).encode()).config.cmd is None
    with_empty = dict(base, config={"Cmd": [], "Entrypoint": None})
    parsed = m.parse_config(json.dumps(with_empty).encode())
    assert parsed.config.cmd == ()
    assert parsed.config.entrypoint is None
    assert json.loads(parsed.to_json())["config"] == {"Cmd": []}
    assert parsed.platform == m.Platform("linux", "arm64", "v8")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"os": None}, r"os: required field is missing"),
        ({"rootfs": {"type": "zfs", "diff_ids": []}}, r"rootfs\.type: unsupported rootfs type"),
        ({"rootfs": {"type": "layers", "diff_ids": ["md5:00"]}}, r"rootfs\.diff_ids\[0\]"),
        ({"config": {"Env": "PATH=/bin"}}, r"config\.Env: expected an array"),
        ({"history": [{"empty_layer": "yes"}]}, r"history\[0\]\.empty_layer: expected true"),
    ],
)
def test_config_errors_name_the_field(change: dict[str, Any], message: str) -> None:
    doc = dict(DOCKER_CONFIG_DOC, **change)
    with pytest.raises(InvalidManifest, match=rf"invalid image config \(.*\): {message}"):
        m.parse_config(json.dumps(doc).encode())


def test_check_config_matches() -> None:
    config = m.parse_config(pretty(DOCKER_CONFIG_DOC))
    layers = tuple(m.Descriptor(m.DOCKER_LAYER_GZIP, Digest.parse(d(n)), 1) for n in (1, 2))
    good = m.ImageManifest(
        m.DOCKER_MANIFEST, m.Descriptor(m.DOCKER_CONFIG, config.digest, 1), layers
    )
    m.check_config_matches(good, config)
    with pytest.raises(InvalidManifest, match=r"has 1 layers but config .* lists 2 diff_ids"):
        m.check_config_matches(m.ImageManifest(good.media_type, good.config, layers[:1]), config)
    wrong = m.ImageManifest(
        good.media_type, m.Descriptor(m.DOCKER_CONFIG, Digest.parse(d(9)), 1), layers
    )
    with pytest.raises(InvalidManifest, match="names config"):
        m.check_config_matches(wrong, config)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-04-16T22:24:16Z", datetime(2024, 4, 16, 22, 24, 16, tzinfo=UTC)),
        ("2024-04-16T22:24:16.5Z", datetime(2024, 4, 16, 22, 24, 16, 500000, tzinfo=UTC)),
        ("2024-04-17T00:24:16+02:00", datetime(2024, 4, 16, 22, 24, 16, tzinfo=UTC)),
        ("", None),
        ("yesterday", None),
    ],
)
def test_parse_time(text: str, expected: datetime | None) -> None:
    assert m.parse_time(text) == expected


def test_layer_compression() -> None:
    assert m.layer_compression(m.OCI_LAYER) == ""
    assert m.layer_compression(m.DOCKER_LAYER_GZIP) == "gzip"
    assert m.layer_compression(m.DOCKER_FOREIGN_LAYER_GZIP) == "gzip"
    with pytest.raises(InvalidManifest, match="unsupported layer media type 'text/plain'"):
        m.layer_compression("text/plain")


# --- platforms -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64"),
        ("linux/arm64", "linux/arm64/v8"),
        ("linux/aarch64", "linux/arm64/v8"),
        ("linux/arm64/v8", "linux/arm64/v8"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("Linux/AMD64", "linux/amd64"),
        ("linux/i386", "linux/386"),
        ("arm64", "linux/arm64/v8"),
    ],
)
def test_parse_platform_normalises(text: str, expected: str) -> None:
    assert str(m.parse_platform(text)) == expected


@pytest.mark.parametrize("text", ["", "/", "linux/", "a/b/c/d", "linux//v7"])
def test_parse_platform_rejects_malformed(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid platform"):
        m.parse_platform(text)


def test_host_platform_is_normalised() -> None:
    host = m.host_platform()
    assert host == host.normalized()
    assert host.os == "linux"
    assert str(m.parse_platform("linux")) == str(host)


def test_platform_matches() -> None:
    assert m.Platform("linux", "arm64").matches(m.Platform("linux", "arm64", "v8"))
    assert m.Platform("linux", "amd64", "v2").matches(m.Platform("linux", "amd64"))
    assert not m.Platform("linux", "arm", "v6").matches(m.Platform("linux", "arm", "v7"))
    assert not m.Platform("windows", "amd64").matches(m.Platform("linux", "amd64"))


@pytest.mark.parametrize(
    ("want", "chosen"),
    [
        ("linux/amd64", d(1)),
        ("linux/arm64/v8", d(5)),
        ("linux/arm64", d(5)),
        ("linux/arm/v7", d(4)),
        ("linux/arm/v6", d(3)),
        ("linux/arm/v5", d(2)),
        ("linux/386", d(6)),
        ("linux/s390x", d(8)),
    ],
)
def test_select_from_a_docker_manifest_list(want: str, chosen: str) -> None:
    index = m.parse_index(pretty(DOCKER_LIST))
    assert str(index.select(want).digest) == chosen
    assert str(m.select_manifest(index, m.parse_platform(want)).digest) == chosen


def test_default_selection_is_the_host() -> None:
    index = m.parse_index(pretty(DOCKER_LIST))
    expected = m.select_manifest(index, m.host_platform())
    assert m.select_manifest(index) == expected


def test_arm64_entry_without_variant_matches_v8() -> None:
    index = m.parse_index(pretty(OCI_INDEX_DOC))
    assert str(index.select("linux/arm64/v8").digest) == d(12)
    assert str(index.select("linux/amd64").digest) == d(11)


def test_arm_falls_back_to_older_variants_but_prefers_exact() -> None:
    only_v6 = m.ImageIndex(m.OCI_INDEX, tuple(
        m.Descriptor(m.OCI_MANIFEST, Digest.parse(d(n)), 1, platform=m.Platform("linux", "arm", v))
        for n, v in ((1, "v5"), (2, "v6"))
    ))  # fmt: skip
    assert str(only_v6.select("linux/arm/v7").digest) == d(2)
    assert str(only_v6.select("linux/arm/v5").digest) == d(1)
    # ... but never to a newer one.
    only_v7 = m.ImageIndex(m.OCI_INDEX, (
        m.Descriptor(m.OCI_MANIFEST, Digest.parse(d(3)), 1, platform=m.Platform("linux", "arm")),
    ))  # fmt: skip
    with pytest.raises(NoMatchingPlatform, match=r"linux/arm/v6 .* offers: linux/arm"):
        only_v7.select("linux/arm/v6")
    # 32-bit arm is a last resort for an arm64 host.
    assert str(only_v6.select("linux/arm64").digest) == d(2)


def test_amd64_ignores_variant_and_prefers_the_baseline() -> None:
    index = m.ImageIndex(m.OCI_INDEX, (
        m.Descriptor(m.OCI_MANIFEST, Digest.parse(d(1)), 1,
                     platform=m.Platform("linux", "amd64", "v3")),
        m.Descriptor(m.OCI_MANIFEST, Digest.parse(d(2)), 1, platform=m.Platform("linux", "amd64")),
    ))  # fmt: skip
    assert str(index.select("linux/amd64").digest) == d(2)
    assert str(index.select("linux/amd64/v3").digest) == d(2)
    only_v3 = m.ImageIndex(m.OCI_INDEX, index.manifests[:1])
    assert str(only_v3.select("linux/amd64").digest) == d(1)


def test_no_match_lists_what_the_index_offers() -> None:
    index = m.parse_index(pretty(OCI_INDEX_DOC))
    with pytest.raises(NoMatchingPlatform) as caught:
        index.select("linux/riscv64")
    message = str(caught.value)
    assert "no manifest for platform linux/riscv64" in message
    assert str(index.digest) in message
    assert "linux/amd64, linux/arm64, unknown/unknown" in message
    with pytest.raises(NoMatchingPlatform, match="unknown/unknown"):
        index.select("windows/amd64")
