"""Pure translation in the image routes: query parameters, X-Registry-Auth, references
joined from fromImage/tag and repo/tag, commit bodies as changes, the inspect document's
types, and the progress stream's coalescing."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cove.api.auth import decode_auth
from cove.api.errors import BadParameter
from cove.api.images import config_changes, docker_inspect, rfc3339, tag_target
from cove.api.images_transfer import _coalesce, error_line, pull_reference
from cove.api.query import parse_filters, parse_timestamp, unix_time
from cove.engine.image_import import apply_changes


def test_filters_take_lists_maps_and_nothing() -> None:
    assert parse_filters("") == {}
    assert parse_filters("null") == {}
    assert parse_filters('{"label": ["a=b", "c"], "dangling": ["true"]}') == {
        "label": ["a=b", "c"], "dangling": ["true"]}  # fmt: skip
    # old clients send {value: true} maps
    assert parse_filters('{"reference": {"bb": true, "off": false}}') == {"reference": ["bb"]}
    for bad in ("[1]", "{not json", '{"label": 3}'):
        with pytest.raises(BadParameter):
            parse_filters(bad)


def test_timestamps_as_dockerd_takes_them() -> None:
    now = 1_700_000_000.0
    assert parse_timestamp("10m", now) == now - 600
    assert parse_timestamp("1h30m", now) == now - 5400
    assert parse_timestamp("1500ms", now) == now - 1.5
    assert parse_timestamp("1600000000", now) == 1_600_000_000
    assert parse_timestamp("1600000000.25", now) == 1_600_000_000.25
    assert parse_timestamp("2020-09-13T12:26:40Z", now) == 1_600_000_000
    with pytest.raises(BadParameter):
        parse_timestamp("yesterday", now)
    assert unix_time("2020-09-13T12:26:40.123456789Z") == 1_600_000_000
    assert unix_time("") == 0 and unix_time("garbage") == 0


def _header(document: dict[str, str], alphabet: str = "url", padded: bool = False) -> str:
    raw = json.dumps(document).encode()
    encoded = base64.urlsafe_b64encode(raw) if alphabet == "url" else base64.b64encode(raw)
    text = encoded.decode()
    return text if padded else text.rstrip("=")


def test_registry_auth_header_decoding() -> None:
    doc = {"username": "alice", "password": "s3cr?t>>", "serveraddress": "127.0.0.1:5000"}
    for alphabet in ("url", "std"):
        for padded in (True, False):
            config = decode_auth(_header(doc, alphabet, padded))
            assert (config.username, config.password, config.server) == (
                "alice", "s3cr?t>>", "127.0.0.1:5000")  # fmt: skip
            credentials = config.credentials()
            assert credentials is not None and credentials.username == "alice"
    # config.json's "auth" form, and nothing at all
    packed = base64.b64encode(b"bob:pw:with:colons").decode()
    config = decode_auth(_header({"auth": packed}))
    assert (config.username, config.password) == ("bob", "pw:with:colons")
    for empty in ("", "e30", "not base64 at all!", _header({})):
        assert decode_auth(empty).credentials() is None
    # an identity token alone is not a password
    assert decode_auth(_header({"identitytoken": "tok"})).credentials() is None


def test_pull_reference_joins_image_and_tag() -> None:
    assert pull_reference("busybox", "") == "busybox"
    assert pull_reference("busybox", "1.36") == "busybox:1.36"
    assert pull_reference("127.0.0.1:5000/team/app", "2") == "127.0.0.1:5000/team/app:2"
    assert pull_reference("127.0.0.1:5000/app:old", "new") == "127.0.0.1:5000/app:new"
    digest = "sha256:" + "a" * 64
    assert pull_reference("127.0.0.1:5000/app", digest) == f"127.0.0.1:5000/app@{digest}"


def test_tag_target() -> None:
    assert tag_target("team/app", "") == "team/app:latest"
    assert tag_target("team/app", "2") == "team/app:2"
    assert tag_target("127.0.0.1:5000/app", "") == "127.0.0.1:5000/app:latest"
    assert tag_target("team/app:3", "") == "team/app:3"
    for repo, tag in (("", "1"), ("team/app:3", "4"), ("app@sha256:" + "b" * 64, "")):
        with pytest.raises(BadParameter):
            tag_target(repo, tag)


def test_commit_config_becomes_changes_the_engine_applies() -> None:
    config: dict[str, Any] = {
        "Cmd": ["sh", "-c", "echo 'a b'"], "Entrypoint": None,
        "Env": ["PATH=/bin", "SPACED=one two"], "Labels": {"k": "v w"},
        "ExposedPorts": {"80/tcp": {}}, "Volumes": {"/data": {}}, "User": "nobody",
        "WorkingDir": "/srv", "StopSignal": "SIGINT",
    }  # fmt: skip
    changes = config_changes(config)
    execution = apply_changes({}, tuple(changes))
    assert execution["Cmd"] == ["sh", "-c", "echo 'a b'"]
    assert execution["Env"] == ["PATH=/bin", "SPACED=one two"]
    assert execution["Labels"] == {"k": "v w"}
    assert execution["ExposedPorts"] == {"80/tcp": {}}
    assert execution["Volumes"] == {"/data": {}}
    assert (execution["User"], execution["WorkingDir"], execution["StopSignal"]) == (
        "nobody", "/srv", "SIGINT")  # fmt: skip
    assert "Entrypoint" not in execution
    assert config_changes(None) == [] and config_changes({}) == []
    with pytest.raises(BadParameter):
        config_changes(["not", "a", "config"])


def test_inspect_document_has_dockerds_types() -> None:
    engine = {"Id": "sha256:" + "c" * 64, "Variant": None, "Author": None, "Size": 5,
              "Metadata": {"LastTagTime": 1_600_000_000.5},
              "Created": "2020-09-13T12:26:40Z"}  # fmt: skip
    out = docker_inspect(engine, (1, 44))
    assert out["Metadata"]["LastTagTime"] == "2020-09-13T12:26:40.500000Z"
    assert "Variant" not in out and out["Author"] == ""
    assert "VirtualSize" not in out and out["Container"] == ""
    old = docker_inspect(engine, (1, 41))
    assert old["VirtualSize"] == 5
    assert "Container" not in docker_inspect(engine, (1, 45))
    assert rfc3339(None) == "0001-01-01T00:00:00Z"
    moment = datetime.fromisoformat(rfc3339(1.0).replace("Z", "+00:00"))
    assert moment == datetime.fromtimestamp(1.0, UTC)


def test_progress_coalescing_keeps_order_and_last_counts() -> None:
    def down(layer: str, current: int) -> tuple[str, dict[str, object]]:
        return ("event", {"status": "Downloading", "id": layer,
                          "progressDetail": {"current": current, "total": 9}})  # fmt: skip

    complete = ("event", {"status": "Download complete", "id": "a"})
    batch = [down("a", 1), down("a", 2), down("b", 1), down("a", 3), complete, ("done", None)]
    assert _coalesce(batch) == [down("a", 2), down("b", 1), down("a", 3), complete,
                                ("done", None)]  # fmt: skip
    assert error_line("boom") == {"errorDetail": {"message": "boom"}, "error": "boom"}
