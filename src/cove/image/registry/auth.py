"""Registry authentication: WWW-Authenticate challenges, the Bearer token flow, Basic auth,
and credentials kept in a Docker-compatible `config.json`.

The token flow (distribution's token authentication, what Docker Hub does):

    GET /v2/<repo>/...                          -> 401, WWW-Authenticate: Bearer
                                                   realm="https://auth/token",
                                                   service="registry", scope="repository:r:pull"
    GET <realm>?service=registry&scope=...      -> {"token": "...", "expires_in": 300}
        (with Basic credentials when we know some; anonymously otherwise)
    GET /v2/<repo>/... Authorization: Bearer <token>

Tokens are cached per scope set until shortly before they expire. A registry that answers
with `WWW-Authenticate: Basic realm=...` gets the credentials on every request instead.

Credentials: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`, in Docker's shape
`{"auths": {"host[:port]": {"auth": base64("user:password")}}}`; Docker Hub's key is
`https://index.docker.io/v1/`. The file is written atomically with mode 0600 and keeps
every member cove does not know (credHelpers, proxies, ...).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable

from cove.errors import CredentialsError, RegistryError, RegistryUnauthorized
from cove.image.records import FrozenRecord, Record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: seconds a token is assumed valid when the server does not say (distribution: 60)
DEFAULT_TOKEN_LIFETIME = 60
#: renew this many seconds before a token expires
TOKEN_MARGIN = 10


# --- challenges ----------------------------------------------------------------------------


class Challenge(FrozenRecord):
    """One challenge of a WWW-Authenticate header: scheme (lower-case) and parameters
    (keys lower-case)."""

    __slots__ = ("params", "scheme")
    _field_order = ("scheme", "params")
    scheme: str
    params: dict[str, str]

    def __init__(self, scheme: str, params: dict[str, str] | None = None) -> None:
        self._init(scheme, {} if params is None else params)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenges(headers: str | Iterable[str]) -> list[Challenge]:
    """Parse WWW-Authenticate header values (RFC 7235): `Scheme k=v, k="v, w", Other ...`.

    Several challenges may share one header, separated by commas; quoted values may
    contain commas and backslash escapes. Malformed parts are skipped, never raised.
    """
    values = [headers] if isinstance(headers, str) else list(headers)
    challenges: list[Challenge] = []
    for value in values:
        challenges.extend(_parse_one_header(value))
    return challenges


def _parse_one_header(text: str) -> list[Challenge]:
    out: list[Challenge] = []
    pos, end = 0, len(text)
    current: tuple[str, dict[str, str]] | None = None

    def skip(chars: str) -> None:
        nonlocal pos
        while pos < end and text[pos] in chars:
            pos += 1

    def token() -> str:
        nonlocal pos
        start = pos
        while pos < end and text[pos] not in ' \t,="':
            pos += 1
        return text[start:pos]

    while pos < end:
        skip(" \t,")
        if pos >= end:
            break
        word = token()
        if not word:
            pos += 1  # a stray character: skip it
            continue
        skip(" \t")
        if pos < end and text[pos] == "=" and current is not None:
            pos += 1
            skip(" \t")
            if pos < end and text[pos] == '"':
                pos += 1
                chars: list[str] = []
                while pos < end and text[pos] != '"':
                    if text[pos] == "\\" and pos + 1 < end:
                        pos += 1
                    chars.append(text[pos])
                    pos += 1
                pos += 1  # the closing quote
                value = "".join(chars)
            else:
                value = token()
            current[1][word.lower()] = value
        elif pos < end and text[pos] == "=":
            pos += 1  # a parameter before any scheme, or token68 padding: ignore it
            token()
        else:
            # A new scheme; a bare token68 after a scheme (Negotiate abc==) also lands here.
            if current is not None:
                out.append(Challenge(current[0], current[1]))
            current = (word.lower(), {})
    if current is not None:
        out.append(Challenge(current[0], current[1]))
    return out


# --- credentials ---------------------------------------------------------------------------


class Credentials(FrozenRecord):
    __slots__ = ("password", "username")
    _field_order = ("username", "password")
    username: str
    password: str

    def __init__(self, username: str, password: str) -> None:
        self._init(username, password)

    def basic(self) -> str:
        import base64

        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def config_dir() -> Path:
    """`$DOCKER_CONFIG`, else `~/.docker` (as the docker CLI)."""
    from pathlib import Path

    return Path(_config_dir())


def _config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")


def config_key(registry: str) -> str:
    """The `auths` key docker uses for a registry host."""
    return DOCKER_HUB_KEY if registry in DOCKER_HUB_NAMES else registry


def _strip_key(key: str) -> str:
    """`https://host:5000/v1/` -> `host:5000` (docker accepts URLs as auths keys)."""
    for prefix in ("https://", "http://"):
        key = key.removeprefix(prefix)
    return key.split("/", 1)[0]


class CredentialStore:
    """The `auths` section of a Docker-compatible config.json."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = path if path is not None else os.path.join(_config_dir(), "config.json")
        self._lock = threading.Lock()

    # `path` is a Path; kept as a string until asked for, so that a pull, which only reads
    # the file, does without pathlib until the image store loads it.
    @property
    def path(self) -> Path:
        from pathlib import Path

        return Path(self._path)

    @path.setter
    def path(self, value: str | os.PathLike[str]) -> None:
        self._path = os.fspath(value)

    def _load(self) -> dict[str, Any]:
        try:
            with open(self._path, encoding="utf-8") as file:
                text = file.read()
        except FileNotFoundError:
            return {}
        except OSError as err:
            raise CredentialsError(f"cannot read {self.path}: {err.strerror}") from None
        if not text.strip():
            return {}
        import json

        try:
            document = json.loads(text)
        except ValueError as err:
            raise CredentialsError(f"{self.path} is not valid JSON: {err}") from None
        if not isinstance(document, dict):
            raise CredentialsError(f"{self.path}: expected a JSON object")
        return document

    def get(self, registry: str) -> Credentials | None:
        """The credentials for `registry` (host[:port]), or None."""
        auths = self._load().get("auths")
        if not isinstance(auths, dict):
            return None
        want = config_key(registry)
        entry = auths.get(want)
        if entry is None:
            host = _strip_key(want) if want != DOCKER_HUB_KEY else want
            for key, value in auths.items():
                stripped = _strip_key(key)
                if stripped == host or (want == DOCKER_HUB_KEY and stripped in DOCKER_HUB_NAMES):
                    entry = value
                    break
        if not isinstance(entry, dict):
            return None
        return _decode_entry(entry, self)

    def set(self, registry: str, credentials: Credentials) -> None:
        """Store credentials for `registry` (atomic write, mode 0600)."""
        import base64

        with self._lock:
            document = self._load()
            auths = document.get("auths")
            if not isinstance(auths, dict):
                auths = {}
            raw = f"{credentials.username}:{credentials.password}".encode()
            auths[config_key(registry)] = {"auth": base64.b64encode(raw).decode("ascii")}
            document["auths"] = auths
            self._write(document)

    def remove(self, registry: str) -> bool:
        """Forget `registry`'s credentials; False when there were none."""
        with self._lock:
            document = self._load()
            auths = document.get("auths")
            if not isinstance(auths, dict):
                return False
            want = config_key(registry)
            keys = [
                key
                for key in auths
                if key == want or (want != DOCKER_HUB_KEY and _strip_key(key) == want)
            ]
            if not keys:
                return False
            for key in keys:
                del auths[key]
            self._write(document)
            return True

    def _write(self, document: dict[str, Any]) -> None:
        import json

        data = (json.dumps(document, indent="\t") + "\n").encode()
        folder = self.path.parent
        tmp = folder / f".{self.path.name}.{os.getpid()}.tmp"
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, self.path)
        except OSError as err:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise CredentialsError(f"cannot write {self.path}: {err.strerror}") from None


