"""X-Registry-Auth: the credentials a client sends with pull and push, base64url-encoded
JSON `{"username", "password", "serveraddress", "identitytoken", "auth"}` (padding optional;
`auth` is base64 "user:password", as in config.json). An empty or undecodable header
means no credentials, as dockerd takes it."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cove.image.registry.auth import Credentials

HEADER = "X-Registry-Auth"


@dataclass(frozen=True)
class AuthConfig:
    username: str = ""
    password: str = ""
    server: str = ""
    identity_token: str = ""

    def credentials(self) -> Credentials | None:
        """What the registry client sends: username and password. (An identity token is
        an OAuth2 refresh token, which cove's registry client does not use: ignored.)"""
        if self.username or self.password:
            return Credentials(self.username, self.password)
        return None


def decode_auth(text: str) -> AuthConfig:
    text = text.strip()
    if not text:
        return AuthConfig()
    document: Any = None
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            raw = decode(text + "=" * (-len(text) % 4))
            document = json.loads(raw)
            break
        except (binascii.Error, ValueError):
            continue
    if not isinstance(document, dict):
        return AuthConfig()
    return auth_config(document)


def auth_config(document: dict[str, Any]) -> AuthConfig:
    """An AuthConfig from its JSON (the body of POST /auth, a decoded header)."""
    username = _text(document, "username")
    password = _text(document, "password")
    encoded = _text(document, "auth")
    if encoded and not username:
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            pass
    return AuthConfig(
        username=username,
        password=password,
        server=_text(document, "serveraddress"),
        identity_token=_text(document, "identitytoken"),
    )


def _text(document: dict[str, Any], key: str) -> str:
    for name, value in document.items():
        if name.lower() == key and isinstance(value, str):
            return value
    return ""


def request_auth(request: web.Request) -> AuthConfig:
    return decode_auth(request.headers.get(HEADER, ""))
