"""An HTTP client for one registry (the OCI distribution API), on our own small HTTP/1.1
connection (`cove.image.registry.transport`): http.client would load the email package and
ssl, a good part of a short pull's time.

Transport: a registry on a loopback address (`localhost`, `127.0.0.0/8`, `::1`) is spoken
to in plain HTTP, as docker does; any other over HTTPS with certificate checks.
`tls_verify=False` turns the checks off and falls back to plain HTTP when the server does
not speak TLS (docker's "insecure registry"); `tls_verify=True` insists on HTTPS even for
loopback. Docker Hub's name `docker.io` is served at `registry-1.docker.io`.

Every request names the token scopes it needs; a 401 is answered by the `Authenticator`
(token or Basic) and the request retried once. Redirects of GET/HEAD are followed (blob
storage often lives elsewhere), without the Authorization header when the host changes.
Connections are kept alive, one per thread and host: the pull and push threads share a
client.
"""

from __future__ import annotations

import sys
import threading

from cove.errors import (
    RegistryError,
    RegistryNotFound,
    RegistryUnauthorized,
    RegistryUnreachable,
)
from cove.image.digest import Digest
from cove.image.media_types import ACCEPT
from cove.image.registry.auth import Authenticator, Credentials, CredentialStore
from cove.image.registry.transport import (
    Connection,
    Disconnected,
    Headers,
    ProtocolError,
    RawResponse,
    split_netloc,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Iterable, Iterator
    from typing import BinaryIO

    Body = bytes | Callable[[], BinaryIO | Iterable[bytes]]

USER_AGENT = "cove/0.1.0"
DOCKER_HUB_HOST = "registry-1.docker.io"
DEFAULT_TIMEOUT = 60.0
MAX_REDIRECTS = 5
READ_CHUNK = 1 << 16
#: how much of an error body we read to explain a failure
ERROR_BODY_LIMIT = 1 << 16

_TRANSIENT = (Disconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def is_loopback(registry: str) -> bool:
    """True for `localhost[:port]`, `127.x.y.z[:port]`, `[::1][:port]`."""
    host = _host_of(registry)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    if ":" not in host:  # no IPv6 address: a dotted quad, as ipaddress reads one, or a name
        octets = host.split(".")
        if len(octets) != 4 or not all(_is_octet(octet) for octet in octets):
            return False
        return octets[0] == "127"
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_octet(text: str) -> bool:
    """A decimal 0-255 without leading zeros (ipaddress refuses those)."""
    return (
        0 < len(text) <= 3
        and all(c in "0123456789" for c in text)
        and (text == "0" or text[0] != "0")
        and int(text) <= 255
    )


def _host_of(netloc: str) -> str:
    if netloc.startswith("["):
        return netloc[1 : netloc.find("]")]
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc


class Response:
    """A response whose body has not been read yet (close it, or read it all)."""

    __slots__ = ("_raw", "_release", "headers", "reason", "status", "url")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers,
        url: str,
        raw: RawResponse,
        release: Callable[[bool], None],
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.url = url
        self._raw = raw
        self._release = release

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default) or default

    @property
    def finished(self) -> bool:
        """True once the body was read to its end."""
        return self._raw.done

    def read(self, amount: int = READ_CHUNK) -> bytes:
        return self._raw.read(amount)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Up to len(buffer) body bytes into `buffer` (0 at the body's end)."""
        return self._raw.readinto(buffer)

    def chunks(self, size: int = READ_CHUNK) -> Iterator[bytes]:
        buffer = bytearray(size)
        view = memoryview(buffer)
        while count := self._raw.readinto(view):
            yield bytes(view[:count])

    def body(self, limit: int | None = None) -> bytes:
        try:
            return self._raw.read(limit)
        finally:
            self.close()

    def close(self) -> None:
        """Release the connection (kept alive when the body was read to its end)."""
        raw = self._raw
        finished = raw.reusable
        raw.close()
        self._release(finished)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RegistryClient:
    """Requests to one registry host; `registry` is `host[:port]` as in a reference."""

    def __init__(
        self,
        registry: str,
        *,
        tls_verify: bool | None = None,
        credentials: Credentials | None = None,
        credential_store: CredentialStore | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        user_agent: str = USER_AGENT,
    ) -> None:
        self.registry = registry
        self.host = DOCKER_HUB_HOST if registry in ("docker.io", "index.docker.io") else registry
        self.tls_verify = tls_verify
        if tls_verify is None:
            self.scheme = "http" if is_loopback(registry) else "https"
        else:
            self.scheme = "https"
        self._http_fallback = tls_verify is False
        self.timeout = timeout
        self.user_agent = user_agent
        if credentials is None:
            credentials = (credential_store or CredentialStore()).get(registry)
        self.auth = Authenticator(registry, credentials, self._fetch_absolute)
        self._local = threading.local()
        self._connections_lock = threading.Lock()
        self._all_connections: list[Connection] = []
        self._context: ssl.SSLContext | None = None

    # --- lifetime --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._all_connections:
                conn.close()
            self._all_connections.clear()
        self._local = threading.local()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        scopes: Iterable[str] = (),
        headers: dict[str, str] | None = None,
        body: Body | None = None,
        ok: Iterable[int] = (200,),
        what: str = "",
        sent: Callable[[], None] | None = None,
    ) -> Response:
        """Send a request (path relative to the registry, or an absolute URL from a
        Location header) with authentication; raise for a status not in `ok`. `sent()` is
        called each time a request is out (again after a 401 or a redirect)."""
        scope_list = list(scopes)
        url = _urljoin(self.base_url + "/", path)
        for attempt in range(2):
            request_headers = dict(headers or {})
            authorization = self.auth.header(scope_list)
            if authorization is not None:
                request_headers["Authorization"] = authorization
            response = self._send_following(method, url, request_headers, body, sent)
            if response.status != 401 or attempt == 1:
                break
            challenges = response.headers.get_all("WWW-Authenticate") or []
            response.body(ERROR_BODY_LIMIT)
            if not challenges or not self.auth.authorize(
                challenges, scope_list, had_authorization=authorization is not None
            ):
                break
        wanted = set(ok)
        if response.status not in wanted:
            raise self._error(response, what or f"{method} {path}")
        return response

    def ping(self) -> None:
        """GET /v2/ with authentication (checks the registry and our credentials)."""
        response = self._send_following("GET", self.base_url + "/v2/", {}, None)
        if response.status == 401:
            challenges = response.headers.get_all("WWW-Authenticate") or []
            response.body(ERROR_BODY_LIMIT)
            if not challenges or not self.auth.authorize(challenges):
                raise RegistryUnauthorized(
                    f"registry {self.registry}: unauthorized (login required)", 401
                )
            self.auth.login()
            authorization = self.auth.header()
            headers = {} if authorization is None else {"Authorization": authorization}
            if self.auth.challenge is not None and self.auth.challenge.scheme == "bearer":
                return  # the token server accepted the credentials
            response = self._send_following("GET", self.base_url + "/v2/", headers, None)
        if response.status != 200:
            raise self._error(response, "GET /v2/")
        response.body(ERROR_BODY_LIMIT)

    # --- the distribution API --------------------------------------------------------------

    def get_manifest(
        self,
        repository: str,
        reference: str,
        accept: Iterable[str] = ACCEPT,
        sent: Callable[[], None] | None = None,
    ) -> tuple[bytes, str, Digest | None]:
        """A manifest or index by tag or digest: (bytes, media type, Docker-Content-Digest).
        `sent` as for `request`."""
        response = self.request(
            "GET",
            f"/v2/{repository}/manifests/{_quote(reference)}",
            scopes=[_scope(repository, "pull")],
            headers={"Accept": ", ".join(accept)},
            what=f"manifest {self.registry}/{repository}:{reference}",
            sent=sent,
        )
        data = response.body()
        media_type = response.header("Content-Type").split(";", 1)[0].strip()
        header = response.header("Docker-Content-Digest")
        digest: Digest | None = None
        try:  # (not contextlib.suppress: a pull loads contextlib only later)
            digest = Digest.parse(header) if header else None
        except Exception:
            pass
        return data, media_type, digest

    def blob_exists(
        self, repository: str, digest: Digest, scopes: Iterable[str] = ()
    ) -> int | None:
        """HEAD a blob: its size when the repository has it, None otherwise."""
        response = self.request(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            scopes=list(scopes) or [_scope(repository, "pull")],
            ok=(200, 404),
            what=f"blob {digest} in {self.registry}/{repository}",
        )
        response.close()
        if response.status == 404:
            return None
        length = response.header("Content-Length")
        return int(length) if length.isdigit() else -1

    def open_blob(
        self,
        repository: str,
        digest: Digest,
        offset: int = 0,
        sent: Callable[[], None] | None = None,
    ) -> Response:
        """GET a blob from `offset` (a Range request): status 206 when the registry honoured
        the range, 200 when it sends the whole blob again. `sent` as for `request`."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self.request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scopes=[_scope(repository, "pull")],
            headers=headers,
            ok=(200, 206),
            what=f"blob {digest} from {self.registry}/{repository}",
            sent=sent,
        )

    # --- transport -------------------------------------------------------------------------

    def _send_following(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body | None,
        sent: Callable[[], None] | None = None,
    ) -> Response:
        origin = _urlsplit(url)[1]
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(method, url, headers, body, sent)
            if method not in ("GET", "HEAD") or response.status not in (301, 302, 303, 307, 308):
                return response
            location = response.header("Location")
            response.body(ERROR_BODY_LIMIT)
            if not location:
                return response
            url = _urljoin(url, location)
            if _urlsplit(url)[1] != origin:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        raise RegistryError(f"registry {self.registry}: too many redirects for {method} {url}")

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Body | None,
        sent: Callable[[], None] | None = None,
    ) -> Response:
        scheme, netloc, path, query = _urlsplit(url)
        target = path or "/"
        if query:
            target += "?" + query
        all_headers = {"User-Agent": self.user_agent, **headers}
        for attempt in range(2):
            conn, reused = self._connection(scheme, netloc)
            payload: bytes | BinaryIO | Iterable[bytes] | None
            payload = body() if callable(body) else body
            if payload is None and method in ("PUT", "POST", "PATCH"):
                all_headers.setdefault("Content-Length", "0")
            try:
                raw = conn.request(method, target, all_headers, payload, sent)
            except _TRANSIENT as err:
                self._drop(scheme, netloc)
                if reused and attempt == 0:
                    continue  # a kept-alive connection the server had closed meanwhile
                raise RegistryUnreachable(
                    f"registry {self.registry}: connection to {netloc} lost: {err}"
                ) from None
            except ProtocolError as err:
                self._drop(scheme, netloc)
                raise RegistryUnreachable(
                    f"registry {self.registry}: bad response from {netloc}: {err}"
                ) from None
            except OSError as err:
                self._drop(scheme, netloc)
                ssl_module = sys.modules.get("ssl")
                if ssl_module is not None and isinstance(err, ssl_module.SSLError):
                    if (
                        self._http_fallback
                        and scheme == "https"
                        and netloc == self.host
                        and "WRONG_VERSION_NUMBER" in str(err).upper()
                    ):
                        self.scheme = "http"
                        url = url.replace("https://", "http://", 1)
                        return self._send(method, url, headers, body, sent)
                    raise RegistryUnreachable(
                        f"registry {self.registry}: TLS failure talking to {netloc}: {err}"
                    ) from None
                reason = err.strerror or str(err) or type(err).__name__
                raise RegistryUnreachable(
                    f"registry {self.registry}: cannot connect to {netloc}: {reason}"
                ) from None
            finally:
                if hasattr(payload, "close") and callable(body):
                    try:
                        payload.close()  # type: ignore[union-attr]
                    except Exception:
                        pass

            def release(finished: bool, scheme: str = scheme, netloc: str = netloc) -> None:
                if not finished:
                    self._drop(scheme, netloc)

            return Response(raw.status, raw.reason, raw.headers, url, raw, release)
        raise AssertionError("unreachable")

    def _connection(self, scheme: str, netloc: str) -> tuple[Connection, bool]:
        pool: dict[tuple[str, str], Connection] = getattr(self._local, "pool", None) or {}
        self._local.pool = pool
        key = (scheme, netloc)
        conn = pool.get(key)
        if conn is not None and conn.is_open:
            return conn, True
        if scheme not in ("http", "https"):
            raise RegistryError(f"registry {self.registry}: unsupported URL scheme {scheme!r}")
        try:
            host, port = split_netloc(netloc, 443 if scheme == "https" else 80)
        except ValueError as err:
            raise RegistryError(f"registry {self.registry}: {err}") from None
        context = self._tls_context() if scheme == "https" else None
        conn = Connection(host, port, timeout=self.timeout, tls=context)
        pool[key] = conn
        with self._connections_lock:
            self._all_connections.append(conn)
        return conn, False

    def _tls_context(self) -> ssl.SSLContext:
        if self._context is None:
            import ssl

            context = ssl.create_default_context()
            if self.tls_verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._context = context
        return self._context

    def _drop(self, scheme: str, netloc: str) -> None:
        pool = getattr(self._local, "pool", None) or {}
        conn = pool.pop((scheme, netloc), None)
        if conn is not None:
            conn.close()

    def _fetch_absolute(
        self, method: str, url: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """One request to an absolute URL (the token realm): status, headers, body."""
        if not url.startswith(("http://", "https://")):
            raise RegistryError(f"registry {self.registry}: token realm {url!r} is not a URL")
        response = self._send_following(method, url, headers, None)
        data = response.body(1 << 20)
        return response.status, {k.lower(): v for k, v in response.headers.items()}, data

    # --- errors ----------------------------------------------------------------------------

    def _error(self, response: Response, what: str) -> RegistryError:
        status = response.status
        data = b"" if response.finished else response.body(ERROR_BODY_LIMIT)
        code, detail = _error_details(data)
        text = detail or response.reason or "error"
        message = f"registry {self.registry}: {what}: {status} {text}".rstrip()
        if status == 404:
            return RegistryNotFound(message, status, code)
        if status in (401, 403):
            return RegistryUnauthorized(message, status, code)
        return RegistryError(message, status, code)


def _error_details(data: bytes) -> tuple[str, str]:
    """The first distribution error (`{"errors": [{"code", "message"}]}`) in a body."""
    if not data:
        return "", ""
    import json

    try:
        document = json.loads(data)
        first = document["errors"][0]
        code = str(first.get("code", ""))
        message = str(first.get("message", ""))
        return code, (f"{code.lower()}: {message}" if code else message)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        text = data[:200].decode("utf-8", "replace").strip()
        return "", text if text.isprintable() else ""


def _scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"


def absolute_location(response: Response) -> str:
    """The Location header of an upload response, as an absolute URL."""
    location = response.header("Location")
    if not location:
        raise RegistryError(f"{response.url}: {response.status} without a Location header")
    return _urljoin(response.url, location)


def with_query(url: str, **params: str) -> str:
    """Add query parameters to a URL that may already have some."""
    from urllib.parse import urlencode

    return url + ("&" if "?" in url else "?") + urlencode(params)


# --- URLs without urllib.parse ---------------------------------------------------------------
# urllib.parse (with ipaddress) is a good part of a short pull's imports; the URLs this
# client makes are simple. Anything else goes to urllib.parse, loaded then.

_URL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?=&%+,;@!$'()*"
)
_QUOTE_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~:")


def _urlsplit(url: str) -> tuple[str, str, str, str]:
    """(scheme, netloc, path, query) as urllib.parse.urlsplit gives them."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("http", "https") and all(c in _URL_CHARS for c in rest):
        end = len(rest)
        for stop in ("/", "?"):
            found = rest.find(stop)
            if 0 <= found < end:
                end = found
        path, _, query = rest[end:].partition("?")
        return scheme, rest[:end], path, query
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme, parts.netloc, parts.path, parts.query


def _urljoin(base: str, reference: str) -> str:
    """urllib.parse.urljoin(base, reference); by hand for an absolute path (`/v2/...`)
    whose path has no empty, `.` or `..` segment (which urljoin would remove)."""
    path, question, query = reference.partition("?")
    if (
        path.startswith("/")
        and all(c in _URL_CHARS for c in reference)
        and all(segment not in ("", ".", "..") for segment in path[1:].split("/"))
        and (query or not question)
    ):
        scheme, netloc, _, _ = _urlsplit(base)
        if scheme in ("http", "https") and netloc and all(c in _URL_CHARS for c in netloc):
            return f"{scheme}://{netloc}{reference}"
    from urllib.parse import urljoin

    return urljoin(base, reference)


def _quote(text: str) -> str:
    """urllib.parse.quote(text, safe=":")."""
    if all(c in _QUOTE_SAFE for c in text):
        return text
    from urllib.parse import quote

    return quote(text, safe=":")


__all__ = [
    "RegistryClient",
    "Response",
    "absolute_location",
    "is_loopback",
    "with_query",
]