def _decode_entry(entry: dict[str, Any], where: CredentialStore) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        import base64
        import binascii

        try:
            text = base64.b64decode(auth, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise CredentialsError(
                f"{where.path}: an auths entry is not base64(user:password)"
            ) from None
        user, sep, password = text.partition(":")
        if not sep:
            raise CredentialsError(f"{where.path}: an auths entry is not base64(user:password)")
        return Credentials(user, password)
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str) and name:
        return Credentials(name, secret)
    return None


# --- the authenticator ---------------------------------------------------------------------

#: (method, absolute url, headers) -> (status, headers as dict of lower-case keys, body)
Fetch = Callable[[str, str, dict[str, str]], tuple[int, dict[str, str], bytes]]


class _Token(Record):
    __slots__ = ("expires", "value")
    _field_order = ("value", "expires")

    def __init__(self, value: str, expires: float) -> None:
        self.value = value
        self.expires = expires


class Authenticator:
    """Authorization headers for one registry: learns its challenge from a 401, fetches
    and caches bearer tokens per scope, or sends Basic credentials. Safe for threads."""

    def __init__(
        self,
        registry: str,
        credentials: Credentials | None,
        fetch: Fetch,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}

    @property
    def challenge(self) -> Challenge | None:
        return self._challenge

    def header(self, scopes: Iterable[str] = ()) -> str | None:
        """The Authorization value for a request needing `scopes`, when we have one."""
        key = _scope_key(scopes)
        with self._lock:
            challenge = self._challenge
            if challenge is None:
                return None
            if challenge.scheme == "basic":
                return None if self.credentials is None else self.credentials.basic()
            if challenge.scheme != "bearer":
                return None
            token = self._tokens.get(key)
            if token is not None and token.expires > self._clock():
                return "Bearer " + token.value
        return None

    def authorize(
        self,
        www_authenticate: Iterable[str],
        scopes: Iterable[str] = (),
        *,
        had_authorization: bool = False,
    ) -> bool:
        """Answer a 401: remember the challenge, fetch a token for `scopes` when it is a
        Bearer one. True when the request is worth retrying (for Basic: when the refused
        request did not carry the credentials yet)."""
        challenges = parse_challenges(www_authenticate)
        chosen = next((c for c in challenges if c.scheme == "bearer"), None)
        chosen = chosen or next((c for c in challenges if c.scheme == "basic"), None)
        if chosen is None:
            return False
        scope_list = sorted(set(scopes))
        with self._lock:
            self._challenge = chosen
        if chosen.scheme == "basic":
            return self.credentials is not None and not had_authorization
        # A challenge may name the scope it wants (pull,push for example): ask for it too.
        wanted = chosen.params.get("scope")
        if wanted:
            scope_list = sorted(set(scope_list) | set(wanted.split(" ")))
        token = self._request_token(chosen, scope_list)
        with self._lock:
            self._tokens[_scope_key(scopes)] = token
        return True

    def login(self) -> None:
        """Check the credentials against the challenge seen at /v2/ (token for no scope, or
        nothing to do for Basic: the caller retries /v2/)."""
        challenge = self._challenge
        if challenge is not None and challenge.scheme == "bearer":
            self._request_token(challenge, [], account=True)

    def _request_token(
        self, challenge: Challenge, scopes: list[str], *, account: bool = False
    ) -> _Token:
        from urllib.parse import urlencode

        realm = challenge.realm
        if not realm:
            raise RegistryError(f"registry {self.registry}: bearer challenge without a realm")
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        query.extend(("scope", scope) for scope in scopes)
        if account and self.credentials is not None:
            query.append(("account", self.credentials.username))
        url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        headers = {"Accept": "application/json"}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic()
        status, _, body = self._fetch("GET", url, headers)
        if status in (401, 403):
            who = "the credentials were refused" if self.credentials else "login required"
            raise RegistryUnauthorized(
                f"registry {self.registry}: token server {realm} answered {status}: {who}",
                status,
                "UNAUTHORIZED",
            )
        if status != 200:
            raise RegistryError(
                f"registry {self.registry}: token server {realm} answered {status}", status
            )
        import json

        try:
            document = json.loads(body)
        except ValueError:
            raise RegistryError(
                f"registry {self.registry}: token server {realm} sent malformed JSON"
            ) from None
        value = document.get("token") or document.get("access_token") if document else None
        if not isinstance(value, str) or not value:
            raise RegistryError(f"registry {self.registry}: token server {realm} sent no token")
        lifetime = document.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        return _Token(value, self._clock() + max(lifetime - TOKEN_MARGIN, 1))


def _scope_key(scopes: Iterable[str]) -> str:
    return " ".join(sorted(set(scopes)))


def repository_scope(repository: str, *actions: str) -> str:
    """`repository:test/bb:pull,push` (actions default to pull)."""
    return f"repository:{repository}:{','.join(actions or ('pull',))}"
