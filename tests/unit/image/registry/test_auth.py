"""WWW-Authenticate parsing, the credentials file, and the Authenticator's token cache."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from cove.errors import CredentialsError, RegistryUnauthorized
from cove.image.registry.auth import (
    DOCKER_HUB_KEY,
    Authenticator,
    Credentials,
    CredentialStore,
    config_dir,
    parse_challenges,
)


def test_bearer_challenge_with_commas_in_quotes() -> None:
    header = ('Bearer realm="https://auth.example/token",service="registry.example",'
              'scope="repository:a/b:pull,push"')  # fmt: skip
    (challenge,) = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example/token"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }


def test_several_challenges_and_headers() -> None:
    found = parse_challenges(
        ['Basic realm="x", Bearer realm="https://t/token" , error="invalid_token"',
         "Negotiate abc=="]
    )  # fmt: skip
    assert [c.scheme for c in found] == ["basic", "bearer", "negotiate"]
    assert found[0].params == {"realm": "x"}
    assert found[1].params == {"realm": "https://t/token", "error": "invalid_token"}


def test_challenge_escapes_case_and_garbage() -> None:
    (challenge,) = parse_challenges('BEARER Realm="a\\"b", Service=plain')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": 'a"b', "service": "plain"}
    assert parse_challenges("") == []
    assert parse_challenges("=, ,") == []
    (unterminated,) = parse_challenges('Bearer realm="open')
    assert unterminated.realm == "open"


def test_credential_store_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"credHelpers": {"x": "y"}, "auths": {}}))
    store = CredentialStore(path)
    assert store.get("127.0.0.1:5000") is None
    store.set("127.0.0.1:5000", Credentials("alice", "pa:ss"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["credHelpers"] == {"x": "y"}
    raw = document["auths"]["127.0.0.1:5000"]["auth"]
    assert base64.b64decode(raw) == b"alice:pa:ss"
    assert store.get("127.0.0.1:5000") == Credentials("alice", "pa:ss")
    assert store.remove("127.0.0.1:5000") is True
    assert store.remove("127.0.0.1:5000") is False
    assert store.get("127.0.0.1:5000") is None


def test_credential_store_docker_hub_and_url_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    auth = base64.b64encode(b"bob:pw").decode()
    path.write_text(json.dumps({"auths": {
        DOCKER_HUB_KEY: {"auth": auth},
        "https://reg.example:5000/v2/": {"username": "carol", "password": "pw2"},
    }}))  # fmt: skip
    store = CredentialStore(path)
    assert store.get("docker.io") == Credentials("bob", "pw")
    assert store.get("reg.example:5000") == Credentials("carol", "pw2")
    store.set("docker.io", Credentials("dave", "x"))
    assert DOCKER_HUB_KEY in json.loads(path.read_text())["auths"]


def test_credential_store_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(CredentialsError, match="not valid JSON"):
        CredentialStore(path).get("x")
    path.write_text(json.dumps({"auths": {"x": {"auth": base64.b64encode(b"nocolon").decode()}}}))
    with pytest.raises(CredentialsError, match="base64"):
        CredentialStore(path).get("x")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    assert config_dir() == tmp_path / "dc"
    assert CredentialStore().path == tmp_path / "dc" / "config.json"


class FakeTokenServer:
    def __init__(self, status: int = 200, lifetime: int = 300) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self.status = status
        self.lifetime = lifetime

    def __call__(
        self, method: str, url: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        self.calls.append((url, headers))
        body = json.dumps({"token": f"t{len(self.calls)}", "expires_in": self.lifetime})
        return self.status, {}, body.encode()


CHALLENGE = 'Bearer realm="http://127.0.0.1:1/token",service="svc"'


def test_token_flow_caches_per_scope_until_expiry() -> None:
    now = [1000.0]
    fetch = FakeTokenServer(lifetime=60)
    auth = Authenticator("r", Credentials("u", "p"), fetch, clock=lambda: now[0])
    pull = ["repository:a:pull"]
    assert auth.header(pull) is None
    assert auth.authorize([CHALLENGE], pull) is True
    url, headers = fetch.calls[0]
    assert url == "http://127.0.0.1:1/token?service=svc&scope=repository%3Aa%3Apull"
    assert headers["Authorization"] == Credentials("u", "p").basic()
    assert auth.header(pull) == "Bearer t1"
    assert auth.header(["repository:a:pull,push"]) is None  # another scope, another token
    now[0] += 55  # within the renewal margin: the token counts as expired
    assert auth.header(pull) is None


def test_challenge_scope_is_requested_too() -> None:
    fetch = FakeTokenServer()
    auth = Authenticator("r", None, fetch)
    auth.authorize([CHALLENGE + ',scope="repository:b:push"'], ["repository:a:pull"])
    url, headers = fetch.calls[0]
    assert "scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apush" in url
    assert "Authorization" not in headers


def test_token_server_refuses() -> None:
    auth = Authenticator("r", Credentials("u", "bad"), FakeTokenServer(status=401))
    with pytest.raises(RegistryUnauthorized, match="credentials were refused"):
        auth.authorize([CHALLENGE], [])


def test_basic_challenge() -> None:
    auth = Authenticator("r", Credentials("u", "p"), FakeTokenServer())
    assert auth.authorize(['Basic realm="x"']) is True
    assert auth.header() == Credentials("u", "p").basic()
    assert auth.authorize(['Basic realm="x"'], had_authorization=True) is False
    anonymous = Authenticator("r", None, FakeTokenServer())
    assert anonymous.authorize(['Basic realm="x"']) is False
    assert anonymous.authorize(['Digest realm="x"']) is False
